"""Transport-level guards, the single-object form and metrics of the scoring API (an ASGI middleware).

Before BentoML parses a request to ``/score``: the content type must be JSON (415 otherwise), the
body at most ``PIPELINE_SERVING_MAX_BODY_BYTES`` (413, checked on the declared length and while
reading, so a chunked body cannot get around it) and valid JSON (400). Field validation is
pydantic's (400 with the field's location, see :mod:`serving.schemas`).

``/score`` is BentoML's batchable API, which takes a list: a single JSON object is passed on as a
list of one and its answer unwrapped, and ``?explain=true`` is routed to ``/score/explain``. Every
answer of every route is counted by route and status, and ``/score``'s latency observed, for
``/metrics``.
"""

from __future__ import annotations

import json
import time

from serving import metrics

GUARDED = ("/score", "/score/explain")
STATUS = None  # set by the service: a callable giving /readyz's body (what serves, what was refused)
EXPLAIN = "/score/explain"


async def _reply(send, status: int, error: str, field: str) -> None:
    body = json.dumps({"error": error, "detail": [{"loc": [field], "msg": error}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drain(receive, limit: int) -> None:
    """Read and drop the rest of a refused body (up to ``limit`` bytes), so the client sees the answer."""
    seen, more = 0, True
    while more and seen < limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        seen += len(message.get("body", b""))
        more = message.get("more_body", False)


class RequestGuard:
    def __init__(self, app, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        started = time.perf_counter()
        status_seen = {"status": 499}  # stays 499 when the client goes away before an answer

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
            await send(message)

        try:
            if path in GUARDED and scope["method"] == "POST":
                await self._guarded(scope, receive, counting_send)
            elif path == "/readyz" and STATUS is not None:
                await self.app(scope, receive, _with_status(counting_send))
            else:
                await self.app(scope, receive, counting_send)
        finally:
            route = path if path in GUARDED or path in metrics.KNOWN_ROUTES else "other"
            metrics.RESPONSES.labels(route=route, status=str(status_seen["status"])).inc()
            if path in GUARDED:
                metrics.LATENCY.labels(route=route).observe(time.perf_counter() - started)

    async def _too_large(self, receive, send) -> None:
        await _drain(receive, 16 * self.max_body_bytes)
        limit = f"the body is larger than {self.max_body_bytes} bytes (PIPELINE_SERVING_MAX_BODY_BYTES)"
        await _reply(send, 413, limit, "body")

    async def _guarded(self, scope, receive, send):
        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            await _drain(receive, 16 * self.max_body_bytes)
            shown = ctype.decode("latin-1") or "none"
            return await _reply(send, 415, f"Content-Type must be application/json, not {shown}", "Content-Type")
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return await self._too_large(receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return await self._too_large(receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        if size == 0:
            return await _reply(send, 400, "the body is empty: send a transaction or a list of them", "body")
        body, replayed = b"".join(chunks), False
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # some of these would be a 500 later
            return await _reply(send, 400, f"the body is not valid JSON: {exc}", "body")
        single = isinstance(parsed, dict)
        if single:
            body = b"[" + body + b"]"
        query = scope.get("query_string", b"").decode("latin-1").lower()
        explain = any(p in ("explain=true", "explain=1", "explain=yes") for p in query.split("&"))
        if explain:
            scope = {**scope, "path": EXPLAIN, "raw_path": EXPLAIN.encode()}

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if not single:
            return await self.app(scope, replay, send)
        await self.app(scope, replay, _unwrapping(send))


def _with_status(send):
    """A ``send`` that answers ``/readyz`` with JSON saying what serves and which versions were refused, and why."""
    start: dict = {}

    async def wrapped(message):
        if message["type"] == "http.response.start":
            start.update(message)
            return None
        if message["type"] != "http.response.body" or message.get("more_body", False):
            return None
        try:
            payload = {"ready": start.get("status") == 200, **STATUS()}
        except Exception as exc:  # noqa: BLE001 (the probe's status code matters more than its body)
            payload = {"ready": start.get("status") == 200, "error": str(exc)}
        body = json.dumps(payload).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped


def _unwrapping(send):
    """A ``send`` that answers a single-object request with the object, not a list of one."""
    start: dict = {}
    chunks: list[bytes] = []

    async def wrapped(message):
        if message["type"] == "http.response.start":
            start.update(message)
            return None
        if message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return None
        body = b"".join(chunks)
        if start.get("status") == 200:
            try:
                answer = json.loads(body)
                if isinstance(answer, list) and len(answer) == 1:
                    body = json.dumps(answer[0]).encode()
            except ValueError:
                pass
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return wrapped
