"""Pages of the web UI. Each page module exposes `register()`, which declares its routes with
@ui.page; app.server.register_pages calls them all."""
