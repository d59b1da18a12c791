"""The reader's verdicts on useful angles, from the page and the API (engfeed.angles_feedback).

Routes::

    POST /a/{uid}/angles              "Not this angle" / "Add angle" (CSRF-protected form)
    GET  /api/articles/{uid}/angles   why the article has (or lacks) each angle
    POST /api/articles/{uid}/angles   {"angle", "verdict": "yes"|"no"|"clear"}
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engfeed.errors import ConfigError, EngfeedError
from engfeed.web.params import local_path
from engfeed.web.responses import JSONResponse, json_error, json_object
from engfeed.web.security import CSRF_FIELD, same_origin

if TYPE_CHECKING:
    from engfeed.web.app import Site

MAX_UID = 200
MAX_BODY = 4096
DONE = {"yes": "angle-added", "no": "angle-removed", "clear": "angle-cleared"}


class AnglePages:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.feed = site.feed

    def routes(self) -> list[Route]:
        return [
            Route("/a/{uid}/angles", self.form, methods=["POST"], name="form_angles"),
            Route("/api/articles/{uid}/angles", self.api_explain, methods=["GET"], name="api_angles_explain"),
            Route(
                "/api/articles/{uid}/angles", self.api_feedback, methods=["POST"], name="api_angles_feedback"
            ),
        ]

    async def form(self, request: Request) -> Response:
        uid = str(request.path_params["uid"])[:MAX_UID]
        try:
            form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_BODY)
        except Exception:  # malformed bodies: python-multipart raises assorted errors
            return self.site.error_page(request, 400, "Not saved", "The form could not be read.")
        if not self.site.csrf.valid(request, form.get(CSRF_FIELD)):
            return self.site.error_page(
                request, 403, "Not saved", "The form's security token is missing or stale. Reload the page."
            )
        angle, verdict = str(form.get("angle") or ""), str(form.get("verdict") or "")
        if self.feed.article(uid) is None:
            return self.site.error_page(request, 404, "Not saved", "No article has this id.")
        try:
            await self.site.in_thread(partial(self.feed.angle_feedback, uid, angle, verdict))
        except EngfeedError as exc:
            return self.site.error_page(request, 400, "Not saved", str(exc))
        target = local_path(str(form.get("next") or "")) or f"/a/{uid}"
        path, hash_, fragment = target.partition("#")  # the message goes before a #fragment
        joiner = "&" if "?" in path else "?"
        return RedirectResponse(
            f"{path}{joiner}done={DONE.get(verdict, 'angle')}{hash_}{fragment}", status_code=303
        )

    async def api_explain(self, request: Request) -> Response:
        uid = str(request.path_params["uid"])
        if len(uid) > MAX_UID:
            return json_error(404, "no such article", "uid")
        try:
            found = await self.site.in_thread(partial(self.feed.explain_angles, uid))
        except ConfigError as exc:  # e.g. a broken model install: the server's problem, not the id's
            return json_error(503, str(exc))
        except EngfeedError:
            return json_error(404, "no such article", "uid")
        return JSONResponse({"id": uid, "angles": [e.to_json() for e in found]})

    async def api_feedback(self, request: Request) -> Response:
        """CSRF: a JSON body reaches another origin only after a CORS preflight, never granted."""
        uid = str(request.path_params["uid"])
        if not same_origin(request):
            return json_error(403, "cross-origin request refused")
        body = await json_object(request, limit=MAX_BODY)
        if isinstance(body, Response):
            return body
        angle, verdict = body.get("angle"), body.get("verdict")
        if not isinstance(angle, str) or not angle.strip():
            return json_error(400, "angle must be an angle's name", "angle")
        if verdict not in ("yes", "no", "clear"):
            return json_error(400, "verdict must be yes, no or clear", "verdict")
        if len(uid) > MAX_UID or self.feed.article(uid) is None:
            return json_error(404, "no such article", "uid")
        try:
            result = await self.site.in_thread(partial(self.feed.angle_feedback, uid, angle, str(verdict)))
        except EngfeedError as exc:
            return json_error(400, str(exc), "angle")
        return JSONResponse(result.to_json())
