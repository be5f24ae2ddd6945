"""The console's ASGI application: its routes, templates and error pages.

Every page is rendered on the server from SDK calls, so it reads fine
without JavaScript; console.js only applies the fragments the live streams
send (live.py). Errors of the server become pages with the status they
mean (NotFound 404, InvalidArgument 400 naming the field, Unavailable 503),
and an Unauthenticated answer sends the person to the sign-in form.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stigmer import __version__
from stigmer.client.aio import AsyncClient
from stigmer.console.connections import ConsoleClients
from stigmer.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
)

PACKAGE_DIR = Path(__file__).parent
TOKEN_COOKIE = "stigmer_console_token"
NOTICE_COOKIE = "stigmer_console_notice"
_STATUS_OF: dict[type[StigmerError], int] = {
    InvalidArgument: 400,
    NotFound: 404,
    PermissionDenied: 403,
    Unavailable: 503,
}


@dataclass(frozen=True)
class ConsoleOptions:
    """`server_address` is the gRPC address the console calls (host:port)."""

    server_address: str
    tls_ca: str | None = None


def templates_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(PACKAGE_DIR / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["version"] = __version__
    environment.globals["quote"] = quote
    return environment


def client_of(request: Request) -> AsyncClient:
    clients: ConsoleClients = request.app.state.clients
    return clients.for_token(request.cookies.get(TOKEN_COOKIE, ""))


def render(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    environment: Environment = request.app.state.templates
    notice = request.cookies.get(NOTICE_COOKIE, "")
    page = environment.get_template(template).render(
        request=request,
        path=request.url.path,
        notice=notice,
        is_signed_in=bool(request.cookies.get(TOKEN_COOKIE)),
        **context,
    )
    response = HTMLResponse(page, status_code=status_code)
    if notice:
        response.delete_cookie(NOTICE_COOKIE, path="/")
    return response


def redirect_with_notice(url: str, notice: str) -> RedirectResponse:
    """A 303 back to a page that shows `notice` once (after a form's POST)."""
    response = RedirectResponse(url, status_code=303)
    if notice:
        response.set_cookie(
            NOTICE_COOKIE, notice[:1000], path="/", httponly=True, samesite="strict"
        )
    return response


def describe_error(error: StigmerError) -> str:
    """One line for a person; UNIMPLEMENTED says the server lacks the feature."""
    if error.facts.get("grpc_code") == "UNIMPLEMENTED":
        return "this server does not support that yet (it answered UNIMPLEMENTED)"
    violations = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
    if violations and violations not in error.message:
        return f"{error.message} ({violations})"
    return error.message


async def _stigmer_error_page(request: Request, error: Exception) -> Response:
    assert isinstance(error, StigmerError)
    if isinstance(error, Unauthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    status = next((code for cls, code in _STATUS_OF.items() if isinstance(error, cls)), 500)
    if error.facts.get("grpc_code") == "UNIMPLEMENTED":
        status = 501
    return render(
        request,
        "error.html",
        {"title": "Error", "message": describe_error(error), "status": status},
        status_code=status,
    )


async def _http_error_page(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return render(
        request,
        "error.html",
        {"title": "Error", "message": error.detail, "status": error.status_code},
        status_code=error.status_code,
    )


def build_console_app(options: ConsoleOptions) -> Starlette:
    from stigmer.console import actions, auth, live, pages

    routes = [
        Route("/", pages.home),
        Route("/agents", pages.agents),
        Route("/agents/{slug}", pages.agent),
        Route("/agents/{slug}/run", actions.run_agent, methods=["POST"]),
        Route("/executions", pages.executions),
        Route("/executions/events", live.executions_events),
        Route("/executions/{id}", pages.execution),
        Route("/executions/{id}/events", live.execution_events),
        Route("/executions/{id}/cancel", actions.cancel, methods=["POST"]),
        Route("/executions/{id}/approvals/{call_id}", actions.submit_approval, methods=["POST"]),
        Route("/executions/{id}/{action}", actions.change_lifecycle, methods=["POST"]),
        Route("/usage", pages.usage),
        Route("/login", auth.login_form, methods=["GET"]),
        Route("/login", auth.sign_in, methods=["POST"]),
        Route("/logout", auth.sign_out, methods=["POST"]),
        Mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            StigmerError: _stigmer_error_page,
            HTTPException: _http_error_page,
        },
        middleware=[auth.same_origin_posts()],
    )
    app.state.options = options
    app.state.clients = ConsoleClients(options.server_address, tls_ca=options.tls_ca)
    app.state.templates = templates_environment()
    app.state.stopping = asyncio.Event()
    return app
