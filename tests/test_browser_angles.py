"""The reader's feedback on useful angles in real Chromium: "Not this angle" and "Add angle" on
the feed's cards (back to the same view), the article page's "Useful angles" section with its
"Add an angle" form, "Not this angle" and the "Why these angles" disclosure, the same forms
without JavaScript; axe and screenshots of the new controls in light and dark, at desktop and
phone width.

A real ``engfeed serve`` over its own small store, labelled without embeddings: titles with cue
terms ("Cutting p99 latency in half", "Benchmark results for our queue") get an angle, the
rest ("Hiring for our platform team", a generated second blog) none. The tests may run on
different xdist workers (each with its own server) and in any order, so each one changes only
its own articles (see :data:`ACME`) and finds them by title through the API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from browser_support import (
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
from feedgen import rss
from test_web import NETFLIX_TEXT, SLACK_TEXT

pytestmark = browser_marks()

if chromium_missing_reason() is None:
    from playwright.sync_api import expect

PERF = "systems performance"
RELIABLE = "real-time and reliable systems"
BENCH = "benchmarking data"
ARCH = "architecture depth"

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)
# (guid, title, text, published). The comment says which test changes the article (or that
# none does): the tests run in any order, and on separate servers or on the same one.
ACME = [
    ("latency", "Cutting p99 latency in half", SLACK_TEXT, NOW - HOUR),  # feed: not this angle
    (
        "cache",  # untouched: the screenshots
        "Tail latency of our cache, measured",
        "Profiling the read path showed where the time went: lock contention on the hot path. We cut "
        "p99 latency from 40 ms to 9 ms and raised throughput to 80,000 requests per second.",
        NOW - 2 * HOUR,
    ),
    ("failover", "Failover drills after a regional outage", NETFLIX_TEXT, NOW - 3 * HOUR),  # article page
    (
        "startup",  # without JavaScript: not this angle on the card
        "Profiling the hot path for a faster startup",
        "A flame graph showed the bottleneck: startup time was spent in garbage collection. Fixing it "
        "gave a 3x speedup and lower memory usage.",
        NOW - 4 * HOUR,
    ),
    (
        "bench",  # untouched
        "Benchmark results for our queue",
        "We ran the benchmark on three machine types and measured the median and p99 latency with YCSB. "
        "The results show the new queue is 2x faster than the old one; the methodology is published.",
        NOW - 5 * HOUR,
    ),
    ("hiring", "Hiring for our platform team", "We are growing the team.", NOW - 6 * HOUR),  # feed: add
    ("picnic", "Our summer picnic", "Photos from the office picnic.", NOW - 7 * HOUR),  # without JS: add
    ("offsite", "Notes from the offsite", "The team met to plan the year.", NOW - 8 * HOUR),  # untouched
    (
        "outages",  # the article page's "done" message
        "Fewer outages in our first year",
        "We had two incidents this year and wrote a postmortem for each. Failover now takes seconds, "
        "replication keeps every region warm, chaos engineering drills run weekly, and uptime is 99.99%.",
        NOW - 9 * HOUR,
    ),
]
ACME_VIEW = "/?source=Acme"  # a view other than the plain feed, to come back to


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("angles")
    db = home / "engfeed.db"
    (home / "acme.xml").write_bytes(rss_items("Acme Engineering", "https://acme.example", ACME))
    (home / "beta.xml").write_bytes(rss(4, title="Beta Blog", site="https://beta.example", prefix="beta"))
    feed = Feed.open(db, embed=False)
    try:
        feed.import_paths([home / "acme.xml", home / "beta.xml"])
    finally:
        feed.close()
    with serving(db, subprocess_env(home, ENGFEED_EMBED="0"), home / "serve.log") as s:
        yield s


def uid_of(served: Served, title: str) -> str:
    (uid,) = [a["id"] for a in served.get_json("/api/articles?limit=100")["articles"] if a["title"] == title]
    return str(uid)


def angles_of(served: Served, uid: str) -> list[str]:
    """The article's angles by the API, in order."""
    return [m["name"] for m in served.get_json(f"/api/articles/{uid}")["angles"]]


def angle_names(served: Served) -> list[str]:
    return [a["name"] for a in served.get_json("/api/angles")["angles"]]


def named(text: str) -> re.Pattern[str]:
    """An accessible name, allowing the space Chromium puts before a visually hidden span."""
    return re.compile("^" + re.escape(text).replace(":", r"\s*:") + r"\s*$")


def labelled(served: Served, title: str, angle: str | None) -> str:
    """The uid of the article titled ``title``, checked to have ``angle`` first (or none)."""
    uid = uid_of(served, title)
    found = angles_of(served, uid)
    assert (found[0] if found else None) == angle, (title, found)
    return uid


# -- the feed's cards ------------------------------------------------------------------------------
def test_not_this_angle_on_a_card(served: Served, new_page: Any) -> None:
    uid = labelled(served, "Cutting p99 latency in half", PERF)
    page = new_page()
    page.goto(served.url(ACME_VIEW))
    card = page.locator(f"#card-{uid}")
    expect(card.locator(".card__angle")).to_have_attribute("data-angle", PERF)
    expect(card.locator(".card__angle")).to_contain_text(f"Useful angle: {PERF} via p99")
    button = card.locator(f'[data-not-angle="{PERF}"]')
    expect(button).to_have_accessible_name(named(f"Not this angle: {PERF} for Cutting p99 latency in half"))
    # other cards with an angle keep theirs
    other = page.locator(f"#card-{uid_of(served, 'Tail latency of our cache, measured')}")
    expect(other.locator(".card__angle")).to_have_attribute("data-angle", PERF)

    button.click()
    page.wait_for_url(served.url(ACME_VIEW + "&done=angle-removed"))  # the same view, told what happened
    card = page.locator(f"#card-{uid}")
    expect(card.locator(f'[data-angle="{PERF}"]')).to_have_count(0)
    expect(card.locator(".card__angle")).to_have_count(0)
    expect(card.locator("[data-add-angle]")).to_be_visible()  # it has none now, so it may get one
    expect(other.locator(".card__angle")).to_have_attribute("data-angle", PERF)
    companies = page.locator("#cards [data-card] [data-company]").all_inner_texts()
    assert companies and set(companies) == {"Acme"}  # still the narrowed view
    assert PERF not in angles_of(served, uid)
    verdicts = {e["angle"]: e for e in served.get_json(f"/api/articles/{uid}/angles")["angles"]}
    assert verdicts[PERF]["chosen"] is False and verdicts[PERF]["verdict"] == "no"


def test_add_an_angle_on_a_card(served: Served, new_page: Any) -> None:
    uid = labelled(served, "Hiring for our platform team", None)
    page = new_page()
    page.goto(served.url(ACME_VIEW))
    card = page.locator(f"#card-{uid}")
    expect(card.locator(".card__angle")).to_have_count(0)
    expect(card.locator("[data-not-angle]")).to_have_count(0)
    details = card.locator("[data-add-angle]")
    select = details.locator("select")
    expect(select).to_be_hidden()  # closed until asked
    details.locator("summary").click()
    expect(select).to_be_visible()
    expect(select).to_have_accessible_name("Angle for Hiring for our platform team")
    options = select.locator("option").all_inner_texts()
    assert options == angle_names(served)
    select.select_option(ARCH)
    details.get_by_role("button", name="Add").click()
    page.wait_for_url(served.url(ACME_VIEW + "&done=angle-added"))
    card = page.locator(f"#card-{uid}")
    expect(card.locator(".card__angle")).to_have_attribute("data-angle", ARCH)
    expect(card.locator(".card__angle")).to_contain_text(f"Useful angle: {ARCH}")
    expect(card.locator(f'[data-not-angle="{ARCH}"]')).to_be_visible()  # and it can be taken back
    expect(card.locator("[data-add-angle]")).to_have_count(0)
    assert angles_of(served, uid) == [ARCH]


# -- the article page ----------------------------------------------------------------------------------
def test_why_add_and_remove_on_the_article_page(served: Served, new_page: Any) -> None:
    title = "Failover drills after a regional outage"
    uid = labelled(served, title, RELIABLE)
    names = angle_names(served)
    page = new_page()
    page.goto(served.url(f"/a/{uid}"))
    section = page.locator("#angles")
    expect(section.locator("h2")).to_have_text("Useful angles")
    expect(section.locator(".angle-list > li")).to_have_count(1)
    expect(section.locator(".angle-list > li")).to_have_attribute("data-angle", RELIABLE)

    # why these angles: closed at first, then one item per angle, the chosen one marked
    why = page.locator("#why-angles")
    expect(why.locator("summary")).to_have_text("Why these angles")
    expect(why.locator(".why-angles__list")).to_be_hidden()
    why.locator("summary").click()
    items = why.locator("[data-explain]")
    expect(items).to_have_count(len(names))
    assert sorted(items.evaluate_all("els => els.map(e => e.dataset.explain)")) == sorted(names)
    chosen = why.locator('[data-explain][data-chosen="true"]')
    expect(chosen).to_have_count(1)
    expect(chosen).to_have_attribute("data-explain", RELIABLE)
    expect(chosen).to_have_class(re.compile(r"\bwhy-angles__item--chosen\b"))
    expect(chosen.locator(".why-angles__head")).to_contain_text(f"{RELIABLE} — shown:")
    expect(chosen.locator(".why-angles__figures")).to_contain_text("threshold")
    expect(chosen.locator(".why-angles__terms")).to_contain_text("Evidence: ")
    expect(chosen.locator(".why-angles__terms")).to_contain_text("failover")
    expect(chosen.locator(".why-angles__passage")).not_to_be_empty()
    expect(why.locator('[data-explain][data-chosen="false"]')).to_have_count(len(names) - 1)
    expect(why.locator(f'[data-explain="{PERF}"] .why-angles__head')).to_contain_text(f"{PERF} — not shown:")
    expect(why.locator('[data-explain][data-chosen="false"] .why-angles__passage')).to_have_count(0)

    # add an angle: every angle but the one it has is offered
    select = page.locator("#add-angle")
    expect(select).to_have_accessible_name("Add an angle")
    assert select.locator("option").all_inner_texts() == [n for n in names if n != RELIABLE]
    select.select_option(BENCH)
    page.locator("#add-angle-submit").click()
    page.wait_for_url(re.compile(rf"/a/{uid}\?done=angle-added#angles$"))
    expect(page.locator("#state-message")).to_have_text("Angle added. Similar articles were labelled again.")
    expect(section.locator(".angle-list > li")).to_have_count(2)
    expect(section.locator(f'.angle-list > li[data-angle="{BENCH}"]')).to_be_visible()
    assert BENCH not in page.locator("#add-angle option").all_inner_texts()
    assert set(angles_of(served, uid)) == {RELIABLE, BENCH}
    page.locator("#why-angles summary").click()
    expect(page.locator(f'[data-explain="{BENCH}"]')).to_have_attribute("data-chosen", "true")

    # not this angle, on the one the labeller chose
    not_this = section.locator(f'[data-not-angle="{RELIABLE}"]')
    expect(not_this).to_have_accessible_name(named(f"Not this angle: {RELIABLE}"))
    not_this.click()
    page.wait_for_url(re.compile(rf"/a/{uid}\b"))
    expect(section.locator(".angle-list > li")).to_have_count(1)
    expect(section.locator(".angle-list > li")).to_have_attribute("data-angle", BENCH)
    assert RELIABLE in page.locator("#add-angle option").all_inner_texts()  # it may be added back
    assert angles_of(served, uid) == [BENCH]
    page.locator("#why-angles summary").click()
    expect(page.locator(f'[data-explain="{RELIABLE}"]')).to_have_attribute("data-chosen", "false")
    expect(page.locator('[data-explain][data-chosen="true"]')).to_have_count(1)


def test_why_no_angle(served: Served, new_page: Any) -> None:
    uid = labelled(served, "Notes from the offsite", None)
    page = new_page()
    page.goto(served.url(f"/a/{uid}"))
    expect(page.locator("#no-angle")).to_have_text("No useful angle for this article.")
    expect(page.locator("#angles [data-not-angle]")).to_have_count(0)
    expect(page.locator("#add-angle option")).to_have_count(len(angle_names(served)))
    why = page.locator("#why-angles")
    expect(why.locator("summary")).to_have_text("Why no angle")
    why.locator("summary").click()
    expect(why.locator("[data-explain]")).to_have_count(len(angle_names(served)))
    expect(why.locator('[data-explain][data-chosen="true"]')).to_have_count(0)
    expect(why.locator("[data-explain]").first.locator(".why-angles__head")).to_contain_text("not shown:")


def test_article_page_says_what_the_form_did(served: Served, new_page: Any) -> None:
    uid = labelled(served, "Fewer outages in our first year", RELIABLE)
    page = new_page()
    page.goto(served.url(f"/a/{uid}"))
    page.locator(f'#angles [data-not-angle="{RELIABLE}"]').click()
    expect(page.locator("#no-angle")).to_be_visible()
    assert angles_of(served, uid) == []
    expect(page.locator("#state-message")).to_have_text(
        "Angle removed. Similar articles were labelled again."
    )
    assert re.search(r"\?done=angle-removed#angles$", page.url), page.url


# -- without JavaScript ------------------------------------------------------------------------------
def test_angle_forms_without_javascript(served: Served, new_page: Any) -> None:
    removed = labelled(served, "Profiling the hot path for a faster startup", PERF)
    added = uid_of(served, "Our summer picnic")
    page = new_page(java_script_enabled=False)
    # "Not this angle" on a card: a plain POST with its token, then 303 to the same view
    page.goto(served.url(ACME_VIEW))
    page.locator(f'#card-{removed} [data-not-angle="{PERF}"]').click()
    page.wait_for_url(served.url(ACME_VIEW + "&done=angle-removed"))
    expect(page.locator(f"#card-{removed} .card__angle")).to_have_count(0)
    assert PERF not in angles_of(served, removed)
    # "Add an angle" on the article page
    page.goto(served.url(f"/a/{added}"))
    page.locator("#add-angle").select_option(BENCH)
    page.locator("#add-angle-submit").click()
    page.wait_for_url(re.compile(rf"/a/{added}\b"))
    expect(page.locator(f'#angles .angle-list > li[data-angle="{BENCH}"]')).to_be_visible()
    assert BENCH in angles_of(served, added)
    # the disclosure opens without JavaScript
    page.locator("#why-angles summary").click()
    expect(page.locator(f'[data-explain="{BENCH}"]')).to_have_attribute("data-chosen", "true")


# -- how it looks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("name", ["feed", "article"])
def test_angle_controls_look_right_and_pass_axe(
    served: Served, new_page: Any, name: str, device: str, scheme: str
) -> None:
    with_angle = labelled(served, "Tail latency of our cache, measured", PERF)
    without = labelled(served, "Notes from the offsite", None)
    phone = device == "phone"
    page = new_page(
        viewport=PHONE if phone else DESKTOP,
        color_scheme=scheme,
        is_mobile=phone,
        has_touch=phone,
        bypass_csp=True,
    )
    if name == "feed":
        page.goto(served.url(ACME_VIEW))
        expect(page.locator(f"#card-{with_angle} [data-not-angle]")).to_be_visible()
        details = page.locator(f"#card-{without} [data-add-angle]")
        details.locator("summary").click()  # one "Add angle" open, to see its select and button
        expect(details.locator("select")).to_be_visible()
    else:
        page.goto(served.url(f"/a/{quote(with_angle)}"))
        expect(page.locator("#angles [data-not-angle]").first).to_be_visible()
        expect(page.locator("#add-angle")).to_be_visible()
        page.locator("#why-angles summary").click()
        expect(page.locator("#why-angles [data-explain]").first).to_be_visible()
    dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    assert dark is (scheme == "dark")
    assert horizontal_overflow(page) == []
    screenshot(page, f"angles-{name}-{device}-{scheme}")
    assert_no_axe_violations(page)
