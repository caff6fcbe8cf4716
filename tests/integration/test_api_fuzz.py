"""schemathesis against the gateway's own OpenAPI spec, over HTTP to a running gateway: no
request it generates (valid or not) may crash the service or get a 5xx answer, and every
success answer must match the response schema the spec gives for it."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import response_schema_conformance
from schemathesis.core.result import Err

from cli.main import run_argv
from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.seed import DEMO_PASSWORD

if TYPE_CHECKING:
    from tests.conftest import ExternalPostgres

pytestmark = pytest.mark.integration
_names = itertools.count()


@pytest.fixture(scope="module")
def live_gateway(
    pg_server: EmbeddedPostgres | ExternalPostgres,
    template_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """`eldercare run --components gateway` on a copy of the seeded database."""
    name = f"fuzz_{os.getpid()}_{next(_names)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE eldercare_template".encode())
    dsn = urlunsplit(urlsplit(pg_server.url)._replace(path=f"/{name}"))
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz") / "gateway.log"
    env = {
        **os.environ,
        "ELDERCARE_DATABASE__URL": dsn,
        "ELDERCARE_GATEWAY__PORT": str(port),
        "ELDERCARE_GATEWAY__LOGIN_ATTEMPTS_PER_MINUTE": "1000",
    }
    with Path(log).open("wb") as out:
        proc = subprocess.Popen(
            run_argv("gateway"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gateway did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
        assert proc.poll() is None, f"the gateway died: {log.read_text()[-3000:]}"
    finally:
        proc.terminate()
        proc.wait(20)
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


@pytest.fixture(scope="module")
def token(live_gateway: str) -> str:
    """A district staff member's bearer token (the widest staff view)."""
    response = httpx.post(
        f"{live_gateway}/api/v1/auth/login",
        json={"username": "district", "password": DEMO_PASSWORD},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


@pytest.fixture(scope="module")
def api_schema(live_gateway: str) -> schemathesis.BaseSchema:
    """The spec as the running gateway serves it, less what can't be fuzzed by one caller:
    the endless event stream and signing out (which would end the token)."""
    return schemathesis.openapi.from_url(f"{live_gateway}/api/openapi.json").exclude(
        path_regex=r"(/stream$|/auth/logout$)"
    )


def test_no_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, live_gateway: str, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    operations = []
    for result in api_schema.get_all_operations():
        assert not isinstance(result, Err), f"the spec has an invalid operation: {result}"
        operations.append(result.ok())
    assert len(operations) > 20, "the spec lists the gateway's operations"
    calls = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests in every CI run; vary locally to explore
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case[Any]) -> None:
            nonlocal calls
            response = case.call(base_url=live_gateway, headers=headers, timeout=10)
            calls += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}:"
                f" {response.text[:500]}"
            )
            content_type = response.headers.get("content-type") or [""]
            if response.status_code >= 400 and content_type[0].startswith("application/json"):
                assert "error" in response.json(), response.text[:300]
            if 200 <= response.status_code < 300:
                # Every success answer is what the spec's response model says.
                case.validate_response(response, checks=[response_schema_conformance])

        fuzz()
    assert calls >= len(operations)
