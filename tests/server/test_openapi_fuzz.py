"""A bounded schemathesis run over the trainer-mode app's typed OpenAPI schema: no 5xx,
and every answer matches the schema of its route and status.

The streams are left out (an endless response cannot be checked this way; test_sse.py
covers them). A run the fuzzer manages to start runs `python -c pass`, not a trainer.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from app.security import AccessPolicy
from app.services.container import Services
from app.trainer_server import build_trainer_app


@pytest.fixture
def trainer_schema(services: Services) -> Any:
    services.run_service.command_builder = lambda *_: [sys.executable, "-c", "pass"]
    app = build_trainer_app(services, AccessPolicy(None, "secret"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return schema.exclude(path_regex="stream$")


def test_no_server_errors(trainer_schema: Any) -> None:
    operations = [result.ok() for result in trainer_schema.get_all_operations()]
    assert len(operations) >= 5
    for operation in operations:

        @settings(
            max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def no_5xx(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        no_5xx()
