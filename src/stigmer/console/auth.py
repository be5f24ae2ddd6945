"""Signing in to the console, and why only its own pages may post to it.

When the server requires a token, any call answered UNAUTHENTICATED sends
the person to /login. The token they enter is checked with one call, then
kept in an HttpOnly, SameSite=Strict cookie (scripts on the page cannot read
it, other sites cannot send it) and sent with every call they cause
(connections.py). The console never shows it again.

Forms change things (run an agent, cancel, approve), so a POST must come
from the console's own pages: one whose Origin names another site is
refused with 403, as browsers send Origin on every cross-site POST.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stigmer.console.app import TOKEN_COOKIE, describe_error, render
from stigmer.errors import StigmerError, Unauthenticated

# A token is sent as a gRPC header: nothing longer is one.
MAX_TOKEN_CHARS = 4096


def _safe_next(target: str) -> str:
    """Only a path of this console: never another host (//evil, http://...)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_form(request: Request) -> Response:
    next_page = _safe_next(request.query_params.get("next", "/"))
    return render(request, "login.html", {"title": "Sign in", "next": next_page, "problem": ""})


async def sign_in(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token", "")).strip()
    next_page = _safe_next(str(form.get("next", "/")))
    problem = ""
    if not token:
        problem = "token: enter the access token you were given (stigmer token create)"
    elif len(token) > MAX_TOKEN_CHARS or not token.isprintable():
        problem = "token: this is not an access token"
    else:
        clients = request.app.state.clients
        try:
            await clients.for_token(token).server_info()
        except Unauthenticated:
            problem = "token: the server does not accept this token"
        except StigmerError as error:
            problem = describe_error(error)
    if problem:
        context = {"title": "Sign in", "next": next_page, "problem": problem}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(next_page, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE, token, path="/", httponly=True, samesite="strict", max_age=7 * 24 * 3600
    )
    return response


async def sign_out(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


class _SameOriginPosts:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1")
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
            is_foreign = (origin and origin != "null" and urlsplit(origin).netloc != host) or (
                site == "cross-site"
            )
            if is_foreign:
                refusal = PlainTextResponse(
                    "refused: a form of another site cannot post to the console", 403
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def same_origin_posts() -> Middleware:
    return Middleware(_SameOriginPosts)
