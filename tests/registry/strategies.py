"""Hypothesis strategies that draw values, configs and dataset entries the catalogue accepts."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from registry.catalogue import DATASET_FIELDS, FIELDS
from registry.field import ConfigField, FieldType

_PATTERN_EXAMPLES = {
    "gpu_ids": st.sampled_from(["all", "0", "0,1", "2,3,5"]),
    "caption_extension": st.sampled_from([".txt", ".caption", ".tags.txt"]),
}


def _number_bounds(f: ConfigField) -> tuple[float | None, float | None]:
    return f.minimum, f.maximum


def value_strategy(f: ConfigField) -> st.SearchStrategy[Any]:
    """Values `check_value` accepts for `f` (types, bounds, choices, patterns)."""
    low, high = _number_bounds(f)
    match f.type:
        case FieldType.BOOL:
            return st.booleans()
        case FieldType.INT:
            lo = int(low) + (1 if f.exclusive_minimum else 0) if low is not None else -(10**6)
            hi = int(high) - (1 if f.exclusive_maximum else 0) if high is not None else 10**6
            ints = st.integers(min_value=lo, max_value=hi)
            if f.multiple_of:
                m = f.multiple_of
                return st.integers(min_value=-(-lo // m), max_value=hi // m).map(lambda k: k * m)
            return ints
        case FieldType.FLOAT:
            floats = st.floats(
                min_value=low if low is not None else -1e6,
                max_value=high if high is not None else 1e6,
                exclude_min=f.exclusive_minimum,
                exclude_max=f.exclusive_maximum,
                allow_nan=False,
                allow_infinity=False,
            )
            return floats
        case FieldType.CHOICE:
            return st.sampled_from(f.choice_values)
        case FieldType.MULTI_CHOICE:
            return st.lists(st.sampled_from(f.choice_values), unique=True)
        case FieldType.LIST:
            return st.lists(st.text())
    if f.name in _PATTERN_EXAMPLES:
        return _PATTERN_EXAMPLES[f.name]
    return st.text()


def _sparse(fields: dict[str, ConfigField]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {}, optional={name: value_strategy(f) for name, f in fields.items()}
    )


def dataset_entries() -> st.SearchStrategy[dict[str, Any]]:
    return _sparse(DATASET_FIELDS)


def configs(with_datasets: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Sparse configs whose every value is individually valid."""
    base = _sparse(FIELDS)
    if not with_datasets:
        return base
    return st.tuples(base, st.one_of(st.none(), st.lists(dataset_entries(), max_size=3))).map(
        lambda pair: pair[0] if pair[1] is None else {**pair[0], "datasets": pair[1]}
    )


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
junk = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def junk_configs() -> st.SearchStrategy[dict[str, Any]]:
    """Anything a user might paste: real keys with wrong values, unknown keys, odd datasets."""
    keys = st.sampled_from([*FIELDS, "datasets", "lerning_rate", "repeats", "foo"])
    return st.dictionaries(keys, junk, max_size=8)
