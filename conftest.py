"""Root pytest configuration: NiceGUI's `user` fixture is registered here, as NiceGUI asks."""

pytest_plugins = ["nicegui.testing.user_plugin"]

# Servers the tests start must not build the demo model in the background (minutes of CPU
# across a suite); tests that want it build it themselves.
import os  # noqa: E402

os.environ.setdefault("TUNERDECK_NO_DEMO_WARMUP", "1")
