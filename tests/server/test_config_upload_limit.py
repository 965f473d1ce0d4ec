"""Config uploads are small: a file over 1 MiB is refused with a clear message (the import
dialog stays open, nothing replaced); the upload route refuses oversized bodies unread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User

from app.access import AccessPolicy
from app.server import configure
from app.services import configs as config_ops
from app.services.container import Services, build_services, set_services
from app.trainer_server import build_trainer_app
from registry.config_io import ConfigFileError
from registry.evaluator import PlatformContext

TOO_BIG = b"# padding\n" * (config_ops.MAX_CONFIG_BYTES // 10 + 1)


@pytest.fixture
async def page_user(user: User, home: Path) -> AsyncIterator[User]:
    services = build_services(platform=PlatformContext(device="cpu", packages=frozenset()))
    configure(services)
    await user.open("/")
    yield user
    set_services(None)


async def test_an_oversized_config_upload_is_refused_with_the_limit(page_user: User) -> None:
    page_user.find(marker="action-more").click()  # the toolbar's "More" menu
    page_user.find(marker="action-import").click()
    await page_user.should_see(marker="import-dialog")
    upload = page_user.find(marker="import-upload").elements.pop()
    await upload.handle_uploads([SmallFileUpload("huge.toml", "text/plain", TOO_BIG)])  # type: ignore[attr-defined]  # NiceGUI's upload handler, not in its stubs
    await page_user.should_see(marker="import-errors")
    await page_user.should_see("a config file may be at most 1,024 KiB")
    await page_user.should_see(marker="import-dialog")  # still open: nothing was replaced


async def test_a_file_the_browser_rejects_says_why(page_user: User) -> None:
    page_user.find(marker="action-more").click()  # the toolbar's "More" menu
    page_user.find(marker="action-import").click()
    await page_user.should_see(marker="import-dialog")
    page_user.find(marker="import-upload").trigger("rejected")
    await page_user.should_see("a config file may be at most 1,024 KiB")


def test_pasted_text_over_the_limit_is_refused() -> None:
    with pytest.raises(ConfigFileError) as refused:
        config_ops.import_text(TOO_BIG.decode(), "pasted.toml")
    assert "at most 1,024 KiB" in refused.value.errors[0]
    assert config_ops.import_text("max_train_steps = 5\n", "ok.toml") == {"max_train_steps": 5}


async def test_upload_bodies_over_the_limit_are_refused_unread(services: Services) -> None:
    app = build_trainer_app(services, AccessPolicy(None, "secret"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post(
            "/_nicegui/client/some-client/upload/7",
            files={"file": ("huge.toml", TOO_BIG * 3, "text/plain")},
        )
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
