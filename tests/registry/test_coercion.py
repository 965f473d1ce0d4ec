"""Value coercion and the blank rule: the config form and the dataset cards follow one rule."""

from __future__ import annotations

import pytest

from app.services.form_state import FormState
from registry.catalogue import DATASET_FIELDS, FIELDS
from registry.coercion import BLANK, BLANK_MESSAGE, from_widget, normalize
from registry.field import FieldType
from registry.validation import validate_config


def test_an_int_for_a_float_field_becomes_that_float_and_nothing_else_is_guessed() -> None:
    lr = FIELDS["learning_rate"]
    assert normalize(lr, 1) == 1.0 and isinstance(normalize(lr, 1), float)
    assert normalize(lr, True) is True  # a bool is never a number: validation refuses it
    assert normalize(lr, "1e-4") == "1e-4"  # text stays text: validation refuses it
    result = validate_config({"learning_rate": 2})
    assert result.ok and result.values["learning_rate"] == 2.0
    assert isinstance(result.values["learning_rate"], float)


def test_lists_are_copied_so_a_config_never_shares_them() -> None:
    f = FIELDS["lora_target_modules"]
    given = ["to_q", "to_k"]
    out = normalize(f, given)
    assert out == given and out is not given
    assert normalize(f, ("to_q",)) == ["to_q"]


def test_widget_values_take_the_field_type_where_nothing_is_lost() -> None:
    assert from_widget(FIELDS["max_train_steps"], 400.0) == 400
    assert isinstance(from_widget(FIELDS["max_train_steps"], 400.0), int)
    assert from_widget(FIELDS["max_train_steps"], 400.5) == 400.5  # validation says why
    assert from_widget(FIELDS["learning_rate"], 1) == 1.0
    assert from_widget(FIELDS["lora_target_modules"], ("to_q", "to_k")) == ["to_q", "to_k"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (FieldType.INT, BLANK),
        (FieldType.FLOAT, BLANK),
        (FieldType.BOOL, BLANK),
        (FieldType.CHOICE, BLANK),
        (FieldType.MULTI_CHOICE, BLANK),
        (FieldType.STR, ""),
        (FieldType.PATH, ""),
        (FieldType.TEXT, ""),
    ],
)
def test_an_emptied_control_is_blank_only_where_the_field_needs_a_value(
    kind: FieldType, expected: object
) -> None:
    fields = [f for f in (*FIELDS.values(), *DATASET_FIELDS.values()) if f.type == kind]
    assert fields, f"no field of type {kind} to check"
    for f in fields:  # config fields and dataset-entry fields alike
        assert from_widget(f, None) == expected


def test_the_form_keeps_the_last_value_of_a_blank_box_and_says_why() -> None:
    form = FormState()
    form.set_value("max_train_steps", 300.0)
    form.set_value("max_train_steps", None)
    assert form.field_error("max_train_steps") == BLANK_MESSAGE
    assert form.explicit["max_train_steps"] == 300
    assert any(i.path == "max_train_steps" for i in form.problems())
    form.set_value("output_dir", None)  # a text box emptied is just empty
    assert form.explicit["output_dir"] == "" and form.field_error("output_dir") != BLANK_MESSAGE
