"""Mute rules and the digest in real Chromium: preview and save a rule on /rules (with and
without JavaScript), "N hidden by your mute rules" on the feed and in instant search with the
muted cards shown and hidden again, the /digest page; axe and screenshots of the new pages in
light and dark, at desktop and phone width.

A real ``engfeed serve`` over its own small store: an engineering blog and a vendor blog whose
titles ("Webinar", "Now available", "Announcing") the rules hide. The tests may run on
different xdist workers (each with its own server), so each one makes the state it needs
(``ensure_rule``) and leaves behind only the "webinar" rule that the others expect.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from browser_support import (
    BUNDLED_ANGLES,
    DESKTOP,
    PHONE,
    Served,
    assert_no_axe_violations,
    browser_marks,
    chromium_missing_reason,
    horizontal_overflow,
    rss_items,
    screenshot,
    serving,
    subprocess_env,
)
from engfeed.feed import Feed
from engfeed.models import ArticleFilter
from pgserver import store_location
from test_web import NETFLIX_TEXT, SLACK_TEXT

pytestmark = browser_marks()

if chromium_missing_reason() is None:
    from playwright.sync_api import expect

NOW = datetime.now(UTC).replace(microsecond=0)
ACME = [
    ("acme-latency", "Cutting p99 latency in half", SLACK_TEXT, NOW - timedelta(hours=2)),
    ("acme-regions", "Keeping services up when a region fails", NETFLIX_TEXT, NOW - timedelta(days=1)),
    ("acme-hiring", "Hiring for our platform team", "We are growing the team.", NOW - timedelta(days=2)),
    (
        "acme-ledger",
        "How we sharded the ledger",
        "A sharded ledger with two-phase commit.",
        NOW - timedelta(days=3),
    ),
    ("acme-old", "Notes from last year", "An older post about build caching.", NOW - timedelta(days=40)),
]
VENDOR = [
    ("v-webinar", "Webinar: cloud cost basics", "Join our webinar next week.", NOW - timedelta(hours=3)),
    ("v-ga", "Now available: the managed queue", "Our queue is ready for you.", NOW - timedelta(hours=5)),
    ("v-webinar-2", "Join our webinar on Postgres", "Sign up today.", NOW - timedelta(days=2, hours=4)),
    ("v-console", "Announcing the new console", "A new look for the console.", NOW - timedelta(days=4)),
]
WEBINARS = ["Webinar: cloud cost basics", "Join our webinar on Postgres"]
SAVED_TITLE = "How we sharded the ledger"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, module_backend: str
) -> Iterator[Served]:
    """The real server over a store on each backend (the reader's state lives in the store)."""
    home = tmp_path_factory.mktemp("rules")
    db = store_location(request, module_backend, "engfeed")
    (home / "acme.xml").write_bytes(rss_items("Acme Engineering", "https://acme.example", ACME))
    (home / "vendor.xml").write_bytes(rss_items("Vendor News", "https://vendor.example", VENDOR))
    feed = Feed.open(db, angles_file=BUNDLED_ANGLES, embed=False)
    try:
        feed.import_paths([home / "acme.xml", home / "vendor.xml"])
        every = feed.articles(ArticleFilter(include_muted=True), limit=100).articles
        feed.save([a.uid for a in every if a.title == SAVED_TITLE])
    finally:
        feed.close()
    env = subprocess_env(home, ENGFEED_EMBED="0")
    for name in ("ENGFEED_SMTP_URL", "ENGFEED_DIGEST_TO"):  # never mail from here; "Not mailed"
        env.pop(name, None)
    with serving(db, env, home / "serve.log") as s:
        yield s


def api(served: Served, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """A JSON API call without a browser (no Origin header: the same as a script on the machine)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        served.url(path), data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def rules(served: Served) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = served.get_json("/api/rules")["rules"]
    return found


def ensure_rule(served: Served, kind: str, value: str) -> dict[str, Any]:
    for rule in rules(served):
        if rule["kind"] == kind and rule["value"].casefold() == value.casefold():
            return rule
    status, body = api(served, "POST", "/api/rules", {"kind": kind, "value": value})
    assert status == 201, body
    rule: dict[str, Any] = body["rule"]
    return rule


def drop_rule(served: Served, kind: str, value: str) -> None:
    for rule in rules(served):
        if rule["kind"] == kind and rule["value"].casefold() == value.casefold():
            assert api(served, "DELETE", f"/api/rules/{rule['id']}")[0] == 200


def hidden_now(served: Served) -> int:
    """How many articles the rules hide from the unfiltered feed, by the API."""
    wide = served.get_json("/api/articles?include_muted=1&limit=100")
    plain = served.get_json("/api/articles?limit=100")
    return int(wide["total"]) - int(plain["total"])


def card_titles(page: Any) -> list[str]:
    found: list[str] = page.locator("#cards [data-card] .card__title").all_inner_texts()
    return [t.strip() for t in found]


# -- the rules page ------------------------------------------------------------------------------
def test_preview_and_save_a_rule(served: Served, new_page: Any) -> None:
    drop_rule(served, "term", "now available")
    page = new_page()
    page.goto(served.url("/rules"))
    expect(page.locator("h1")).to_have_text("Mute rules")
    expect(page.locator("#rule-kind")).to_have_value("term")
    page.locator("#rule-value").fill("Now   Available")
    page.locator("#rule-preview-button").click()
    preview = page.locator("#rule-preview")
    expect(preview).to_be_visible()
    expect(preview).to_have_attribute("data-preview-count", "1")
    expect(preview.locator(".rule-preview__count")).to_contain_text(
        'term "Now Available" would hide 1 article'
    )
    expect(page.locator("#preview-examples li")).to_have_count(1)
    expect(page.locator("#preview-examples")).to_contain_text("Now available: the managed queue")
    expect(page.locator("#rule-value")).to_have_value("Now Available")  # the form keeps what was typed
    assert not any(r["value"].casefold() == "now available" for r in rules(served))  # nothing saved yet

    page.locator("#rule-save").click()
    expect(page.locator("#rules-message")).to_have_text(
        "Rule saved: it hides 1 article now, and new articles as they arrive."
    )
    assert "done=added" in page.url
    saved = [r for r in rules(served) if r["value"].casefold() == "now available"]
    assert len(saved) == 1 and saved[0]["hidden"] == 1
    item = page.locator(f'[data-rule="{saved[0]["id"]}"]')
    expect(item).to_contain_text("Word or phrase")
    expect(item.locator(".rule__value")).to_have_text("Now Available")
    expect(item.locator("[data-rule-hides]")).to_have_text("hides 1 article")
    page.goto(served.url("/"))
    assert "Now available: the managed queue" not in card_titles(page)

    # remove it again from the list
    page.goto(served.url("/rules"))
    page.locator(f"#remove-rule-{saved[0]['id']}").click()
    expect(page.locator("#rules-message")).to_have_text("Rule removed.")
    expect(page.locator(f'[data-rule="{saved[0]["id"]}"]')).to_have_count(0)
    assert not any(r["value"].casefold() == "now available" for r in rules(served))


def test_a_bad_rule_is_explained(served: Served, new_page: Any) -> None:
    page = new_page()
    page.goto(served.url("/rules"))
    page.locator("#rule-kind").select_option("regex")
    page.locator("#rule-value").fill("(unclosed")
    page.locator("#rule-preview-button").click()
    expect(page.locator("#rule-error")).to_contain_text("not a valid regular expression")
    expect(page.locator("#rule-value")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#rule-preview")).to_have_count(0)
    expect(page.locator("#rule-kind")).to_have_value("regex")
    page.locator("#rule-kind").select_option("source")
    page.locator("#rule-value").fill("Nobody Engineering")
    page.locator("#rule-preview-button").click()
    expect(page.locator("#rule-error")).to_contain_text("no such source")


def test_rules_form_without_javascript(served: Served, new_page: Any) -> None:
    drop_rule(served, "regex", "^announcing")
    page = new_page(java_script_enabled=False)
    page.goto(served.url("/rules"))
    page.locator("#rule-kind").select_option("regex")
    page.locator("#rule-value").fill("^announcing")
    page.locator("#rule-preview-button").click()  # a plain GET form
    assert "kind=regex" in page.url and "value=%5Eannouncing" in page.url
    expect(page.locator("#rule-preview")).to_have_attribute("data-preview-count", "1")
    expect(page.locator("#preview-examples")).to_contain_text("Announcing the new console")
    page.locator("#rule-save").click()  # a plain POST form with its token, then 303
    expect(page.locator("#rules-message")).to_contain_text("Rule saved: it hides 1 article now")
    assert page.url.endswith("/rules?done=added&n=1")
    (rule,) = [r for r in rules(served) if r["kind"] == "regex" and r["value"] == "^announcing"]
    expect(page.locator(f'[data-rule="{rule["id"]}"] .rule__value')).to_have_text("^announcing")
    page.goto(served.url("/?source=Vendor"))
    assert "Announcing the new console" not in card_titles(page)
    expect(page.locator("#hidden-note")).to_be_visible()
    page.goto(served.url("/rules"))
    page.locator(f"#remove-rule-{rule['id']}").click()
    expect(page.locator("#rules-message")).to_have_text("Rule removed.")
    assert not any(r["value"] == "^announcing" for r in rules(served))


# -- the feed and search ------------------------------------------------------------------------
def test_feed_says_what_is_hidden_and_shows_it(served: Served, new_page: Any) -> None:
    ensure_rule(served, "term", "webinar")
    hidden = hidden_now(served)
    assert hidden >= 2
    page = new_page()
    page.goto(served.url("/"))
    note = page.locator("#hidden-note")
    expect(note).to_have_attribute("data-hidden", str(hidden))
    expect(note).to_contain_text(f"{hidden} articles are hidden by your mute rules.")
    assert not set(WEBINARS) & set(card_titles(page))
    expect(page.locator("#cards .card--muted")).to_have_count(0)

    page.locator("#show-hidden").click()
    page.wait_for_url("**/?include_muted=1")
    expect(page.locator("#hidden-note")).to_have_attribute("data-hidden", "shown")
    muted = page.locator("#cards .card--muted")
    expect(muted).to_have_count(hidden)
    for title in WEBINARS:
        card = page.locator("#cards [data-card]", has_text=title)
        expect(card).to_have_class(re.compile(r"\bcard--muted\b"))
        expect(card.locator("[data-muted]")).to_have_text(
            re.compile(r'^Muted by your rules?: .*term "webinar"')
        )
    expect(page.locator('[data-remove-filter="muted"]')).to_be_visible()

    page.locator("#hide-hidden").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("#show-hidden")).to_be_visible()
    expect(page.locator("#cards .card--muted")).to_have_count(0)
    assert not set(WEBINARS) & set(card_titles(page))


def test_instant_search_says_what_is_hidden(served: Served, new_page: Any) -> None:
    ensure_rule(served, "term", "webinar")
    page = new_page()
    page.goto(served.url("/"))
    page.locator("#q").fill("webinar")
    note = page.locator("#hidden-note")
    expect(note).to_contain_text("hidden by your mute rules")
    expect(note).to_have_attribute("data-hidden", re.compile(r"^[1-9]\d*$"))
    assert not set(WEBINARS) & set(card_titles(page))
    page.locator("#show-hidden").click()
    expect(page.locator("#cards .card--muted").first).to_be_visible()
    assert set(WEBINARS) <= set(card_titles(page))
    expect(page.locator("#hide-hidden")).to_be_visible()


# -- the digest -----------------------------------------------------------------------------------
def test_digest_page(served: Served, new_page: Any) -> None:
    ensure_rule(served, "term", "webinar")
    page = new_page()
    page.goto(served.url("/digest"))
    expect(page.locator("h1")).to_have_text("Digest")
    groups = page.locator("[data-digest-group]")
    expect(groups.first).to_have_attribute("data-digest-group", "systems performance")
    expect(groups.last).to_have_attribute("data-digest-group", "Also new")
    expect(groups.first).to_contain_text("Cutting p99 latency in half")
    expected = served.get_json("/api/digest")
    count = page.locator("#digest-count")
    expect(count).to_have_attribute("data-total", str(expected["total"]))
    expect(count).to_contain_text(f"{expected['total']} new articles")
    entries = page.locator("[data-digest-entry]")
    expect(entries).to_have_count(expected["shown"])
    saved = page.locator("[data-digest-entry]", has=page.locator("[data-saved]"))
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text(SAVED_TITLE)
    expect(saved.locator("[data-saved]")).to_have_text("Saved")
    body = page.locator("main").inner_text()
    assert "Notes from last year" not in body  # older than the period
    assert not any(t in body for t in WEBINARS)  # muted
    expect(page.locator("#mail-status")).to_contain_text("Not mailed.")
    # a shorter period
    page.locator("#digest-days").select_option("1")
    page.locator("#digest-days-apply").click()
    page.wait_for_url("**/digest?days=1")
    expect(page.locator(".hero__tagline")).to_contain_text("the last day")
    assert SAVED_TITLE not in page.locator("main").inner_text()
    # the Markdown download
    with page.expect_download() as info:
        page.locator("#digest-md").click()
    markdown = Path(info.value.path()).read_text(encoding="utf-8")
    assert "Cutting p99 latency in half" in markdown and "Webinar" not in markdown


# -- how the new pages look -------------------------------------------------------------------------
PAGES = {
    "rules": "/rules?kind=source&value=Vendor",  # the rule list and a preview
    "feed-hidden": "/?include_muted=1",  # the muted cards shown, marked
    "digest": "/digest",
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("name", list(PAGES))
def test_new_pages_look_right_and_pass_axe(
    served: Served, new_page: Any, name: str, device: str, scheme: str
) -> None:
    ensure_rule(served, "term", "webinar")
    phone = device == "phone"
    page = new_page(
        viewport=PHONE if phone else DESKTOP,
        color_scheme=scheme,
        is_mobile=phone,
        has_touch=phone,
        bypass_csp=True,
    )
    page.goto(served.url(PAGES[name]))
    if name == "rules":
        expect(page.locator("#rule-preview")).to_be_visible()
        expect(page.locator("#rule-list")).to_be_visible()
    elif name == "feed-hidden":
        expect(page.locator("#hidden-note")).to_be_visible()
        expect(page.locator("#cards .card--muted").first).to_be_visible()
    else:
        expect(page.locator("[data-digest-group]").first).to_be_visible()
        expect(page.locator("[data-saved]").first).to_be_visible()
    dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    assert dark is (scheme == "dark")
    if phone:
        assert horizontal_overflow(page) == []
    screenshot(page, f"{name}-{device}-{scheme}")
    assert_no_axe_violations(page)
