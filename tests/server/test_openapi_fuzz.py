"""The trainer-mode app's OpenAPI schema describes every request and answer, and a bounded
schemathesis run holds the app to it: no 5xx, every status is one the route lists, and every
answer's body matches the schema of its route and status.

The streams are left out of the run (an endless response cannot be checked this way;
test_sse.py covers them). A run the fuzzer manages to start runs `python -c pass`, not a
trainer.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.security import AccessPolicy
from app.services.container import Services
from app.trainer_server import build_trainer_app


@pytest.fixture
def trainer_app(services: Services) -> FastAPI:
    services.run_service.command_builder = lambda *_: [sys.executable, "-c", "pass"]
    return build_trainer_app(services, AccessPolicy(None, "secret"))


def test_the_schema_describes_every_request_and_answer(trainer_app: FastAPI) -> None:
    paths = trainer_app.openapi()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            answers = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
            assert answers, where
            for answer in answers.values():
                content = answer["content"]
                if "application/json" in content:
                    assert content["application/json"]["schema"], where
            if method in ("post", "put", "patch") and path in ("/api/runs", "/callbacks"):
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert body, where
            # Every refusal has the one error shape (or its own model).
            assert "$ref" in str(operation["responses"].get("422", {"content": "$ref"})), where


def test_answers_follow_the_schema(trainer_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", trainer_app)
    schema = schema.exclude(path_regex="stream$")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @settings(
            max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def conforms(case: Any) -> None:
            case.call_and_validate(
                checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
            )

        conforms()
