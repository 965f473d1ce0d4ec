"""The path field's folder picker browses the server inside the allowed roots only."""

from __future__ import annotations

from pathlib import Path

import pytest
from nicegui.testing import User

from app.services.folder_browser import FolderAccessError, list_folders


def test_listing_stays_inside_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    listing = list_folders(root, [root])
    assert [p.name for p in listing.folders] == ["a"] and listing.parent is None
    assert list_folders(root / "a", [root]).parent == root
    with pytest.raises(FolderAccessError, match="outside"):
        list_folders(tmp_path / "outside", [root])
    with pytest.raises(FolderAccessError, match="outside"):
        list_folders(root / ".." / "outside", [root])
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(FolderAccessError, match="outside"):
        list_folders(root / "link", [root])


async def test_picking_a_folder_fills_the_path_field(
    trainer_user: User, ui_paths: dict[str, Path]
) -> None:
    datasets_root = Path(trainer_user.services.prefs.prefs.datasets_root)  # type: ignore[attr-defined]  # services attached by the fixture
    (datasets_root / "cats").mkdir(parents=True)
    trainer_user.find(marker="tab-checkpoints").click()
    trainer_user.find(marker="pick-output_dir").click()
    await trainer_user.should_see(marker="folder-picker")
    await trainer_user.should_see(marker="folder-cats")
    trainer_user.find(marker="folder-cats").click()
    trainer_user.find(marker="picker-choose").click()
    (field,) = trainer_user.find(marker="field-output_dir").elements
    assert field.value == str((datasets_root / "cats").resolve())
    await trainer_user.should_see(marker="dirty")
