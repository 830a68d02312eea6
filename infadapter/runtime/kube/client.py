"""A small asyncio client for the Kubernetes REST API (aiohttp), used by the operator's act step.

Why not the ``kubernetes`` package: it is synchronous (one thread per call under kopf's event loop) and
slow to import. This client speaks just what the apply layer needs — get, list by label selector,
create, server-side apply, JSON merge patch, patch of a subresource, delete, discovery — and retries what is safe to retry:

* 5xx, 429 and transport errors/timeouts are retried with exponential backoff;
* objects are written by server-side apply, which is idempotent: an apply retried after a timeout that
  did reach the server changes nothing (names are deterministic, so there are no duplicates);
* 409 Conflict on a patch carrying a ``resourceVersion`` precondition is raised as :class:`Conflict`
  so the caller re-reads and retries.

Credentials never appear in errors or logs: only the method, path and the server's status message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from infadapter.errors import ApplyFailed

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
#: the field manager of every write: server-side apply tracks our fields under this name
FIELD_MANAGER = "infadapter"
RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class ApiError(ApplyFailed):
    """The API server refused a request; ``status`` is the HTTP code, ``reason`` the Status reason."""

    def __init__(self, status: int, reason: str, message: str, method: str, path: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{method} {path}: {status} {reason}: {message}")


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: AlreadyExists (a create) or a stale resourceVersion (an update)."""


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate (token file re-read: bound tokens rotate)."""

    server: str
    token: str | None = None
    token_path: str | None = None
    ca_path: str | None = None
    ca_data: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    insecure: bool = False
    timeout_s: float = 10.0

    def __repr__(self) -> str:  # never print the token
        return f"Connection(server={self.server!r}, insecure={self.insecure})"


def api_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
    """``/api/v1/namespaces/ns/pods/p/resize`` or ``/apis/apps/v1/namespaces/ns/deployments``."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path


class KubeApi:
    """Async REST calls with retries; one aiohttp session, opened lazily in the running loop."""

    def __init__(self, connection: Connection, *, retries: int = 5, backoff_s: float = 0.1, max_backoff_s: float = 2.0) -> None:
        self.connection = connection
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[float, str] | None = None
        self.calls = 0
        self.retried = 0
        self._discovered: dict[str, bool] = {}

    def _ssl(self) -> ssl.SSLContext | bool:
        conn = self.connection
        if not conn.server.startswith("https"):
            return False
        if conn.insecure:
            return False
        context = ssl.create_default_context(cafile=conn.ca_path, cadata=conn.ca_data)
        if conn.cert_path and conn.key_path:
            context.load_cert_chain(conn.cert_path, conn.key_path)
        return context

    def _bearer(self) -> str | None:
        conn = self.connection
        if conn.token_path:
            now = time.monotonic()
            if self._token is None or now - self._token[0] > 60:
                self._token = (now, Path(conn.token_path).read_text(encoding="utf-8").strip())
            return self._token[1]
        return conn.token

    async def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # the timeout bounds the exchange with the server, not the wait for a pooled connection: with many
            # services stepping at once, requests queue for the pool and a total timeout would fail them unsent
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connection.timeout_s, sock_read=self.connection.timeout_s)
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=64)
            self._session = aiohttp.ClientSession(base_url=self.connection.server, timeout=timeout, connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, body: Any = None, *, params: Mapping[str, str] | None = None, content_type: str = "application/json"
    ) -> Any:
        """One call, retried on 5xx/429/transport errors; raises NotFound, Conflict or ApiError."""
        headers = {"Accept": "application/json"}
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        delay = self.backoff_s
        attempt = 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                session = await self._session_for_loop()
                async with session.request(method, path, data=data, headers=headers, params=params) as response:
                    text = await response.text()
                    if response.status < 400:
                        return json.loads(text) if text else {}
                    error = self._error(response.status, text, method, path)
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = ApiError(0, type(exc).__name__, str(exc) or "transport error", method, path)
            except RuntimeError as exc:  # the session was closed under us (re-login, shutdown): open a new one
                if "closed" not in str(exc):
                    raise
                error = ApiError(0, "SessionClosed", str(exc), method, path)
            retriable = error.status == 0 or error.status in RETRIABLE_STATUS
            if not retriable or attempt > self.retries:
                raise error
            self.retried += 1
            log.debug("retrying %s %s after %s (attempt %d)", method, path, error.reason, attempt)
            await asyncio.sleep(delay)
            delay = min(self.max_backoff_s, delay * 2)

    @staticmethod
    def _error(status: int, text: str, method: str, path: str) -> ApiError:
        reason, message = "", text[:300]
        try:
            payload = json.loads(text)
            reason = str(payload.get("reason", ""))
            message = str(payload.get("message", ""))[:300]
        except (ValueError, AttributeError):
            pass
        if status == 404:
            return NotFound(status, reason or "NotFound", message, method, path)
        if status == 409:
            return Conflict(status, reason or "Conflict", message, method, path)
        return ApiError(status, reason or "Error", message, method, path)

    # ------------------------------------------------------------------ verbs
    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", path)
        except NotFound:
            return None
        return result

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        """The items, without ``metadata.managedFields``: the operator never reads them, and they are often
        the larger part of an object; a listed view is kept between steps for every service."""
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", path, params=params)
        items = list(result.get("items", []))
        for item in items:
            item.get("metadata", {}).pop("managedFields", None)
        return items

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", path, dict(body), params={"fieldManager": FIELD_MANAGER})
        return result

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PATCH", path, dict(patch), content_type=MERGE_PATCH, params={"fieldManager": FIELD_MANAGER})
        return result

    async def apply(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply of our whole intent for the object (JSON is valid YAML); we own what we send.

        ``force``: a field another manager changed is taken back (the operator is the controller of these
        objects); fields we sent before and no longer send are removed by the server.
        """
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        result: dict[str, Any] = await self.request("PATCH", path, dict(obj), content_type=APPLY_PATCH, params=params)
        return result

    async def has_subresource(self, group_version: str, resource: str) -> bool:
        """Whether the server serves ``resource`` (e.g. ``pods/resize``) in ``group_version``, from discovery.

        Cached for the life of the client: the answer changes only with a server upgrade.
        """
        key = f"{group_version}:{resource}"
        if key not in self._discovered:
            path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            listing = await self.request("GET", path)
            names = {str(r.get("name")) for r in listing.get("resources", [])}
            self._discovered[key] = resource in names
        return self._discovered[key]

    async def delete(self, path: str) -> bool:
        """Delete in the background (owned objects follow); False when it was already gone."""
        try:
            await self.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
        except NotFound:
            return False
        return True

    async def server_minor_version(self) -> int | None:
        """The server's minor version (``/version``), None when it cannot be read."""
        try:
            info = await self.request("GET", "/version")
            return int(str(info.get("minor", "")).rstrip("+"))
        except (ApiError, ValueError):
            return None
