"""What the front door measures and adds to every answer: Prometheus metrics of logins,
requests and stream clients, and the security headers."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.live import Broadcaster

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""The Content-Security-Policy of the pages: nothing from elsewhere."""


class GatewayMetrics:
    """Prometheus metrics of the HTTP front door."""

    def __init__(self, registry: CollectorRegistry, broadcaster: Broadcaster) -> None:
        self.logins = Counter(
            "eldercare_gateway_logins", "login attempts", ["result"], registry=registry
        )
        self.requests = Histogram(
            "eldercare_gateway_request_seconds",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.stream_clients = Gauge(
            "eldercare_gateway_stream_clients",
            "clients attached to the live alert stream",
            registry=registry,
        )
        self.stream_clients.set_function(lambda: broadcaster.subscriber_count)


class ObserveMiddleware:
    """Pure ASGI middleware (safe for streaming): security headers and request metrics."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not path.startswith(("/api/", "/static/", "/metrics", "/healthz")):
                    extra.append((b"content-security-policy", CSP.encode()))
                if path.startswith(("/api/", "/console")):
                    extra.append((b"cache-control", b"no-store"))
                headers.extend((k, v) for k, v in extra if k not in names)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )
