"""The API's bearer token (by reference: a file or an environment variable) and its request body limit."""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from farm.errors import ConfigError
from farm.specs.loading import read_regular_file

DEFAULT_TOKEN_ENV = "FARM_API_TOKEN"  # noqa: S105 - the name of the variable, not a token
MAX_TOKEN_BYTES = 4096
MIN_TOKEN_CHARS = 16

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def load_token(token_file: str | None, token_env: str | None, *, what: str = "--token-file") -> str:
    """The token in ``token_file`` (its first line), else in ``$token_env`` (default ``$FARM_API_TOKEN``).

    A token is never taken from the command line, where ``ps`` and shell history show it. Missing, empty or
    shorter than :data:`MIN_TOKEN_CHARS` characters: :class:`ConfigError`."""
    if token_file:
        raw = read_regular_file(Path(token_file), MAX_TOKEN_BYTES, token_file)
        token = raw.decode("utf-8", errors="replace").strip().splitlines()[0].strip() if raw.strip() else ""
        source, field = token_file, ""
    else:
        name = token_env or DEFAULT_TOKEN_ENV
        token = os.environ.get(name, "").strip()
        source, field = "--token-env", name
        if not token:
            raise ConfigError.single(
                source, field, f"${name} is not set: give the API token by {what} PATH or in an environment variable"
            )
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError.single(source, field, f"the API token must have at least {MIN_TOKEN_CHARS} characters")
    return token


def token_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class BodyTooLarge(Exception):
    """A request body went past the limit while it was being read."""


class BodyLimit:
    """ASGI middleware: a body declared (``Content-Length``) or found, as it streams in, to be longer than
    ``max_bytes`` is answered 413 without being read further."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = f'{{"detail":"request body is larger than the limit of {self.max_bytes} bytes"}}'.encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
