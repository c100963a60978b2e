"""The public interface as committed (schema/api) is the one the code serves, and the
OpenAPI document says what every route can answer, with examples that are true."""

from __future__ import annotations

import json

from api.contracts import CONTRACTS, openapi_json, stale
from api.types import EXAMPLE_COUNTS, EXAMPLE_JOB, JobCounts, JobOut


def test_the_committed_contracts_are_the_ones_the_code_serves() -> None:
    assert stale() == [], "the public interface changed: run python -m api.contracts"
    assert {p.name for p in CONTRACTS} == {"schema.graphql", "openapi.json"}


def test_every_route_documents_its_errors_and_they_share_one_shape() -> None:
    document = json.loads(openapi_json())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "503" in responses, (method, path)  # the store or the log may be away
            errors = [r for status, r in responses.items() if status >= "400"]
            for error in errors:
                schema = error["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
            if method == "post":
                assert "413" in responses, path
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "/graphql" not in document["paths"]  # its contract is the SDL


def test_the_examples_are_valid_answers() -> None:
    JobOut.model_validate_json(json.dumps(EXAMPLE_JOB))
    JobCounts.model_validate(EXAMPLE_COUNTS)
