"""Logins when DocMind serves a team: Gradio's login page over the data dir's user accounts, and a gate
in front of every route.

- ``LoginGate`` is an ASGI middleware on the whole app: a request without a valid login gets 401 on
  every route except what the login page itself needs (``PUBLIC_PATHS``/``PUBLIC_PREFIXES``). Routes
  other modules add to the app (document viewer, ...) are covered without doing anything.
- It throttles failed logins per client address (``MAX_FAILURES`` per ``FAILURE_WINDOW_SECONDS``,
  then 429), expires a login after ``login_session_seconds`` (default 12 h), and rewrites Gradio's
  login cookies to ``HttpOnly; SameSite=Lax`` with that ``Max-Age``.
- ``current_user(request)`` is the logged-in user's name (None when DocMind serves only this computer,
  without accounts); ``require_user`` is the same as a FastAPI dependency that refuses anonymous
  requests when logins are on. Handlers scope sessions with ``owner_of``.

Without accounts DocMind serves only loopback (``launch.check_host``) and all of this stays off.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from starlette.requests import HTTPConnection, Request

from docmind.config import Settings

log = logging.getLogger(__name__)

MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 300.0
"""More than ``MAX_FAILURES`` failed logins from one address (or for one name) within this window are refused."""
PUBLIC_PATHS = frozenset({
    "/", "/login", "/login/", "/logout", "/favicon.ico", "/manifest.json", "/robots.txt", "/theme.css",
    "/gradio_api/theme.css", "/gradio_api/login_check", "/gradio_api/login_check/", "/gradio_api/user",
    "/gradio_api/user/", "/gradio_api/app_id", "/gradio_api/app_id/", "/gradio_api/token", "/gradio_api/token/",
    "/config", "/config/", "/gradio_api/info", "/gradio_api/info/", "/gradio_api/startup-events",
})
"""What the login page loads; Gradio itself answers ``/``, ``/config`` and ``/info`` with nothing but the
login form (and its own 401s) to a visitor who is not logged in. ``startup-events`` is what ``launch``
calls once to start the app's background events (it runs them only the first time and returns nothing)."""
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")
"""Gradio's own front-end files (JavaScript, CSS, fonts): the same for everyone, no user data."""


class LoginThrottle:
    """Counts failed logins per key (an address or a name) in a sliding window."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW_SECONDS) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def _recent(self, key: str) -> collections.deque[float]:
        failures = self._failures[key]
        while failures and time.monotonic() - failures[0] > self.window:
            failures.popleft()
        return failures

    def blocked(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        with self._lock:
            failures = self._recent(key)
            return self.window - (time.monotonic() - failures[0]) if len(failures) >= self.limit else 0.0

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(time.monotonic())

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


@dataclass
class Accounts:
    """The ``auth=`` callable for Gradio's login page: checks a name and password against the user
    accounts, refusing a name that failed too often (even with the right password) for a while."""

    settings: Settings
    throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def __call__(self, name: str, password: str) -> bool:
        from docmind.storage.users import Users

        if self.throttle.blocked(f"name:{name}"):
            log.warning("login refused for %r: too many failed attempts", name)
            return False
        if Users(self.settings.db_path).verify(name, password):
            self.throttle.succeeded(f"name:{name}")
            log.info("user %r logged in", name)
            return True
        self.throttle.failed(f"name:{name}")
        log.warning("failed login for %r", name)
        return False


def logins_enabled(settings: Settings) -> bool:
    """True when the data dir has user accounts: then everyone logs in, also on loopback (behind a proxy)."""
    from docmind.storage.users import Users

    return Users(settings.db_path).exists()


class LoginGate:
    """ASGI middleware: see the module doc. ``scope["app"]`` is Gradio's app, which holds the tokens."""

    def __init__(self, app: Any, session_seconds: int, throttle: LoginThrottle | None = None) -> None:
        self.app = app
        self.session_seconds = session_seconds
        self.throttle = throttle or LoginThrottle()
        self._issued: dict[str, float] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.rstrip("/") == "/login" and scope.get("method") == "POST":
            return await self._login(scope, receive, send)
        if _public(path) or self.user(scope) is not None:
            return await self.app(scope, receive, send)
        return await _refuse(scope, send, 401, "Log in first.")

    def user(self, scope: dict) -> str | None:
        """The logged-in user of this request, or None (an expired login is forgotten here)."""
        gradio_app = scope.get("app")
        tokens = getattr(gradio_app, "tokens", {})
        for token in _cookie_tokens(scope, getattr(gradio_app, "cookie_id", "")):
            issued = self._issued.get(token)
            if token in tokens and issued is not None and time.time() - issued < self.session_seconds:
                return tokens[token]
            if token in tokens and issued is not None:
                log.info("the login of %r expired", tokens.pop(token))
                self._issued.pop(token, None)
        return None

    async def _login(self, scope: dict, receive: Any, send: Any) -> None:
        address = f"ip:{(scope.get('client') or ('?',))[0]}"
        wait = self.throttle.blocked(address)
        if wait:
            return await _refuse(scope, send, 429, f"Too many failed logins; try again in {wait:.0f} s.",
                                 [(b"retry-after", str(int(wait) + 1).encode())])

        async def send_rewritten(message: dict) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    self.throttle.succeeded(address)
                    message["headers"] = [self._cookie(k, v) for k, v in message["headers"]]
                else:
                    self.throttle.failed(address)
            await send(message)

        await self.app(scope, receive, send_rewritten)

    def _cookie(self, key: bytes, value: bytes) -> tuple[bytes, bytes]:
        """Record the login's token and give its cookie SameSite=Lax and the login's lifetime."""
        if key.lower() != b"set-cookie":
            return key, value
        cookie = SimpleCookie()
        cookie.load(value.decode("latin-1"))
        now = time.time()
        for token, issued in list(self._issued.items()):  # forget logins that have expired
            if now - issued >= self.session_seconds:
                del self._issued[token]
        for morsel in cookie.values():
            self._issued.setdefault(morsel.value, time.time())
            morsel["httponly"] = True
            morsel["samesite"] = "Lax"
            morsel["max-age"] = str(self.session_seconds)
        return key, cookie.output(header="").strip().encode("latin-1")


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _cookie_tokens(scope: dict, cookie_id: str) -> list[str]:
    header = next((v for k, v in scope.get("headers", []) if k == b"cookie"), b"")
    cookie = SimpleCookie()
    try:
        cookie.load(header.decode("latin-1"))
    except Exception:  # noqa: BLE001 - a malformed cookie header is just no login
        return []
    names = (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}")
    return [cookie[name].value for name in names if name in cookie]


async def _refuse(scope: dict, send: Any, status: int, message: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = ('{"detail": "%s"}' % message).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def current_user(request: Any) -> str | None:
    """The logged-in user of a ``gr.Request`` or a Starlette/FastAPI request (None without accounts)."""
    if not isinstance(request, HTTPConnection):
        return getattr(request, "username", None)  # gr.Request: Gradio looked the login up already
    scope = request.scope
    gradio_app = scope.get("app")
    tokens = getattr(gradio_app, "tokens", {})
    return next((tokens[t] for t in _cookie_tokens(scope, getattr(gradio_app, "cookie_id", "")) if t in tokens), None)


def only_on_the_server(request: Any, what: str, how: str) -> None:
    """Refuse a logged-in user ``what`` (a sentence's subject): it reaches beyond their own chats (every user's
    chats, the server's files or where every prompt is sent), so on a shared DocMind it is done on the
    computer that runs it, ``how``. Raises ``gr.Error``; does nothing without logins (this computer only)."""
    if current_user(request) is None:
        return
    import gradio as gr

    raise gr.Error(f"On a shared DocMind, {what} is done on the computer that runs it: {how}.")


def require_user(request: Request) -> str | None:
    """FastAPI dependency for routes other modules add: the user's name; 401 when logins are on and the
    request has none (``LoginGate`` already refuses it; this is a second lock on the same door)."""
    from fastapi import HTTPException

    user = current_user(request)
    if user is None and getattr(request.app, "auth", None) is not None:
        raise HTTPException(status_code=401, detail="Log in first.")
    return user
