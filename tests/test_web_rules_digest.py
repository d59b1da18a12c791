"""Mute rules and the digest on the page, without a browser: the /rules page (preview, save,
remove, CSRF), "N hidden by your mute rules" on the feed and search with the muted cards
shown on request, the /api/rules and include_muted API, and /digest in every format with its
Atom feed and unsubscribe link.

The store is built from generated feeds dated just before now, so the digest of the last
days has something in it: one engineering source and one vendor source whose titles
("Webinar", "Now available") a term rule can hide.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from browser_support import BUNDLED_ANGLES, rss_items
from engfeed.feed import Feed
from engfeed.models import ArticleFilter
from pgserver import store_location
from test_web import NETFLIX_TEXT, SLACK_TEXT, card_uids, client_for
from test_web_reading import token_of

NOW = datetime.now(UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
ADDRESS = "reader@example.com"
MAIL_VARIABLES = ("ENGFEED_SMTP_URL", "ENGFEED_DIGEST_TO", "ENGFEED_DIGEST_FROM", "ENGFEED_DIGEST_DAY")

ACME = [
    ("acme-latency", "Cutting p99 latency in half", SLACK_TEXT, NOW - timedelta(hours=2)),
    ("acme-regions", "Keeping services up when a region fails", NETFLIX_TEXT, NOW - timedelta(days=1)),
    ("acme-hiring", "Hiring for our platform team", "We are growing the team.", NOW - timedelta(days=2)),
    ("acme-old", "Notes from last year", "An older post about build caching.", NOW - timedelta(days=40)),
]
VENDOR = [
    ("vendor-webinar", "Webinar: cloud cost basics", "Join our webinar next week.", NOW - timedelta(hours=3)),
    (
        "vendor-ga",
        "Now available: the managed queue",
        "Our queue is ready for you.",
        NOW - timedelta(hours=5),
    ),
    ("vendor-webinar-2", "Join our webinar on Postgres", "Sign up today.", NOW - timedelta(days=3)),
    (
        "vendor-ledger",
        "How we sharded the ledger",
        "A sharded ledger with two-phase commit.",
        NOW - timedelta(days=4),
    ),
]
TOTAL = len(ACME) + len(VENDOR)
WEBINARS = {"Webinar: cloud cost basics", "Join our webinar on Postgres"}


@pytest.fixture
def feed(tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> Iterator[Feed]:
    """Two sources on each backend."""
    (tmp_path / "acme.xml").write_bytes(rss_items("Acme Engineering", "https://acme.example", ACME))
    (tmp_path / "vendor.xml").write_bytes(rss_items("Vendor News", "https://vendor.example", VENDOR))
    f = Feed.open(store_location(request, backend, "rules"), angles_file=BUNDLED_ANGLES, embed=False)
    f.import_paths([tmp_path / "acme.xml", tmp_path / "vendor.xml"])
    yield f
    f.close()


@pytest.fixture
def client(feed: Feed, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    for name in MAIL_VARIABLES:  # the digest page says "Not mailed"
        monkeypatch.delenv(name, raising=False)
    with client_for(feed) as c:
        yield c


def plain(html: str) -> str:
    """The text of some HTML as a reader sees it: tags dropped, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())


def titles(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", t).replace("&amp;", "&")
        for t in re.findall(r'class="card__title"[^>]*>(.*?)</h3>', html, re.S)
    ]


def uid_of(feed: Feed, title: str) -> str:
    everything = feed.articles(ArticleFilter(include_muted=True), limit=100).articles
    found = [a.uid for a in everything if a.title == title]
    assert len(found) == 1, title
    return found[0]


def save_rule(client: TestClient, kind: str, value: str) -> Any:
    token = token_of(client.get("/").text)  # one token per visitor, on every page with a form
    return client.post(
        "/rules", data={"csrf_token": token, "kind": kind, "value": value}, follow_redirects=False
    )


# -- the rules page ------------------------------------------------------------------------------
def test_rules_page_renders_empty(client: TestClient) -> None:
    r = client.get("/rules")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>Mute rules — Engineering Feed</title>" in r.text
    assert 'id="rule-form"' in r.text and 'id="no-rules"' in r.text
    assert 'id="rule-preview"' not in r.text and 'id="rule-error"' not in r.text
    for kind in ("source", "term", "regex", "angle"):
        assert f'<option value="{kind}"' in r.text
    # the sources and angles are offered as suggestions
    suggestions = r.text.split('id="rule-suggestions"', 1)[1].split("</datalist>", 1)[0]
    assert '"Acme"' in suggestions and '"Vendor"' in suggestions
    assert '"systems performance"' in suggestions


def test_preview_shows_count_and_examples_and_saves_nothing(client: TestClient, feed: Feed) -> None:
    r = client.get("/rules", params={"kind": "term", "value": "webinar"})
    assert r.status_code == 200
    assert 'data-preview-count="2"' in r.text
    text = plain(r.text)
    assert f'term "webinar" would hide 2 articles of the {TOTAL} stored.' in text
    examples = r.text.split('id="preview-examples"', 1)[1].split("</ol>", 1)[0]
    assert "Webinar: cloud cost basics" in examples and "Join our webinar on Postgres" in examples
    assert "Now available" not in examples and "Vendor" in examples
    # the save form carries the normalised rule and a token
    save = r.text.split('id="rule-save-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="kind" value="term"' in save and 'name="value" value="webinar"' in save
    assert token_of(save) and 'id="rule-save"' in save
    assert feed.mute_rules() == []
    assert client.get("/api/rules").json() == {"rules": []}
    assert 'id="hidden-note"' not in client.get("/").text


def test_preview_normalises_a_source_name(client: TestClient) -> None:
    r = client.get("/rules", params={"kind": "source", "value": "  vendor "})
    assert r.status_code == 200
    assert 'data-preview-count="4"' in r.text
    assert "source Vendor would hide 4 articles" in plain(r.text)
    assert 'name="value" value="Vendor"' in r.text


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("regex", "(unclosed", "not a valid regular expression"),
        ("regex", "(a+)+$", ""),
        ("source", "Nobody Engineering", "no such source"),
        ("angle", "underwater basket weaving", "no such angle"),
        ("nonsense", "x", "unknown rule kind"),
        ("term", "", ""),
        ("term", "x" * 400, ""),
    ],
)
def test_bad_preview_shows_the_error_never_a_500(
    client: TestClient, feed: Feed, kind: str, value: str, message: str
) -> None:
    r = client.get("/rules", params={"kind": kind, "value": value})
    assert r.status_code in (200, 400), r.text[:500]
    assert 'id="rule-error"' in r.text and 'role="alert"' in r.text
    assert 'aria-invalid="true"' in r.text
    error = plain(r.text.split('id="rule-error"', 1)[1].split("</p>", 1)[0])
    assert message.lower() in error.lower()
    assert 'id="rule-preview"' not in r.text
    assert feed.mute_rules() == []


@pytest.mark.parametrize(
    "query",
    [
        "kind=regex&value=a%00b",
        "kind=regex&value=%ED%A0%80",
        "kind=term&value=" + "%FF" * 50,
        "kind=regex&value=" + "(" * 300,
        "kind=" + "x" * 5000 + "&value=x",
        "kind=term&value=" + "word+" * 2000,
        "value=webinar",
    ],
)
def test_odd_previews_never_fail(client: TestClient, feed: Feed, query: str) -> None:
    r = client.get(f"/rules?{query}")
    assert r.status_code in (200, 400)
    assert 'id="rule-form"' in r.text
    assert feed.mute_rules() == []


@pytest.mark.parametrize("n", ["0", "7", "", "-1", "abc", "1e9"])
def test_done_messages(client: TestClient, n: str) -> None:
    r = client.get("/rules", params={"done": "added", "n": n})
    assert r.status_code == 200
    count = n if n in ("0", "7") else "0"
    assert f"Rule saved: it hides {count} articles now" in plain(r.text)
    assert "Rule removed." in plain(client.get("/rules", params={"done": "removed"}).text)
    assert 'id="rules-message"' not in client.get("/rules", params={"done": "<b>x</b>"}).text


# str.isdigit() is true for "²" and other Unicode digits that int() refuses, and int() refuses
# over 4,300 digits: the count in the message is read defensively.
@pytest.mark.parametrize("n", ["\u00b2", "9" * 5000])
def test_odd_counts_in_the_done_message_never_fail(client: TestClient, n: str) -> None:
    r = client.get("/rules", params={"done": "added", "n": n})
    assert r.status_code == 200 and "Rule saved" in plain(r.text)


def test_save_needs_the_token(client: TestClient, feed: Feed) -> None:
    r = client.post("/rules", data={"kind": "term", "value": "webinar"}, follow_redirects=False)
    assert r.status_code == 403 and "security token" in r.text
    stale = client.post(
        "/rules", data={"csrf_token": "0" * 64, "kind": "term", "value": "webinar"}, follow_redirects=False
    )
    assert stale.status_code == 403
    assert feed.mute_rules() == []
    assert client.get("/api/rules").json() == {"rules": []}


def test_save_lists_the_rule_with_its_count(client: TestClient, feed: Feed) -> None:
    r = save_rule(client, "term", "Webinar")
    assert r.status_code == 303 and r.headers["location"] == "/rules?done=added&n=2"
    page = client.get(r.headers["location"])
    assert page.status_code == 200
    assert "Rule saved: it hides 2 articles now, and new articles as they arrive." in plain(page.text)
    assert 'id="rules-message"' in page.text
    rules = feed.mute_rules()
    assert len(rules) == 1 and rules[0].kind == "term" and rules[0].hidden == 2
    item = page.text.split(f'data-rule="{rules[0].id}"', 1)[1].split("</li>", 1)[0]
    assert "Word or phrase" in item and "Webinar" in item
    assert 'data-rule-hides="2"' in item and "hides 2 articles" in item
    assert f'action="/rules/{rules[0].id}/remove"' in item


def test_a_refused_rule_is_shown_again_with_the_reason(client: TestClient, feed: Feed) -> None:
    assert save_rule(client, "term", "webinar").status_code == 303
    again = save_rule(client, "term", "Webinar")  # the same rule twice
    assert again.status_code == 400 and "exists already" in plain(again.text)
    assert 'id="rule-error"' in again.text and 'value="Webinar"' in again.text
    bad = save_rule(client, "regex", "(unclosed")  # a form posted without its preview
    assert bad.status_code == 400 and "not a valid regular expression" in plain(bad.text)
    assert len(feed.mute_rules()) == 1


def test_one_article_is_said_in_the_singular(client: TestClient) -> None:
    r = save_rule(client, "term", "now available")
    assert r.headers["location"] == "/rules?done=added&n=1"
    assert "it hides 1 article now" in plain(client.get(r.headers["location"]).text)
    home = client.get("/").text
    assert "1 article is hidden by your mute rules. Show it" in plain(home)


def test_feed_reports_hidden_and_shows_them_on_request(client: TestClient, feed: Feed) -> None:
    before = titles(client.get("/").text)
    assert set(before) >= WEBINARS
    assert save_rule(client, "term", "webinar").status_code == 303
    home = client.get("/")
    assert home.status_code == 200
    shown = titles(home.text)
    assert not WEBINARS & set(shown) and len(shown) == TOTAL - 2
    assert f"{TOTAL - 2} articles" in plain(home.text)
    note = home.text.split('id="hidden-note"', 1)[1].split("</p>", 1)[0]
    assert 'data-hidden="2"' in note
    assert "2 articles are hidden by your mute rules. Show them" in plain(home.text)
    assert 'href="/rules"' in note
    show = re.search(r'<a href="([^"]+)" id="show-hidden"', home.text)
    assert show is not None and show.group(1) == "/?include_muted=1"
    assert 'class="card__muted"' not in home.text

    revealed = client.get(show.group(1).replace("&amp;", "&"))
    assert revealed.status_code == 200
    assert set(titles(revealed.text)) == set(before)
    muted_uids = {uid_of(feed, t) for t in WEBINARS}
    for uid in card_uids(revealed.text):
        card = revealed.text.split(f'id="card-{uid}"', 1)[1].split("</article>", 1)[0]
        head = revealed.text.split(f'id="card-{uid}"', 1)[0].rsplit("<article", 1)[1]
        if uid in muted_uids:
            assert "card--muted" in head and "data-muted" in card
            assert 'Muted by your rule: term "webinar"' in plain(card)
        else:
            assert "card--muted" not in head and "data-muted" not in card
    assert 'data-hidden="shown"' in revealed.text and 'id="show-hidden"' not in revealed.text
    hide = re.search(r'<a href="([^"]+)" id="hide-hidden">Hide them</a>', revealed.text)
    assert hide is not None and hide.group(1) == "/"
    assert 'data-remove-filter="muted"' in revealed.text  # a "with muted" chip
    # filtered views count what is hidden in them only
    acme = client.get("/", params={"source": "Acme"}).text
    assert 'id="hidden-note"' not in acme
    vendor = client.get("/", params={"source": "Vendor"}).text
    assert 'data-hidden="2"' in vendor
    assert re.search(r'href="/\?source=Vendor&amp;include_muted=1" id="show-hidden"', vendor)


def test_saved_articles_are_never_hidden(client: TestClient, feed: Feed) -> None:
    feed.save([uid_of(feed, "Webinar: cloud cost basics")])
    assert save_rule(client, "term", "webinar").headers["location"] == "/rules?done=added&n=1"
    home = client.get("/").text
    assert "Webinar: cloud cost basics" in titles(home)
    assert "Join our webinar on Postgres" not in titles(home)
    assert 'data-hidden="1"' in home


def test_search_reports_hidden_matches(client: TestClient) -> None:
    found = client.get("/", params={"q": "webinar"}).text
    assert set(titles(found)) >= WEBINARS and 'id="hidden-note"' not in found
    assert save_rule(client, "term", "webinar").status_code == 303
    r = client.get("/", params={"q": "webinar"})
    assert r.status_code == 200
    assert not WEBINARS & set(titles(r.text))
    assert 'data-hidden="2"' in r.text
    assert "2 articles are hidden by your mute rules. Show them" in plain(r.text)
    show = re.search(r'<a href="([^"]+)" id="show-hidden"', r.text)
    assert show is not None
    target = show.group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(target).query) == {"q": ["webinar"], "include_muted": ["1"]}
    revealed = client.get(target).text
    assert set(titles(revealed)) >= WEBINARS
    assert revealed.count("data-muted>") >= 2 and 'id="hide-hidden"' in revealed
    # a search whose best matches are not muted says nothing
    assert 'id="hidden-note"' not in client.get("/", params={"q": "ledger"}).text


def test_remove_with_the_token(client: TestClient, feed: Feed) -> None:
    assert save_rule(client, "source", "Vendor").headers["location"] == "/rules?done=added&n=4"
    (rule,) = feed.mute_rules()
    assert rule.value == "Vendor" and rule.hidden == 4
    page = client.get("/rules").text
    assert "source Vendor" in plain(page)  # the remove button's accessible name
    assert client.post(f"/rules/{rule.id}/remove", data={}, follow_redirects=False).status_code == 403
    assert len(feed.mute_rules()) == 1
    r = client.post(f"/rules/{rule.id}/remove", data={"csrf_token": token_of(page)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/rules?done=removed"
    assert "Rule removed." in plain(client.get(r.headers["location"]).text)
    assert feed.mute_rules() == []
    assert 'id="hidden-note"' not in client.get("/").text
    assert len(titles(client.get("/").text)) == TOTAL
    gone = client.post(f"/rules/{rule.id}/remove", data={"csrf_token": token_of(page)})
    assert gone.status_code == 404 and "no such rule" in gone.text


def test_malformed_forms_are_a_400_not_a_500(client: TestClient) -> None:
    token = token_of(client.get("/").text)
    r = client.post(
        "/rules",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code in (400, 403)
    big = client.post("/rules", data={"csrf_token": token, "kind": "term", "value": "x" * 20_000})
    assert big.status_code == 400


# -- /api/rules ------------------------------------------------------------------------------------
def test_api_rules_preview_save_list_delete(client: TestClient, feed: Feed) -> None:
    assert client.get("/api/rules").json() == {"rules": []}
    preview = client.post("/api/rules", json={"kind": "term", "value": "webinar", "preview": True})
    assert preview.status_code == 200
    body = preview.json()
    assert body["saved"] is False and body["hidden"] == 2 and body["total"] == TOTAL
    assert body["rule"] == {"id": None, "kind": "term", "value": "webinar", "created": None, "hidden": 0}
    assert {e["title"] for e in body["examples"]} == WEBINARS
    assert set(body["examples"][0]) == {"id", "title", "source", "published"}
    assert feed.mute_rules() == []

    saved = client.post("/api/rules", json={"kind": "term", "value": "webinar"})
    assert saved.status_code == 201
    rule = saved.json()
    assert rule["saved"] is True and rule["hidden"] == 2
    assert isinstance(rule["rule"]["id"], int) and rule["rule"]["created"]
    listed = client.get("/api/rules").json()["rules"]
    assert [(r["id"], r["kind"], r["value"], r["hidden"]) for r in listed] == [
        (rule["rule"]["id"], "term", "webinar", 2)
    ]
    dup = client.post("/api/rules", json={"kind": "term", "value": "WEBINAR"})
    assert dup.status_code == 400 and dup.json()["error"]["param"] == "value"

    deleted = client.delete(f"/api/rules/{rule['rule']['id']}")
    assert deleted.status_code == 200 and deleted.json()["value"] == "webinar"
    assert client.get("/api/rules").json() == {"rules": []}
    missing = client.delete(f"/api/rules/{rule['rule']['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
    assert client.delete("/api/rules/999999").status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"kind": "bogus", "value": "x"}, "kind"),
        ({"value": "x"}, "kind"),
        ({"kind": "term", "value": 3}, "value"),
        ({"kind": "term", "value": "x", "preview": "yes"}, "preview"),
        ({"kind": "regex", "value": "(a+)+"}, "value"),
        ({"kind": "source", "value": "Nobody"}, "value"),
    ],
)
def test_api_rules_refuses_bad_rules(
    client: TestClient, feed: Feed, body: dict[str, Any], param: str
) -> None:
    r = client.post("/api/rules", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param
    assert feed.mute_rules() == []


def test_api_rules_refuses_other_origins_and_other_bodies(client: TestClient, feed: Feed) -> None:
    rule = {"kind": "term", "value": "webinar"}
    evil = {"origin": "https://evil.example"}
    assert client.post("/api/rules", json=rule, headers=evil).status_code == 403
    assert client.post("/api/rules", json=rule, headers={"origin": "null"}).status_code == 403
    form = client.post("/api/rules", data=rule)
    assert form.status_code == 415 and form.json()["error"]["status"] == 415
    text = client.post("/api/rules", content=b'{"kind":"term"}', headers={"content-type": "text/plain"})
    assert text.status_code == 415
    broken = client.post("/api/rules", content=b"{nope", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    listed = client.post("/api/rules", json=["term", "webinar"])
    assert listed.status_code == 400
    huge = client.post("/api/rules", json={"kind": "term", "value": "x" * 20_000})
    assert huge.status_code == 413
    assert feed.mute_rules() == []
    # the page's own origin is fine
    same = client.post("/api/rules", json=rule, headers={"origin": "http://testserver"})
    assert same.status_code == 201
    rule_id = same.json()["rule"]["id"]
    assert client.delete(f"/api/rules/{rule_id}", headers=evil).status_code == 403
    assert len(feed.mute_rules()) == 1


def test_api_articles_include_muted(client: TestClient) -> None:
    assert client.post("/api/rules", json={"kind": "term", "value": "webinar"}).status_code == 201
    plain = client.get("/api/articles", params={"limit": 100}).json()
    assert plain["total"] == TOTAL - 2
    assert not WEBINARS & {a["title"] for a in plain["articles"]}
    assert all(a["muted"] is False for a in plain["articles"])
    wide = client.get("/api/articles", params={"limit": 100, "include_muted": "1"}).json()
    assert wide["total"] == TOTAL
    muted = {a["title"] for a in wide["articles"] if a["muted"]}
    assert muted == WEBINARS
    assert client.get("/api/articles", params={"include_muted": "true"}).status_code == 200
    bad = client.get("/api/articles", params={"include_muted": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "include_muted"


# -- the digest ------------------------------------------------------------------------------------
def test_digest_page_groups_and_counts(client: TestClient, feed: Feed) -> None:
    feed.save([uid_of(feed, "How we sharded the ledger")])
    r = client.get("/digest")
    assert r.status_code == 200 and "<title>Digest — Engineering Feed</title>" in r.text
    new = TOTAL - 1  # all but the old post are from the last 7 days
    count = re.search(r'id="digest-count" data-total="(\d+)" data-shown="(\d+)"', r.text)
    assert count is not None and count.groups() == (str(new), str(new))
    assert f"{new} new articles" in plain(r.text)
    groups = re.findall(r'data-digest-group="([^"]+)"', r.text)
    assert groups[0] == "systems performance" and groups[-1] == "Also new"
    assert r.text.count("data-digest-entry=") == new
    assert "Notes from last year" not in r.text
    saved = re.findall(r'data-digest-entry="([^"]+)"(.*?)</li>', r.text, re.S)
    marked = [uid for uid, body in saved if "data-saved>Saved<" in body]
    assert marked == [uid_of(feed, "How we sharded the ledger")]
    assert 'href="/digest.atom"' in r.text and 'id="digest-md"' in r.text
    assert 'rel="alternate" type="application/atom+xml"' in r.text
    assert "Not mailed." in plain(r.text)
    # muted articles are left out of the digest
    assert client.post("/api/rules", json={"kind": "term", "value": "webinar"}).status_code == 201
    after = client.get("/digest").text
    assert 'data-total="5"' in after and "Webinar: cloud cost basics" not in after
    # a period with nothing in it, and a bad one
    one = client.get("/digest", params={"days": 1}).text
    assert "the last day" in one and "Join our webinar" not in one
    for bad in ("500", "0", "abc", "-3"):
        page = client.get("/digest", params={"days": bad})
        assert page.status_code == 400 and "days" in plain(page.text), bad


def test_digest_downloads(client: TestClient) -> None:
    md = client.get("/digest.md")
    assert md.status_code == 200 and md.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "Cutting p99 latency in half" in md.text and "systems performance" in md.text
    assert "](" in md.text  # links
    txt = client.get("/digest.txt", params={"days": 30})
    assert txt.status_code == 200 and txt.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Cutting p99 latency in half" in txt.text and "<a " not in txt.text
    assert "Notes from last year" not in txt.text
    bad = client.get("/digest.md", params={"days": 500})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/plain")


def test_digest_atom(client: TestClient) -> None:
    r = client.get("/digest.atom")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    root = ET.fromstring(r.content)
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 4
    ids = [e.findtext(f"{ATOM}id") or "" for e in entries]
    assert all(re.fullmatch(r"urn:engfeed:digest:\d{4}-W\d{2}", i) for i in ids), ids
    assert len(set(ids)) == 4
    year, week, _ = datetime.now().astimezone().isocalendar()
    assert ids[0] == f"urn:engfeed:digest:{year}-W{week:02d}"
    assert (entries[0].findtext(f"{ATOM}title") or "").endswith("(so far)")
    for e in entries:
        link = e.find(f"{ATOM}link")
        assert link is not None and link.get("href", "").startswith("http://testserver/?since=")
        content = e.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "html"
    everything = "".join(e.findtext(f"{ATOM}content") or "" for e in entries)
    assert "Cutting p99 latency in half" in everything
    self_link = [x for x in root.findall(f"{ATOM}link") if x.get("rel") == "self"]
    assert self_link and self_link[0].get("href") == "http://testserver/digest.atom"


def test_api_digest_shape(client: TestClient) -> None:
    body = client.get("/api/digest").json()
    assert set(body) == {"title", "start", "end", "week", "total", "shown", "more", "groups"}
    assert body["total"] == TOTAL - 1 and body["shown"] == TOTAL - 1 and body["more"] == 0
    assert re.fullmatch(r"\d{4}-W\d{2}", body["week"])
    assert body["title"].startswith("Engineering Feed digest: ")
    first = body["groups"][0]
    assert set(first) == {"title", "angle", "entries"} and first["angle"] == "systems performance"
    assert body["groups"][-1] == {**body["groups"][-1], "title": "Also new", "angle": None}
    entry = first["entries"][0]
    assert set(entry) == {"id", "title", "url", "source", "published", "angle", "blurb", "saved"}
    assert entry["title"] == "Cutting p99 latency in half" and entry["angle"]["name"] == "systems performance"
    assert entry["blurb"] and entry["saved"] is False
    assert client.get("/api/digest", params={"days": 1}).json()["total"] == 3
    bad = client.get("/api/digest", params={"days": 500})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "days"


# -- unsubscribing -----------------------------------------------------------------------------------
def test_unsubscribe_asks_then_unsubscribes(client: TestClient, feed: Feed) -> None:
    url = feed.unsubscribe_url("http://testserver", ADDRESS)
    query = urlsplit(url).query
    assert parse_qs(query)["address"] == [ADDRESS]
    page = client.get(f"/digest/unsubscribe?{query}")
    assert page.status_code == 200
    assert 'id="unsubscribe-form"' in page.text and ADDRESS in plain(page.text)
    assert feed.store.digests.unsubscribed(ADDRESS) is None  # asking changes nothing
    action = re.search(r'<form method="post" action="([^"]+)" id="unsubscribe-form"', page.text)
    assert action is not None
    done = client.post(action.group(1).replace("&amp;", "&"))
    assert done.status_code == 200 and 'id="unsubscribed"' in done.text
    assert f"{ADDRESS} will no longer get the weekly digest." in plain(done.text)
    assert feed.store.digests.unsubscribed(ADDRESS) is not None


def test_unsubscribe_with_a_bad_link(client: TestClient, feed: Feed) -> None:
    query = parse_qs(urlsplit(feed.unsubscribe_url("http://testserver", ADDRESS)).query)
    token = query["token"][0]
    wrong = "0" * len(token) if token[0] != "0" else "1" * len(token)
    r = client.post("/digest/unsubscribe", params={"address": ADDRESS, "token": wrong})
    assert r.status_code == 400 and "not valid" in plain(r.text)
    other = client.post("/digest/unsubscribe", params={"address": "else@example.com", "token": token})
    assert other.status_code == 400
    assert client.post("/digest/unsubscribe").status_code == 400
    assert feed.store.digests.unsubscribed(ADDRESS) is None
    assert feed.store.digests.unsubscribed("else@example.com") is None
    incomplete = client.get("/digest/unsubscribe", params={"address": ADDRESS})
    assert incomplete.status_code in (200, 400)
    assert "incomplete" in plain(incomplete.text) and 'id="unsubscribe-form"' not in incomplete.text


def test_a_preview_asked_by_another_site_is_not_run(client: TestClient, feed: Feed) -> None:
    """A link or an image on another site must not make the reader's browser run a pattern on
    every stored article (Sec-Fetch-Site says where a request comes from)."""
    for origin in ("cross-site", "same-site"):
        r = client.get(
            "/rules", params={"kind": "regex", "value": "webinar"}, headers={"sec-fetch-site": origin}
        )
        assert r.status_code == 200
        assert 'id="rule-preview"' not in r.text and "came from elsewhere" in plain(r.text)
    for origin in ("same-origin", "none"):
        r = client.get(
            "/rules", params={"kind": "regex", "value": "webinar"}, headers={"sec-fetch-site": origin}
        )
        assert 'id="rule-preview"' in r.text
    assert feed.mute_rules() == []


def test_a_regex_preview_keeps_its_spaces(client: TestClient) -> None:
    r = client.get("/rules", params={"kind": "regex", "value": "Webinar:  cloud"})
    assert 'id="rule-preview"' in r.text and "would hide <strong>0 articles" in r.text
