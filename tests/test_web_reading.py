"""The reading workflow on the page, without a browser: CSRF-protected forms that work
without JavaScript (and answer JSON to it), per-visitor tokens in cached pages, reading on
open, notes with Markdown, unread/saved filters, "mark all above as read", and the reading
list page with export and import."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from engfeed.feed import Feed
from engfeed.readinglist import MAX_NOTE_BYTES
from engfeed.web.app import CSRF_PLACEHOLDER, local_path
from pgserver import store_location
from test_web import CORE, build_feed, card_uids, client_for

UID = CORE[0].uid


@pytest.fixture
def feed(request: pytest.FixtureRequest, backend: str) -> Iterator[Feed]:
    f = build_feed(store_location(request, backend, "reading"))
    yield f
    f.close()


@pytest.fixture
def client(feed: Feed) -> Iterator[TestClient]:
    with client_for(feed) as c:  # one portal thread, like one uvicorn event loop
        yield c


def token_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_cached_pages_carry_each_visitors_own_token(feed: Feed) -> None:
    with client_for(feed) as first, client_for(feed) as second:
        a, b = first.get("/"), second.get("/")
        assert CSRF_PLACEHOLDER not in a.text and CSRF_PLACEHOLDER not in b.text
        assert "engfeed_csrf" in a.headers["set-cookie"] and "engfeed_csrf" in b.headers["set-cookie"]
        assert token_of(a.text) != token_of(b.text)  # the second came from the cache, personalised
        again = first.get("/")
        assert "set-cookie" not in again.headers and token_of(again.text) == token_of(a.text)


def test_save_without_javascript(client: TestClient, feed: Feed) -> None:
    home = client.get("/").text
    assert client.post(f"/a/{UID}/save", data={"value": "1"}, follow_redirects=False).status_code == 403
    r = client.post(
        f"/a/{UID}/save",
        data={"csrf_token": token_of(home), "value": "1", "next": "/?source=Slack"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/?source=Slack"
    assert feed.article(UID).saved  # type: ignore[union-attr]
    page = client.get("/?source=Slack").text
    assert re.search(rf'action="/a/{UID}/save".*?aria-pressed="true"', page, re.S)
    assert "Saved" in page
    # never an open redirect
    r = client.post(
        f"/a/{UID}/save",
        data={"csrf_token": token_of(home), "value": "0", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.headers["location"].startswith(f"/a/{UID}")
    assert not feed.article(UID).saved  # type: ignore[union-attr]


def test_state_forms_answer_json_to_javascript(client: TestClient) -> None:
    token = token_of(client.get("/").text)
    headers = {"accept": "application/json"}
    r = client.post(f"/a/{UID}/read", data={"csrf_token": token, "value": "1"}, headers=headers)
    assert r.status_code == 200 and r.json()["read"] is True and r.json()["read_at"]
    r = client.post(
        f"/a/{UID}/note", data={"csrf_token": token, "note": "**big** idea\n\n- one"}, headers=headers
    )
    assert r.json()["note"] == "**big** idea\n\n- one"
    assert "<strong>big</strong>" in r.json()["note_html"] and "<li>one</li>" in r.json()["note_html"]
    bad = client.post(f"/a/{UID}/read", data={"csrf_token": "0" * 64, "value": "1"}, headers=headers)
    assert bad.status_code == 403 and bad.json()["error"]["message"]
    missing = client.post("/a/nope/save", data={"csrf_token": token, "value": "1"}, headers=headers)
    assert missing.status_code == 404


def test_opening_an_article_reads_it_unless_another_site_sent_the_reader(
    client: TestClient, feed: Feed
) -> None:
    other = CORE[1].uid
    client.get(f"/a/{other}", headers={"sec-fetch-site": "cross-site"})
    assert not feed.article(other).read  # type: ignore[union-attr]
    page = client.get(f"/a/{other}", headers={"sec-fetch-site": "same-origin"})
    assert feed.article(other).read  # type: ignore[union-attr]
    assert "Mark unread" in page.text
    assert 'id="note-text"' in page.text and token_of(page.text) != CSRF_PLACEHOLDER


def test_notes_render_markdown_safely_and_huge_notes_are_refused(client: TestClient, feed: Feed) -> None:
    token = token_of(client.get(f"/a/{UID}").text)
    note = "1. **Design**: two queues\n   - <script>alert(1)</script> [x](javascript:alert(1))\n"
    r = client.post(f"/a/{UID}/note", data={"csrf_token": token, "note": note}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("#note")
    page = client.get(r.headers["location"]).text
    assert "Note saved." in page
    preview_html = page.split("data-note-preview>", 1)[1].split("</section>", 1)[0]
    assert "<strong>Design</strong>" in preview_html
    assert "<script" not in preview_html and "&lt;script&gt;" in preview_html  # shown as text
    assert 'href="javascript' not in preview_html  # markdown-it refuses the link; it stays text
    assert "<script>alert(1)</script>" not in page  # in the editor it is text: &lt;script&gt;
    assert feed.article(UID).note == note  # type: ignore[union-attr]  # stored verbatim
    big = client.post(f"/a/{UID}/note", data={"csrf_token": token, "note": "x" * (MAX_NOTE_BYTES + 1)})
    assert big.status_code == 413 and "100 KB" in big.text
    assert feed.article(UID).note == note  # type: ignore[union-attr]  # the old one, not a cut one
    preview = client.post("/preview", data={"csrf_token": token, "note": "*it*"})
    assert preview.json()["html"].strip() == "<p><em>it</em></p>"


def test_unread_and_saved_filters(client: TestClient, feed: Feed) -> None:
    total = len(card_uids(client.get("/?limit=100").text))
    feed.save([UID])
    feed.mark_read([CORE[1].uid])
    saved = client.get("/", params={"show": "saved"}).text
    assert card_uids(saved) == [UID]
    assert 'data-filter-show="saved"' in saved and "saved only" in saved
    unread = card_uids(client.get("/", params={"show": "unread", "limit": 100}).text)
    assert CORE[1].uid not in unread and len(unread) == total - 1
    assert client.get("/", params={"show": "bogus"}).status_code == 400
    api = client.get("/api/articles", params={"show": "saved"}).json()
    assert [a["id"] for a in api["articles"]] == [UID]


def test_mark_all_above_as_read(client: TestClient, feed: Feed) -> None:
    page = client.get("/", params={"limit": 3}).text
    first_three = card_uids(page)
    through = re.search(r'name="through" value="([^"]+)"', page)
    view = re.search(r'name="view" value="([^"]*)"', page)
    assert through and view
    r = client.post(
        "/mark-read",
        data={"csrf_token": token_of(page), "through": through.group(1), "view": view.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    read = {a.uid for a in feed.articles(limit=200).articles if a.read}
    assert read == set(first_three)


def test_reading_list_page_export_and_import(client: TestClient, feed: Feed) -> None:
    feed.save([UID], note="**Overall design**: RAG")
    page = client.get("/reading-list")
    assert page.status_code == 200 and card_uids(page.text) == [UID]
    assert "<strong>Overall design</strong>" in page.text
    md = client.get("/reading-list.md")
    assert md.headers["content-type"].startswith("text/markdown")
    assert "attachment" in md.headers["content-disposition"]
    assert f"]({CORE[0].url})\n    **Overall design**: RAG" in md.text
    token = token_of(page.text)
    upload = b"* [Elsewhere](https://other.example/post)\n    imported note\n"
    refused = client.post("/reading-list/import", files={"file": ("l.md", upload, "text/markdown")})
    assert refused.status_code == 403
    r = client.post(
        "/reading-list/import",
        data={"csrf_token": token},
        files={"file": ("l.md", upload, "text/markdown")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/reading-list?imported=1"
    after = client.get(r.headers["location"]).text
    assert "Imported 1 entry" in after and "imported note" in after and len(card_uids(after)) == 2
    too_big = client.post(
        "/reading-list/import",
        data={"csrf_token": token},
        files={"file": ("big.md", b"x" * (10 * 1024 * 1024 + 10), "text/markdown")},
    )
    assert too_big.status_code in (400, 413)
    assert len(card_uids(client.get("/reading-list").text)) == 2
    mixed = b"* [Bad](javascript:alert(1))\n* [Rel](/relative)\n* [Ok](https://other.example/b)\n"
    r = client.post(
        "/reading-list/import",
        data={"csrf_token": token},
        files={"file": ("l.md", mixed, "text/markdown")},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/reading-list?imported=1&skipped=2"
    assert "Skipped 2 lines" in client.get(r.headers["location"]).text  # never dropped silently


def test_mark_unread_stays_unread_whatever_the_article_url_carried(client: TestClient, feed: Feed) -> None:
    """The article page reads an article on opening, except when a state form returns to it:
    that must hold for a page opened with parameters (the "notes from the summary" link)."""
    page = client.get(f"/a/{UID}?note=summary").text
    assert feed.article(UID).read  # type: ignore[union-attr]
    r = client.post(
        f"/a/{UID}/read",
        data={"csrf_token": token_of(page), "value": "0", "next": f"/a/{UID}?note=summary#notes"},
        follow_redirects=False,
    )
    assert r.headers["location"] == f"/a/{UID}?note=summary&done=unread#notes"
    assert "Marked as unread." in client.get(r.headers["location"]).text
    assert not feed.article(UID).read  # type: ignore[union-attr]


def test_state_messages_show_on_every_page_a_form_returns_to(client: TestClient) -> None:
    assert 'id="state-message"' not in client.get("/?q=latency").text
    for path in ("/?q=latency&done=angle-removed", "/reading-list?done=angle-added"):
        page = client.get(path).text
        assert 'id="state-message"' in page and "Similar articles were labelled again." in page


def test_bad_input_to_the_page_forms_is_a_400(client: TestClient) -> None:
    token = token_of(client.get("/").text)
    for through in ("99999999999999999999999.1", "1.99999999999999999999999", "x"):
        r = client.post("/mark-read", data={"csrf_token": token, "view": "", "through": through})
        assert r.status_code == 400 and "Cannot mark these as read" in r.text
    many = "source=" + ",".join(f"s{i}" for i in range(50_000))
    r = client.post("/mark-read", data={"csrf_token": token, "view": many, "through": "1.1"})
    assert r.status_code == 400 and "at most 20 sources" in r.text
    # a view bounded within one day keeps its hours when the search form sends it again
    page = client.get("/", params={"since": "2025-03-02T06:00:00Z", "until": "2025-03-02T18:00:00Z"}).text
    assert 'name="since" value="2025-03-02T06:00:00Z"' in page
    assert 'name="until" value="2025-03-02T18:00:00Z"' in page


@pytest.mark.parametrize(
    ("target", "ok"),
    [
        ("/", True),
        ("/?q=x", True),
        ("/a/b", True),
        ("//evil.example", False),
        ("https://evil.example", False),
        ("/\\evil", False),
        ("", False),
        ("/\nx", False),
    ],
)
def test_local_path(target: str, ok: bool) -> None:
    assert (local_path(target) is not None) == ok
