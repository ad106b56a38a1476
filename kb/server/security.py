"""Who may call `kb serve`, and how much they may send.

- API keys come from `KB_API_KEYS` (comma-separated) and `KB_API_KEYS_FILE` (one per line).
  Clients send `Authorization: Bearer KEY`, as every OpenAI client does. Keys are compared in
  constant time against every configured key, never logged, and a missing or wrong key gets
  the same 401, so the answer tells nothing about which keys exist.
- Without keys the server only binds to loopback: anything else would put the knowledge base on
  the network for anyone.
- Request bodies are limited while they are read (a declared Content-Length over the limit is
  refused before a byte is read; a chunked body is counted as it arrives), so neither a huge
  JSON body nor an oversized upload reaches the parser.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from kb.config import Settings
from kb.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def load_api_keys(settings: Settings) -> list[str]:
    """Every configured key; a keys file that cannot be read is a clear ConfigError."""
    keys = [k.strip() for k in settings.api_keys.get_secret_value().split(",") if k.strip()]
    path = settings.api_keys_file
    if path is not None:
        try:
            lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"KB_API_KEYS_FILE {path}: cannot read it ({exc.strerror or exc})"
            ) from None
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    short = [k for k in keys if len(k) < 16]
    if short:
        raise ConfigError(
            f"{len(short)} API key(s) shorter than 16 characters in KB_API_KEYS or "
            "KB_API_KEYS_FILE: use long random keys, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe())'`"
        )
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: list[str]) -> None:
    """Refuse to serve beyond loopback without API keys."""
    if not keys and not is_loopback(host):
        raise ConfigError(
            f"refusing to bind to {host} without API keys: set KB_API_KEYS (or KB_API_KEYS_FILE), "
            "or bind to 127.0.0.1"
        )


class KeyChecker:
    """Constant-time check of a bearer token against the configured keys.

    Keys are held as SHA-256 digests: every comparison then has the same length whatever the
    caller sent, and `hmac.compare_digest` runs against every key without stopping early."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode("utf-8")).digest() for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def allows(self, authorization: str | None) -> bool:
        if not self._digests:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        offered = hashlib.sha256(token.strip().encode("utf-8")).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(offered, digest)
        return matched and scheme.lower() == "bearer"


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which every OpenAI client knows how to show."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


async def _send_json(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """ASGI middleware: refuse request bodies over a limit (413) before the app parses them.

    Hand-written because neither uvicorn nor Starlette limits body size; it has to sit below
    the framework so that a multipart upload is stopped while it streams in, not after it was
    spooled to disk."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits  # path → limit, for routes that take more (uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope.get("path", ""), self.default_limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = error_body(
            f"request body too large: at most {limit // 1_000_000 or 1} MB for this endpoint",
            "invalid_request_error",
            "request_too_large",
        )
        if declared is not None:
            try:
                if int(declared) > limit:
                    await _send_json(send, 413, too_large, [(b"connection", b"close")])
                    return
            except ValueError:
                await _send_json(
                    send, 400, error_body("bad Content-Length", "invalid_request_error")
                )
                return
        received = 0
        refused = False  # the 413 went out: whatever the app sends afterwards is dropped

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Still reading the body, so the app has sent nothing yet: answer now and
                    # tell the app the client is gone, which ends its parsing.
                    refused = True
                    await _send_json(send, 413, too_large, [(b"connection", b"close")])
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise
