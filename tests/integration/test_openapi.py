"""The OpenAPI document describes what the API answers: every success answer of every
`/api/v1` operation has a JSON schema of an object or an array (a named model)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

JSON = "application/json"
NOT_JSON = {
    "text/event-stream",
    "image/svg+xml",
    "text/csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
}
"""Success answers that are not JSON: the live stream, the timeline picture, CSV exports,
the monthly report's workbook, an elder's export archive."""


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or what its `$ref` points at within `spec`."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return resolve(spec, node)


def describes(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether `schema` says what the answer holds: an object's properties, an array's
    items, or a choice of such."""
    found = resolve(spec, schema)
    if "properties" in found or "items" in found:
        return True
    choices = found.get("anyOf") or found.get("oneOf") or []
    return bool(choices) and all(describes(spec, c) for c in choices)


async def test_every_api_success_answer_has_a_schema(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    checked, missing = [], []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            successes = {c: r for c, r in operation["responses"].items() if c.startswith("2")}
            assert successes, f"{name} documents no success answer"
            for code, answer in successes.items():
                content = answer.get("content", {})
                if code == "204" or set(content) & NOT_JSON:
                    assert JSON not in content, f"{name} {code} is not JSON"
                    continue
                schema = content.get(JSON, {}).get("schema")
                checked.append(name)
                if schema is None or not describes(spec, schema):
                    missing.append(f"{name} {code}: {schema}")
    assert not missing, "success answers without a schema:\n" + "\n".join(missing)
    assert len(checked) > 30, checked
    assert "GET /api/v1/alerts" in checked
    assert "GET /api/v1/elders/{elder_id}/readings" in checked
