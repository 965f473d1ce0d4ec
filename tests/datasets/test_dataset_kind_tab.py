"""The Datasets tab says what each dataset is for (its kind) in the entry's title."""

from __future__ import annotations

from nicegui.testing import User

from tests.datasets import test_datasets_tab as tab_tests
from tests.datasets.test_datasets_tab import element, form_of, tab_of

# The Datasets tab tests' fixture: the tab opened in the simulated browser.
datasets_user = tab_tests.datasets_user


async def test_each_entry_title_shows_its_kind(datasets_user: User) -> None:
    user = datasets_user
    user.find(marker="add-dataset").click()
    user.find(marker="add-dataset").click()
    element(user, "dataset-0-name").value = "subject"
    element(user, "dataset-1-name").value = "class images"
    element(user, "dataset-1-kind").value = "regularization"
    assert form_of(user).datasets[1]["kind"] == "regularization"
    await user.should_see("class images · regularization")
    element(user, "dataset-0-kind").value = "eval"
    await user.should_see("subject · evaluation only")
    assert tab_of(user).cards[1].title() == "class images · regularization"
