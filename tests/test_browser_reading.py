"""The reading workflow in real Chromium: save from a card, write a note, see it on the
reading list, export and import, mark read and unread, the unread-only and saved-only
filters, with and without JavaScript; axe and screenshots of the new pages.

A real ``engfeed serve`` over its own small store (so state changes here never touch the
other browser tests' site).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import (
    DESKTOP,
    PHONE,
    Served,
    assert_no_axe_violations,
    browser_marks,
    chromium_missing_reason,
    horizontal_overflow,
    screenshot,
    serving,
    subprocess_env,
)
from engfeed.feed import Feed
from feedgen import rss
from pgserver import store_location

pytestmark = browser_marks()

if chromium_missing_reason() is None:
    from playwright.sync_api import expect

NOTE = "1. **Overall design**: two queues\n   - retries with backoff\n2. **Ongoing work**: sharding"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, module_backend: str
) -> Iterator[Served]:
    """The real server over a store on each backend (the reader's state lives in the store)."""
    home = tmp_path_factory.mktemp("reading")
    db = store_location(request, module_backend, "engfeed")
    (home / "acme.xml").write_bytes(rss(8))
    feed = Feed.open(db, embed=False)
    try:
        feed.import_paths([home / "acme.xml"])
    finally:
        feed.close()
    with serving(db, subprocess_env(home, ENGFEED_EMBED="0"), home / "serve.log") as s:
        yield s


def state(served: Served, uid: str) -> dict[str, Any]:
    data: dict[str, Any] = served.get_json(f"/api/articles/{uid}")
    return data


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_save_note_reading_list_read_and_filters(served: Served, new_page: Any, javascript: bool) -> None:
    page = new_page(java_script_enabled=javascript)
    card = page.locator("#cards [data-card]").nth(0 if javascript else 1)
    page.goto(served.url("/"))
    uid = card.get_attribute("data-uid")
    assert uid
    # save from the card
    card.locator("[data-save-toggle]").click()
    expect(card.locator("[data-save-toggle]")).to_have_attribute("aria-pressed", "true")
    if javascript:
        assert page.url == served.url("/")  # no reload
    assert state(served, uid)["saved"] is True
    # write a note on the article page (opening it reads it)
    page.goto(served.url(f"/a/{uid}"))
    assert state(served, uid)["read"] is True
    page.locator("#note-text").fill(NOTE)
    if javascript:
        expect(page.locator("[data-note-preview] strong").first).to_have_text(
            "Overall design"
        )  # live preview
    page.locator("#note-save").click()
    expect(page.locator("[data-note-preview] strong").first).to_have_text("Overall design")
    if javascript:
        expect(page.locator("[data-note-status]")).to_have_text("Note saved.")
    assert state(served, uid)["note"] == NOTE
    # mark it unread again from the article page
    page.locator("[data-read-toggle]").click()
    expect(page.locator("[data-read-toggle]")).to_have_attribute("aria-pressed", "false")
    assert state(served, uid)["read"] is False
    # the reading list shows it with the note rendered
    page.goto(served.url("/reading-list"))
    saved = page.locator(f'#saved-cards [data-uid="{uid}"]')
    expect(saved).to_be_visible()
    expect(page.locator(f'[data-saved-note="{uid}"] strong').first).to_have_text("Overall design")
    # filters: saved only, unread only
    page.goto(served.url("/?show=saved"))
    assert uid in page.locator("#cards [data-card]").evaluate_all("els => els.map(e => e.dataset.uid)")
    mine = page.locator(f'#cards [data-uid="{uid}"]')
    mine.locator("[data-read-toggle]").click()
    expect(mine.locator("[data-read-toggle]")).to_have_attribute("aria-pressed", "true")
    page.goto(served.url("/?show=unread&limit=100"))
    unread = page.locator("#cards [data-card]").evaluate_all("els => els.map(e => e.dataset.uid)")
    assert uid not in unread


def test_keyboard_save_and_read(served: Served, new_page: Any) -> None:
    page = new_page()
    page.goto(served.url("/"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    card = page.locator("#cards [data-card].is-current")
    uid = card.get_attribute("data-uid")
    assert uid
    was_saved = state(served, uid)["saved"]
    page.keyboard.press("s")
    expect(card.locator("[data-save-toggle]")).to_have_attribute(
        "aria-pressed", "false" if was_saved else "true"
    )
    was_read = card.get_attribute("data-read") == "true"
    page.keyboard.press("m")  # toggles
    expect(card).to_have_attribute("data-read", "false" if was_read else "true")
    if was_read:
        page.keyboard.press("m")
        expect(card).to_have_attribute("data-read", "true")
    page.keyboard.press("Shift+U")  # unread, whatever the state
    expect(card).to_have_attribute("data-read", "false")
    page.keyboard.press("Shift+U")
    expect(card).to_have_attribute("data-read", "false")
    page.goto(served.url(f"/a/{uid}"))
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "note-text"


def test_export_and_import_markdown(served: Served, new_page: Any, tmp_path: Path) -> None:
    page = new_page()
    page.goto(served.url("/reading-list"))
    with page.expect_download() as info:
        page.locator("#export-markdown").click()
    exported = Path(info.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("---\ntitle: ")
    listed = tmp_path / "mine.md"
    listed.write_text(
        "* [A post from elsewhere](https://elsewhere.example/post)\n    kept note\n", encoding="utf-8"
    )
    page.locator("#import-file").set_input_files(str(listed))
    page.locator("#import-submit").click()
    expect(page.locator("#import-message")).to_have_text("Imported 1 entry into your reading list.")
    expect(page.locator("#saved-cards")).to_contain_text("A post from elsewhere")
    expect(page.locator("#saved-cards")).to_contain_text("kept note")


@pytest.mark.parametrize(
    ("name", "path", "viewport", "scheme"),
    [
        ("reading-list-desktop-light", "/reading-list", DESKTOP, "light"),
        ("reading-list-phone-dark", "/reading-list", PHONE, "dark"),
        ("reading-list-desktop-dark", "/reading-list", DESKTOP, "dark"),
        ("reading-list-phone-light", "/reading-list", PHONE, "light"),
        ("note-desktop-light", None, DESKTOP, "light"),
        ("note-desktop-dark", None, DESKTOP, "dark"),
        ("note-phone-dark", None, PHONE, "dark"),
        ("note-phone-light", None, PHONE, "light"),
        ("feed-state-phone-light", "/?show=unread", PHONE, "light"),
        ("feed-state-desktop-dark", "/?show=saved", DESKTOP, "dark"),
    ],
)
def test_new_pages_look_right_and_pass_axe(
    served: Served, new_page: Any, name: str, path: str | None, viewport: dict[str, int], scheme: str
) -> None:
    saved = served.get_json("/api/articles?show=saved")["articles"]
    if path is None:
        path = (
            f"/a/{saved[0]['id']}" if saved else "/a/" + served.get_json("/api/articles")["articles"][0]["id"]
        )
    phone = viewport is PHONE
    page = new_page(viewport=viewport, color_scheme=scheme, is_mobile=phone, has_touch=phone, bypass_csp=True)
    page.goto(served.url(path))
    assert horizontal_overflow(page) == []
    screenshot(page, name)
    assert_no_axe_violations(page)
