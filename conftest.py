"""Root pytest configuration: NiceGUI's `user` fixture is registered here, as NiceGUI asks."""

pytest_plugins = ["nicegui.testing.user_plugin"]
