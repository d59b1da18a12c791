"""The JSON API under /api, its OpenAPI 3.1 document and the /docs page rendered from it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

import test_web
from engfeed.errors import DatabaseUnavailable
from engfeed.feed import Feed
from engfeed.models import Article
from engfeed.web.app import create_app
from test_web import ALL, BASE, CORE, TOTAL, build_feed, client_for, failing_sources

LIST_FIELDS = {
    "text_source",
    "muted",
    "id",
    "url",
    "title",
    "source",
    "published",
    "updated",
    "date_estimated",
    "author",
    "tags",
    "excerpt",
    "angles",
    "saved",
    "read",
    "note",
}
HIT_FIELDS = LIST_FIELDS | {"score", "context", "why"}


# The same module-scoped store and client as test_web (each module builds its own).
feed = test_web.feed
client = test_web.client


def error_of(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status and body["error"]["message"]
    return dict(body["error"])


# -- /api/articles -----------------------------------------------------------------------------
def test_articles_shape_matches_list_json(client: TestClient, feed: Feed) -> None:
    r = client.get("/api/articles", params={"limit": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"articles", "total", "next_cursor"}
    assert body["total"] == TOTAL
    assert [a["id"] for a in body["articles"]] == ["slack-multicloud", "netflix-evacuation", "meta-ledger"]
    first = body["articles"][0]
    assert set(first) == LIST_FIELDS
    art = feed.article("slack-multicloud")
    assert art is not None
    assert first == art.to_json()
    assert first["published"] == "2025-03-04T12:00:00Z"
    assert isinstance(body["next_cursor"], str)


def test_articles_cursor_walk(client: TestClient) -> None:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/articles", params=params).json()
        seen.extend(a["id"] for a in body["articles"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [a.uid for a in sorted(ALL, key=lambda a: a.published, reverse=True)]


def test_articles_filters(client: TestClient, feed: Feed) -> None:
    body = client.get("/api/articles", params=[("source", "Netflix"), ("source", "slack")]).json()
    assert {a["id"] for a in body["articles"]} == {"netflix-evacuation", "slack-multicloud"}
    assert body["total"] == 2 and body["next_cursor"] is None
    body = client.get("/api/articles", params={"source": "Netflix,Slack"}).json()
    assert body["total"] == 2
    body = client.get("/api/articles", params={"since": "2025-03-02", "until": "2025-03-04"}).json()
    assert [a["id"] for a in body["articles"]] == ["netflix-evacuation", "meta-ledger"]
    body = client.get("/api/articles", params={"since": "2025-03-04T00:00:00Z"}).json()
    assert [a["id"] for a in body["articles"]] == ["slack-multicloud"]
    name, count = feed.angle_counts()[0]
    body = client.get("/api/articles", params={"angle": name, "limit": 200}).json()
    assert body["total"] == count == len(body["articles"])
    assert all(name in [m["name"] for m in a["angles"]] for a in body["articles"])
    body = client.get("/api/articles", params={"source": "Nobody"}).json()
    assert body == {"articles": [], "total": 0, "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-02-30"}, "until"),
        ({"since": "2025-03-05", "until": "2025-03-01"}, "until"),
        ({"since": "0001-01-01"}, "since"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "1.2.3"}, "cursor"),
        ({"cursor": "9" * 40 + ".1"}, "cursor"),
        ({"source": [f"s{i}" for i in range(30)]}, "source"),
    ],
)
def test_articles_bad_params_are_400_json(client: TestClient, params: dict[str, Any], param: str) -> None:
    assert error_of(client.get("/api/articles", params=params), 400)["param"] == param


@pytest.mark.parametrize("limit", ["201", "100000", "1000000000", "9" * 400])
def test_articles_limit_out_of_range_says_the_range(client: TestClient, limit: str) -> None:
    error = error_of(client.get("/api/articles", params={"limit": limit}), 400)
    assert error["param"] == "limit"
    assert error["message"] == "limit must be between 1 and 200"


def test_articles_largest_limit_returns_everything(client: TestClient) -> None:
    body = client.get("/api/articles", params={"limit": 200}).json()
    assert len(body["articles"]) == TOTAL


# -- /api/search -------------------------------------------------------------------------------
def test_search_shape(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": "region failover", "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"query", "hits", "count"}
    assert body["query"] == "region failover"
    assert body["count"] == len(body["hits"]) >= 1
    hit = body["hits"][0]
    assert hit["id"] == "netflix-evacuation"
    assert set(hit) == HIT_FIELDS
    assert isinstance(hit["score"], float)
    assert "<mark>" in hit["context"]
    assert {"bm25_rank", "dense_rank", "recency"} <= set(hit["why"])
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_search_filters_and_limits(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "build caching", "source": "Dropbox", "limit": 3}).json()
    assert body["count"] == 3 and all(h["source"] == "Dropbox" for h in body["hits"])
    body = client.get("/api/search", params={"q": "build caching", "since": "2025-03-01"}).json()
    assert body["count"] == 0


def test_search_requires_q(client: TestClient) -> None:
    assert error_of(client.get("/api/search"), 400)["param"] == "q"
    assert error_of(client.get("/api/search", params={"q": "   \x00 "}), 400)["param"] == "q"
    assert error_of(client.get("/api/search", params={"q": "x", "limit": "-1"}), 400)["param"] == "limit"


def test_search_odd_queries_are_fine(client: TestClient) -> None:
    for q in ['"unbalanced', "NEAR(a b)", "a AND OR NOT", "*", "-", "title:x", "ü日本語", "x" * 1000]:
        r = client.get("/api/search", params={"q": q})
        assert r.status_code == 200, q
        assert r.json()["count"] == len(r.json()["hits"])


# -- single article, related -------------------------------------------------------------------
def test_article_detail(client: TestClient) -> None:
    r = client.get("/api/articles/slack-multicloud")
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= LIST_FIELDS
    assert "We cut p99 latency by half" in body["content_html"]
    assert body["page_url"] == "/a/slack-multicloud"
    hostile = client.get("/api/articles/xss-attempt").json()
    assert hostile["title"] == "<script>alert(1)</script>"  # JSON carries text as is
    assert "<script" not in hostile["content_html"] and "javascript:" not in hostile["content_html"]


def test_article_unknown_is_404_json(client: TestClient) -> None:
    assert error_of(client.get("/api/articles/nope"), 404)["param"] == "uid"
    assert error_of(client.get("/api/articles/nope/related"), 404)["param"] == "uid"


def test_related(client: TestClient) -> None:
    r = client.get("/api/articles/filler-003/related", params={"limit": 4})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "filler-003"
    assert len(body["related"]) <= 4
    for hit in body["related"]:
        assert set(hit) == HIT_FIELDS and hit["id"] != "filler-003"
    assert (
        error_of(client.get("/api/articles/filler-003/related", params={"limit": "x"}), 400)["param"]
        == "limit"
    )


# -- sources, angles ---------------------------------------------------------------------------
def test_sources_with_health(tmp_path: Path) -> None:
    feed = build_feed(tmp_path / "src.db", CORE[:1])
    failing_sources(feed)
    with client_for(feed) as c:
        body = c.get("/api/sources").json()
    by_name = {s["name"]: s for s in body["sources"]}
    assert set(by_name) == {"Blocked", "Moved", "Busy", "Slow", "Nowhere", "Htmlpage", "Healthy", "Fresh"}
    blocked = by_name["Blocked"]
    assert blocked["health"] == "failing" and blocked["http_status"] == 403 and blocked["failures"] == 1
    assert "blocks automated readers" in blocked["hint"]
    assert blocked["next_due"].endswith("Z") and blocked["last_attempt"].endswith("Z")
    assert blocked["last_success"] is None
    assert "moved or was removed" in by_name["Moved"]["hint"]
    assert by_name["Healthy"]["health"] == "ok" and by_name["Healthy"]["hint"] is None
    assert by_name["Fresh"]["health"] == "never fetched"
    for key in (
        "name",
        "url",
        "site_url",
        "articles",
        "last_attempt",
        "last_success",
        "http_status",
        "error",
        "failures",
        "next_due",
        "health",
        "hint",
    ):
        assert key in blocked


def test_angles(client: TestClient, feed: Feed) -> None:
    body = client.get("/api/angles").json()
    names = [a["name"] for a in body["angles"]]
    assert names == [a.name for a in feed.angles()]
    counts = dict(feed.angle_counts())
    for angle in body["angles"]:
        assert angle["description"]
        assert angle["terms"]
        assert angle["articles"] == counts.get(angle["name"], 0)


# -- errors, health ----------------------------------------------------------------------------
def test_unknown_api_path_and_method_are_json(client: TestClient) -> None:
    assert error_of(client.get("/api/nothing"), 404)
    assert error_of(client.post("/api/articles"), 405)


def test_healthz(client: TestClient, feed: Feed) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    database = body["database"]
    assert database["ok"] and database["backend"] == feed.store.backend
    assert database["schema"] == database["latest"] > 0
    assert body["background"]["kind"] == "in-process" and body["background"]["enabled"] is False


def test_healthz_is_503_when_the_database_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    feed = build_feed(tmp_path / "down.db", CORE[:1])

    def down() -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(feed.store, "ping", down)
    with client_for(feed) as c:
        r = c.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "error" and r.json()["database"]["ok"] is False
    assert "refused" not in r.text  # details go to the log, not to whoever asks
    feed.close()


def test_counts_cache_follows_store_changes(tmp_path: Path) -> None:
    feed = build_feed(tmp_path / "cache.db", CORE[:2])
    with client_for(feed) as c:
        assert c.get("/api/articles").json()["total"] == 2
        assert "2 articles" in c.get("/").text
        site = c.app.state.site  # type: ignore[attr-defined]
        hits_before = site.pages.hits
        c.get("/")
        c.get("/api/articles")
        assert site.pages.hits == hits_before + 2, "unchanged store: whole responses come from the cache"
        misses = site.cache.misses
        c.get("/?cursor=1741089600.1")  # a page not seen yet: rendered, counts still cached
        assert site.cache.misses == misses
        new = Article(
            uid="late",
            url="https://example.com/late",
            title="A late article",
            published=BASE + timedelta(days=1),
            source="Newco",
            excerpt="late",
        )
        with feed.store.transaction() as tx:
            feed.store.upsert_articles([new], source_id=None, conn=tx)
        assert c.get("/api/articles").json()["total"] == 3
        html = c.get("/").text
        assert "3 articles" in html and 'data-filter-source="Newco"' in html


# -- OpenAPI and docs --------------------------------------------------------------------------
def resolve(doc: dict[str, Any], node: Any) -> None:
    """Every $ref in the document points at something."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref is not None:
            assert isinstance(ref, str) and ref.startswith("#/")
            target: Any = doc
            for part in ref[2:].split("/"):
                target = target[part]
        for value in node.values():
            resolve(doc, value)
    elif isinstance(node, list):
        for value in node:
            resolve(doc, value)


def test_openapi_document(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    for path in (
        "/api/articles",
        "/api/articles/{uid}",
        "/api/articles/{uid}/related",
        "/api/search",
        "/api/sources",
        "/api/angles",
        "/feed.atom",
        "/feed.json",
    ):
        assert "get" in doc["paths"][path], path
        op = doc["paths"][path]["get"]
        assert op["operationId"] and op["summary"] and "200" in op["responses"]
    resolve(doc, doc)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_every_documented_path_is_routed(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    routes = [r for r in client.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    for path, item in doc["paths"].items():
        concrete = path.replace("{uid}", "slack-multicloud")
        if "get" in item:
            r = client.get(concrete, params={"q": "latency"} if "search" in path else None)
            assert r.status_code == 200, path
        matching = [route for route in routes if re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path) == path]
        assert matching, path
        served = set().union(*(route.methods or set() for route in matching))
        assert {m.upper() for m in item} <= served, path


def test_documented_list_fields_match_the_handler(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    article = doc["components"]["schemas"]["Article"]
    assert set(article["properties"]) == LIST_FIELDS
    hit = doc["components"]["schemas"]["SearchHit"]["allOf"][1]
    assert set(hit["properties"]) == HIT_FIELDS - LIST_FIELDS
    params = {p["name"] for p in doc["paths"]["/api/articles"]["get"]["parameters"]}
    assert params == {"source", "angle", "since", "until", "show", "include_muted", "limit", "cursor"}


def test_docs_page_renders_from_the_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    r = client.get("/docs")
    assert r.status_code == 200
    for path, item in doc["paths"].items():
        for op in item.values():
            assert f'id="op-{op["operationId"]}"' in r.text
            assert op["summary"] in r.text
        assert f"<code>{path}</code>" in r.text
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in r.text
    assert "swagger" not in r.text.lower() and "cdn" not in r.text.lower()
    assert re.search(r"<code>cursor</code>", r.text)


def test_a_database_outage_is_a_503_not_a_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = build_feed(tmp_path / "away.db", CORE[:1])

    def away(*args: object, **kwargs: object) -> object:
        raise DatabaseUnavailable("the database did not answer: connection refused")

    uid = feed.store.list_articles(limit=1)[0].uid
    monkeypatch.setattr(feed.store, "list_articles", away)
    monkeypatch.setattr(feed, "search", away)  # handlers that turn bad input into 400 let it pass
    monkeypatch.setattr(feed, "related", away)
    app = create_app(feed, refresh_interval_min=0, allowed_hosts=["testserver"])
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        for path in ("/api/articles", "/api/search?q=latency", f"/api/articles/{uid}/related"):
            api = c.get(path)
            assert api.status_code == 503 and api.headers["retry-after"] == "10", path
            assert "not answering" in api.json()["error"]["message"]
        for path in ("/", "/?q=latency", f"/a/{uid}"):
            page = c.get(path)
            assert page.status_code == 503 and "not available right now" in page.text, path
    feed.close()
