"""Property tests: evaluation never raises, incremental updates equal full evaluation,
config files round-trip exactly."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.catalogue import DATASET_FIELDS, FIELDS
from registry.config_io import dumps_json, dumps_toml, loads_json, loads_toml
from registry.evaluator import Evaluator, PlatformContext, evaluate
from registry.field import Scope
from registry.validation import validate_config
from tests.registry.strategies import configs, dataset_entries, junk_configs, value_strategy

CONTEXTS = st.sampled_from(
    [
        PlatformContext("cpu"),
        PlatformContext("mps"),
        PlatformContext("cuda"),
        PlatformContext("cuda", frozenset({"bitsandbytes", "xformers", "wandb", "tensorboard"})),
    ]
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(config=configs(), ctx=CONTEXTS)
def test_evaluating_a_valid_config_never_raises_and_covers_every_field(
    config: dict[str, Any], ctx: PlatformContext
) -> None:
    states = evaluate(config, ctx)
    assert set(states) == set(FIELDS)
    for state in states.values():
        assert state.visible or not state.enabled  # hidden implies not in use
        if not state.active:
            assert state.reason  # every hidden or greyed-out field says why
    for entry in config.get("datasets", []):
        assert set(evaluate(entry, ctx, Scope.DATASET)) == set(DATASET_FIELDS)


@SETTINGS
@given(config=configs(), ctx=CONTEXTS)
def test_validating_a_config_of_valid_values_never_raises(
    config: dict[str, Any], ctx: PlatformContext
) -> None:
    result = validate_config(config, ctx)
    assert set(FIELDS) <= set(result.values)
    for issue in result.errors:  # only cross-field and platform rules can object
        assert issue.message


@SETTINGS
@given(raw=junk_configs(), ctx=CONTEXTS)
def test_validating_anything_never_raises_and_explains_each_error(
    raw: dict[str, Any], ctx: PlatformContext
) -> None:
    result = validate_config(raw, ctx)
    assert all(issue.message and issue.severity == "error" for issue in result.errors)
    evaluate(raw, ctx)  # the evaluator copes with wrongly typed values too


@st.composite
def edit_sequences(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    start = draw(configs(with_datasets=False))
    names = st.sampled_from(sorted(FIELDS))
    edits = draw(
        st.lists(
            names.flatmap(lambda n: st.tuples(st.just(n), value_strategy(FIELDS[n]))), max_size=8
        )
    )
    return start, edits


@SETTINGS
@given(case=edit_sequences(), ctx=CONTEXTS)
def test_incremental_update_equals_full_evaluation(
    case: tuple[dict[str, Any], list[tuple[str, Any]]], ctx: PlatformContext
) -> None:
    start, edits = case
    evaluator = Evaluator(ctx)
    config = dict(start)
    states = evaluator.evaluate(config)
    for name, value in edits:
        before = states
        config[name] = value
        states, diff = evaluator.update(config, name, states)
        full = evaluator.evaluate(config)
        assert states == full
        assert diff == {n: s for n, s in full.items() if before[n] != s}


@SETTINGS
@given(
    entry=dataset_entries(),
    edits=st.lists(
        st.sampled_from(sorted(DATASET_FIELDS)).flatmap(
            lambda n: st.tuples(st.just(n), value_strategy(DATASET_FIELDS[n]))
        ),
        max_size=6,
    ),
)
def test_incremental_update_equals_full_evaluation_for_dataset_entries(
    entry: dict[str, Any], edits: list[tuple[str, Any]]
) -> None:
    evaluator = Evaluator(PlatformContext(), Scope.DATASET)
    states = evaluator.evaluate(entry)
    for name, value in edits:
        entry[name] = value
        states, _ = evaluator.update(entry, name, states)
        assert states == evaluator.evaluate(entry)


@SETTINGS
@given(config=configs())
def test_toml_round_trip_is_exact(config: dict[str, Any]) -> None:
    text = dumps_toml(config)
    back = loads_toml(text)
    assert back == config
    assert _types(back) == _types(config)  # 1.0 stays a float, 1 stays an int
    assert list(back) == list(config)  # key order kept


@SETTINGS
@given(config=configs())
def test_json_round_trip_is_exact(config: dict[str, Any]) -> None:
    back = loads_json(dumps_json(config))
    assert back == config
    assert _types(back) == _types(config)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)
