"""The digest on the page, as a weekly Atom feed, and its unsubscribe link (see engfeed.digest).

Routes::

    GET  /digest                the digest of the last ?days= (default 7) days, previewed
    GET  /digest.md, .txt       the same as Markdown or plain text
    GET  /digest.atom           one entry per ISO week: this week so far and the three before
    GET  /digest/unsubscribe    ?address=&token= from a digest mail: asks to confirm
    POST /digest/unsubscribe    unsubscribes (also the RFC 8058 one-click POST of mail clients)
    GET  /api/digest            the digest as JSON (?days=)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engfeed import config
from engfeed.digest import Digest, render, week_of, week_start
from engfeed.errors import ConfigError
from engfeed.text import clean_text
from engfeed.web.feeds import DigestItem, FeedMeta, digest_atom
from engfeed.web.params import BadParam, date_param, parse_limit
from engfeed.web.responses import JSONResponse, json_error

if TYPE_CHECKING:
    from engfeed.web.app import Site

MAX_DAYS = 90
ATOM_WEEKS = 4
DAY_CHOICES = (1, 7, 14, 30)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DigestPages:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.feed = site.feed

    def routes(self) -> list[Route]:
        return [
            Route("/digest", self.page, name="digest"),
            Route("/digest.md", self.download, name="digest_md"),
            Route("/digest.txt", self.download, name="digest_txt"),
            Route("/digest.atom", self.atom, name="digest_atom"),
            Route(
                "/digest/unsubscribe", self.unsubscribe, methods=["GET", "POST"], name="digest_unsubscribe"
            ),
            Route("/api/digest", self.api, name="api_digest"),
        ]

    def _days(self, request: Request) -> int:
        try:
            return parse_limit(request.query_params.get("days"), default=7, maximum=MAX_DAYS)
        except BadParam as exc:
            raise BadParam("days", exc.message.replace("limit", "days")) from None

    async def _digest(self, request: Request, days: int) -> Digest:
        base = str(request.base_url).rstrip("/")
        return await self.site.in_thread(partial(self.feed.digest, days=days, base_url=base))

    async def page(self, request: Request) -> Response:
        try:
            days = self._days(request)
        except BadParam as exc:
            return self.site.error_page(request, 400, "Bad request", f"days: {exc.message}")
        digest = await self._digest(request, days)
        try:
            settings: config.DigestSettings | None = config.digest_settings()
            problem = None
        except ConfigError as exc:
            settings, problem = None, str(exc)
        last = await self.site.in_thread(self.feed.last_digest_send)
        page = self.site.render(
            request,
            "digest.html",
            digest=digest,
            days=days,
            day_choices=sorted({*DAY_CHOICES, days}),
            settings=settings,
            settings_problem=problem,
            weekday=WEEKDAYS[(settings.day if settings else 1) - 1],
            last_send=last,
        )
        return self.site.personal(request, page)

    async def download(self, request: Request) -> Response:
        try:
            days = self._days(request)
        except BadParam as exc:
            return Response(f"{exc}\n", status_code=400, media_type="text/plain")
        digest = await self._digest(request, days)
        if request.url.path.endswith(".md"):
            return Response(render(digest, "md"), media_type="text/markdown; charset=utf-8")
        return Response(render(digest, "text"), media_type="text/plain; charset=utf-8")

    async def atom(self, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")

        async def make() -> Response:
            items = await self.site.in_thread(partial(self._weeks, base))
            meta = FeedMeta(
                title="Engineering Feed — weekly digest",
                subtitle="The most useful new articles of each week, by angle.",
                self_url=f"{base}/digest.atom",
                home_url=f"{base}/digest",
                id=f"{base}/digest.atom",
            )
            return Response(digest_atom(meta, items), media_type="application/atom+xml; charset=utf-8")

        hour = datetime.now(UTC).strftime("%Y%m%d%H")  # the current week's entry grows: re-made hourly
        return await self.site.cached(request, ("digest_atom", base, hour), make)

    def _weeks(self, base: str) -> list[DigestItem]:
        now = datetime.now(UTC).astimezone()
        start = week_start(now)
        items: list[DigestItem] = []
        for back in range(ATOM_WEEKS):
            first = start - timedelta(weeks=back)
            end = min(now, first + timedelta(weeks=1))
            digest = self.feed.digest_between(first, end, base_url=base)
            week = week_of(first)
            title = f"Week {week[-2:]}: {digest.period}" + (" (so far)" if back == 0 else "")
            since = date_param(first)  # the local Monday 00:00, as a UTC instant
            items.append(
                DigestItem(week, title, end.astimezone(UTC), render(digest, "html"), f"{base}/?since={since}")
            )
        return items

    async def unsubscribe(self, request: Request) -> Response:
        address = clean_text(request.query_params.get("address") or "", 320)
        token = clean_text(request.query_params.get("token") or "", 100)
        if request.method == "GET":
            return self.site.render(
                request,
                "unsubscribe.html",
                address=address,
                token=token,
                done=False,
                valid=bool(address and token),
            )
        ok = await self.site.in_thread(partial(self.feed.unsubscribe, address, token))
        if not ok:
            return self.site.error_page(
                request, 400, "Not unsubscribed", "This unsubscribe link is not valid (was it copied whole?)."
            )
        return self.site.render(request, "unsubscribe.html", address=address, token="", done=True, valid=True)

    async def api(self, request: Request) -> Response:
        try:
            days = self._days(request)
        except BadParam as exc:
            return json_error(400, exc.message, "days")
        return JSONResponse((await self._digest(request, days)).to_json())
