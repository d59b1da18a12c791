"""JSON responses of the API: one encoding and one error shape for every handler."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response


class JSONResponse(Response):
    """Compact UTF-8 JSON; non-finite floats (never valid JSON) become ``null``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "replace")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_error(status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message, "param": param}}, status_code=status)


async def json_object(
    request: Request, *, limit: int, param: str | None = None
) -> dict[str, Any] | JSONResponse:
    """The request's body as a JSON object (``{}`` when empty), or the error to answer with:
    413 past ``limit`` bytes, 415 when it is not sent as JSON, 400 when it is not an object."""
    raw = await request.body()
    if len(raw) > limit:
        return json_error(413, f"request body over {limit // 1024} KB", param)
    if not raw.strip():
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return json_error(415, "send the body as application/json")
    try:
        parsed = json.loads(raw)
    except ValueError:
        return json_error(400, "the body is not valid JSON")
    if not isinstance(parsed, dict):
        return json_error(400, "the body must be a JSON object")
    return parsed
