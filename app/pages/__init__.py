"""Pages of the web UI. Each module listed in PAGE_MODULES exposes `register()`, which
declares its routes with @ui.page; app.server calls them all. Other parts append theirs."""

PAGE_MODULES: list[str] = ["trainer_page", "monitor_page", "runs_page"]
