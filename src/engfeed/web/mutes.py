"""The mute rules page and API (see engfeed.rules).

Routes::

    GET    /rules                 the rules, with how many articles each hides; ?kind=&value=
                                  previews a rule (count and examples) before it is saved
    POST   /rules                 save a rule (CSRF-protected), 303 back to /rules
    POST   /rules/{id}/remove     delete one (CSRF-protected)
    GET    /api/rules             the rules as JSON
    POST   /api/rules             {"kind", "value", "preview": bool}: preview or save one
    DELETE /api/rules/{id}        delete one
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engfeed.errors import EngfeedError
from engfeed.rules import KINDS, MAX_PATTERN, RuleError
from engfeed.text import clean_text
from engfeed.web.responses import JSONResponse, json_error, json_object
from engfeed.web.security import CSRF_FIELD, same_origin

if TYPE_CHECKING:
    from engfeed.web.app import Site

KIND_LABELS = {
    "term": "Word or phrase",
    "regex": "Regular expression",
    "source": "Source",
    "angle": "Useful angle",
}
DONE_MESSAGES = {
    "added": "Rule saved: it hides {n} now, and new articles as they arrive.",
    "removed": "Rule removed.",
}
MAX_RULE_BODY = 16 * 1024


class RulePages:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.feed = site.feed

    def routes(self) -> list[Route]:
        return [
            Route("/rules", self.page, methods=["GET"], name="rules"),
            Route("/rules", self.add, methods=["POST"], name="rules_add"),
            Route("/rules/{id:int}/remove", self.remove, methods=["POST"], name="rules_remove"),
            Route("/api/rules", self.api_list, methods=["GET"], name="api_rules"),
            Route("/api/rules", self.api_add, methods=["POST"], name="api_rules_add"),
            Route("/api/rules/{id:int}", self.api_remove, methods=["DELETE"], name="api_rules_remove"),
        ]

    # -- page ------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        params = request.query_params
        kind = clean_text(params.get("kind") or "", 20)
        raw = (params.get("value") or "")[: MAX_PATTERN + 50]
        value = raw if kind == "regex" else clean_text(raw, MAX_PATTERN + 50)  # a regex keeps its spaces
        preview = None
        error = None
        if (kind or value) and _cross_site(request):
            error = "Previews run only from this site's own Rules form (this link came from elsewhere)."
        elif kind or value:
            try:
                preview = await self.site.in_thread(partial(self.feed.preview_mute, kind or "term", value))
            except RuleError as exc:
                error = str(exc)
        done = params.get("done") or ""
        count = params.get("n") or "0"
        n = int(count) if count.isascii() and count.isdigit() and len(count) <= 9 else 0
        message = DONE_MESSAGES.get(done, "").format(n=_articles(n))
        return await self._render(
            request, kind=kind, value=value, preview=preview, error=error, message=message
        )

    async def _render(self, request: Request, *, status: int = 200, **context: Any) -> Response:
        context.setdefault("message", "")
        rules = await self.site.in_thread(self.feed.mute_rules)
        sources = [name for name, _ in self.site.source_counts()]
        page = self.site.render(
            request,
            "rules.html",
            status=status,
            rules=rules,
            kinds=[(k, KIND_LABELS[k]) for k in KINDS],
            sources=sources,
            **context,
        )
        return self.site.personal(request, page)

    async def add(self, request: Request) -> Response:
        try:
            form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_RULE_BODY)
        except Exception:  # malformed or oversized bodies: python-multipart raises assorted errors
            return self.site.error_page(request, 400, "Rule not saved", "The form could not be read.")
        kind = str(form.get("kind") or "")
        value = str(form.get("value") or "")
        if not self.site.csrf.valid(request, form.get(CSRF_FIELD)):
            return self.site.error_page(
                request,
                403,
                "Rule not saved",
                "The form's security token is missing or stale. Reload the page.",
            )
        try:
            saved = await self.site.in_thread(partial(self.feed.add_mute, kind, value))
        except RuleError as exc:
            return await self._render(
                request, status=400, kind=kind, value=value[: MAX_PATTERN + 50], preview=None, error=str(exc)
            )
        return RedirectResponse(f"/rules?done=added&n={saved.hidden}", status_code=303)

    async def remove(self, request: Request) -> Response:
        try:
            form = await request.form(max_files=0, max_fields=5)
        except Exception:
            return self.site.error_page(request, 400, "Rule not removed", "The form could not be read.")
        if not self.site.csrf.valid(request, form.get(CSRF_FIELD)):
            return self.site.error_page(
                request,
                403,
                "Rule not removed",
                "The form's security token is missing or stale. Reload the page.",
            )
        try:
            await self.site.in_thread(partial(self.feed.remove_mute, int(request.path_params["id"])))
        except EngfeedError as exc:
            return self.site.error_page(request, 404, "Rule not removed", str(exc))
        return RedirectResponse("/rules?done=removed", status_code=303)

    # -- JSON API -------------------------------------------------------------------------
    async def api_list(self, request: Request) -> Response:
        rules = await self.site.in_thread(self.feed.mute_rules)
        return JSONResponse({"rules": [r.to_json() for r in rules]})

    async def api_add(self, request: Request) -> Response:
        """CSRF: a JSON body reaches another origin only after a CORS preflight, never granted."""
        if not same_origin(request):
            return json_error(403, "cross-origin request refused")
        body = await json_object(request, limit=MAX_RULE_BODY)
        if isinstance(body, Response):
            return body
        kind, value, preview = body.get("kind"), body.get("value"), body.get("preview", False)
        if not isinstance(kind, str) or kind not in KINDS:
            return json_error(400, f"kind must be one of {', '.join(KINDS)}", "kind")
        if not isinstance(value, str):
            return json_error(400, "value must be a string", "value")
        if not isinstance(preview, bool):
            return json_error(400, "preview must be true or false", "preview")
        action = self.feed.preview_mute if preview else self.feed.add_mute
        try:
            result = await self.site.in_thread(partial(action, kind, value))
        except RuleError as exc:
            return json_error(400, str(exc), "value")
        data = result.to_json()
        data["saved"] = not preview
        return JSONResponse(data, status_code=200 if preview else 201)

    async def api_remove(self, request: Request) -> Response:
        if not same_origin(request):
            return json_error(403, "cross-origin request refused")
        try:
            rule = await self.site.in_thread(partial(self.feed.remove_mute, int(request.path_params["id"])))
        except EngfeedError as exc:
            return json_error(404, str(exc), "id")
        return JSONResponse(rule.to_json())


def _cross_site(request: Request) -> bool:
    """Did another site make the browser send this (a link or an image on its page)?

    A preview runs a pattern on every stored article: another site must not be able to make
    the reader's browser do that. Browsers say where a request comes from in Sec-Fetch-Site
    ("none" when the reader typed the address)."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def _articles(n: int) -> str:
    return f"{n} article" if n == 1 else f"{n} articles"
