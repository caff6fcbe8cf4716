"""The interactive API reference (`/api/docs`, Swagger UI) from files the service ships: the
page's script and style come from the `swagger-ui-bundle-v2` wheel, served under
`/static/swagger-ui/`, so the reference works on a laptop or a district network with no way
out to a CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

router = APIRouter(include_in_schema=False)

DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
ASSETS_URL = "/static/swagger-ui"
"""Where the Swagger UI files are served (before the app's own `/static` mount)."""
ASSETS = Path(str(swagger_ui_path))


def mount_assets(app: FastAPI) -> None:
    """Serve the Swagger UI files at `ASSETS_URL`; call before mounting `/static`."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="swagger-ui")


@router.get(DOCS_URL)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on the service's OpenAPI document, every file from this service."""
    root = str(request.scope.get("root_path", ""))
    return get_swagger_ui_html(
        openapi_url=f"{root}{OPENAPI_URL}",
        title="Eldercare gateway - API",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/favicon.svg",
        oauth2_redirect_url=f"{root}{DOCS_URL}/oauth2-redirect",
    )


@router.get(f"{DOCS_URL}/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page (no CDN either)."""
    return get_swagger_ui_oauth2_redirect_html()
