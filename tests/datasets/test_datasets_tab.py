"""The Datasets tab in NiceGUI's simulated browser: entries, live hiding, demo, scan, browse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from nicegui import ui
from nicegui.testing import User

from app.server import configure
from app.services.container import Services, build_services, set_services
from registry.evaluator import PlatformContext
from tests.datasets.conftest import write_image
from tests.page_probe import datasets_tab_of, page_of

if TYPE_CHECKING:
    from app.pages.datasets_tab import DatasetsTab


@pytest.fixture
async def datasets_user(user: User, tunerdeck_home: Path) -> AsyncIterator[User]:
    services: Services = build_services(
        platform=PlatformContext(device="cpu", packages=frozenset())
    )
    configure(services)
    user.services = services  # type: ignore[attr-defined]  # the fixture attaches the app's services to the User
    await user.open("/")
    user.find(marker="tab-datasets").click()
    await user.should_see(marker="datasets-tab")
    yield user
    set_services(None)


def tab_of(user: User) -> DatasetsTab:
    return datasets_tab_of(user)


def form_of(user: User):
    return page_of(user).form


def element(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


async def test_add_edit_hide_reorder_duplicate_remove(datasets_user: User) -> None:
    user = datasets_user
    await user.should_see(marker="datasets-empty")
    user.find(marker="add-dataset").click()
    user.find(marker="add-dataset").click()
    tab, form = tab_of(user), form_of(user)
    assert len(form.datasets) == 2 and form.dirty

    element(user, "dataset-0-name").value = "first"
    element(user, "dataset-1-name").value = "second"
    assert [d["name"] for d in form.datasets] == ["first", "second"]
    # Live hiding with the registry's dataset rules: instance prompt only for that source.
    card = tab.cards[0]
    assert not card.fields.controls["instance_prompt"].row.visible
    element(user, "dataset-0-caption_strategy").value = "instance_prompt"
    assert card.fields.controls["instance_prompt"].row.visible
    assert not card.fields.controls["caption_extension"].row.visible
    assert (
        tab.cards[1].fields.controls["caption_extension"].row.visible
    )  # the other entry is unaffected
    element(user, "dataset-0-bucketing").value = False
    assert card.fields.controls["crop"].row.visible

    user.find(marker="dataset-0-down").click()
    assert [d["name"] for d in form.datasets] == ["second", "first"]
    user.find(marker="dataset-1-duplicate").click()
    assert [d["name"] for d in form.datasets] == ["second", "first", "first (copy)"]
    assert form.datasets[2]["caption_strategy"] == "instance_prompt"
    user.find(marker="dataset-0-remove").click()
    assert [d["name"] for d in form.datasets] == ["first", "first (copy)"]
    element(user, "dataset-1-enabled").value = False
    assert form.datasets[1]["enabled"] is False
    await user.should_see("first (copy) (disabled)")


async def test_demo_dataset_scan_browse_and_caption_edit(
    datasets_user: User, tunerdeck_home: Path
) -> None:
    user = datasets_user
    form = form_of(user)
    user.find(marker="create-demo").click()
    await user.should_see(marker="dataset-0", retries=100)
    demo = (tunerdeck_home / "datasets" / "demo").resolve()
    assert form.datasets == [{"name": "demo", "path": str(demo)}]

    user.find(marker="dataset-0-scan").click()
    await user.should_see("Last scan: 48 images", retries=100)
    assert "steps per epoch" in element(user, "datasets-estimate").text
    scan = tab_of(user).service.last_scan(str(demo))
    assert scan is not None and (scan.image_count, scan.unreadable, scan.missing_captions) == (
        48,
        [],
        [],
    )

    name = "circle_red_on_blue_0.png"
    user.find(marker="dataset-0-browse").click()
    await user.should_see("48 of 48 images", retries=100)
    box = element(user, f"caption-{name}")
    assert box.value == "a red circle on a blue background"
    box.value = "a red disc, edited"
    user.find(marker=f"caption-{name}").trigger("blur")
    await user.should_see(f"Caption of {name} saved", retries=100)
    assert (demo / "circle_red_on_blue_0.txt").read_text() == "a red disc, edited\n"
    assert not [p for p in demo.iterdir() if p.suffix == ".tmp"]

    # After a reload: the same entries (the draft) and the edited caption (from disk).
    await user.open("/")
    user.find(marker="tab-datasets").click()
    await user.should_see(marker="dataset-0", retries=100)
    assert form_of(user).datasets == [{"name": "demo", "path": str(demo)}]
    user.find(marker="dataset-0-browse").click()
    await user.should_see("48 of 48 images", retries=100)
    assert element(user, f"caption-{name}").value == "a red disc, edited"
    element(user, "filter-text").value = "edited"
    await user.should_see("1 of 48 images", retries=100)


async def test_path_outside_the_root_is_not_browsed(datasets_user: User, tmp_path: Path) -> None:
    user = datasets_user
    outside = tmp_path / "elsewhere"
    write_image(outside / "a.png", (64, 64))
    user.find(marker="add-dataset").click()
    element(user, "dataset-0-path").value = str(outside)
    await user.should_see("outside the datasets root", marker="dataset-0-note")
    user.find(marker="dataset-0-browse").click()
    await user.should_see("Cannot browse", retries=20)
    await user.should_not_see(marker="gallery")


async def test_warnings_for_the_run_bar(datasets_user: User, tunerdeck_home: Path) -> None:
    from app.services.datasets import dataset_warnings

    user = datasets_user
    folder = tunerdeck_home / "datasets" / "mixed"
    for i in range(3):
        write_image(folder / f"p{i}.png", (32, 32))
    (folder / "p0.txt").write_text("captioned")
    (folder / "broken.png").write_bytes(b"nope")
    user.find(marker="add-dataset").click()
    element(user, "dataset-0-path").value = str(folder)
    messages = [i.message for i in dataset_warnings(form_of(user).config(), user.services)]  # type: ignore[attr-defined]  # services attached by the fixture
    assert any("1 unreadable images will be skipped: broken.png" in m for m in messages)
    assert any("2 images have no caption" in m for m in messages)
    assert any("smaller than the resolution" in m for m in messages)
