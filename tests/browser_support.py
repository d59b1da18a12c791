"""Helpers for the browser tests (``test_browser*.py``): a real ``engfeed serve`` subprocess over a
store built from local feeds, headless Chromium through Playwright, screenshots and axe-core.

Also a pytest plugin (listed in ``conftest.py``): the ``browser`` fixture (one Chromium per
module) and ``new_page`` (a page in a new context whose requests to anything but 127.0.0.1 are
answered locally, never sent), and :func:`browser_marks` for a module's ``pytestmark``.

Nothing here downloads anything. Chromium is the system one (``/usr/bin/chromium``, or
``$ENGFEED_CHROMIUM``); axe-core is read from the npm cache that CI fills with
``npm install --prefix .cache/npm axe-core@4`` (or ``$ENGFEED_AXE_JS``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ENGFEED_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = Path(
    os.environ.get("ENGFEED_AXE_JS", ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js")
)
SCREENSHOTS = Path(os.environ.get("ENGFEED_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
BUNDLED_ANGLES = ROOT / "src" / "engfeed" / "data" / "angles.toml"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if os.environ.get("ENGFEED_SKIP_BROWSER"):
        return "ENGFEED_SKIP_BROWSER is set"
    if not CHROMIUM.is_file():
        return f"Chromium not found at {CHROMIUM} (install it: apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def axe_missing_reason() -> str | None:
    if not AXE_JS.is_file():
        return (
            f"axe-core not found at {AXE_JS}: run `npm install --prefix .cache/npm axe-core@4` "
            "(or point ENGFEED_AXE_JS at axe.min.js)"
        )
    return None


# -- feeds and the store -------------------------------------------------------------------------
def rss_items(title: str, site: str, items: Sequence[tuple[str, str, str, datetime]]) -> bytes:
    """An RSS 2.0 feed of hand-written ``(guid, title, description, published)`` items."""
    body = "".join(
        f"<item><title>{escape(head)}</title><link>{escape(site)}/{escape(guid)}</link>"
        f"<guid isPermaLink='false'>{escape(guid)}</guid><pubDate>{format_datetime(when)}</pubDate>"
        f"<description>{escape(text)}</description></item>"
        for guid, head, text, when in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{escape(site)}/</link><description>d</description>"
        f"{body}</channel></rss>"
    ).encode()


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for ``engfeed`` subprocesses: no proxies, no user config, no timer."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.update(
        {
            "ENGFEED_REFRESH_INTERVAL": "0",
            "ENGFEED_ANGLES": str(BUNDLED_ANGLES),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("ENGFEED_DB", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Served:
    """A running ``engfeed serve``."""

    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def url(self, path: str = "/") -> str:
        return self.base + path

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=30) as resp:
            return json.load(resp)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def serving(
    db: Path | str, env: dict[str, str], log: Path, *, timeout: float = 60, args: Sequence[str] = ()
) -> Iterator[Served]:
    """``engfeed --db DB serve ARGS`` (``--database-url`` for a URL) on a free loopback port,
    up and answering; stopped on exit."""
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        with log.open("ab") as out:
            where = "--database-url" if str(db).startswith("postgresql://") else "--db"
            command = [sys.executable, "-m", "engfeed", where, str(db), "serve", *args]
            proc = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        served = Served(proc, f"http://127.0.0.1:{port}", log)
        try:
            if _wait_up(served, timeout):
                break
            last_error = served.log_tail()
        except BaseException:
            _stop(proc)
            raise
        _stop(proc)
    else:
        raise RuntimeError(f"engfeed serve did not start:\n{last_error}")
    try:
        yield served
    finally:
        _stop(proc)


def _wait_up(served: Served, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(served.url("/healthz"), timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly on SIGINT
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- pages ------------------------------------------------------------------------------------------
def screenshot(page: Any, name: str, *, full_page: bool = True, max_height: int | None = None) -> Path:
    """Save ``artifacts/screenshots/NAME.png`` (the whole page by default; with ``max_height``,
    its top that many CSS pixels high: a long article's full page is slow to capture)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if max_height is None:
        page.screenshot(path=str(path), full_page=full_page)
    else:
        width = page.evaluate("document.documentElement.clientWidth")
        height = min(max_height, page.evaluate("document.documentElement.scrollHeight"))
        page.screenshot(
            path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
        )
    return path


def horizontal_overflow(page: Any) -> list[str]:
    """Elements sticking out past the right edge of the viewport (empty when the page fits)."""
    found: list[str] = page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const out = [];
          for (const el of document.body.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0) continue;
            if (r.right > width + 1 && !el.closest('.visually-hidden, pre, table, .table-wrap')) {
              out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '')
                + ' right=' + Math.round(r.right));
            }
          }
          return out.slice(0, 10);
        }"""
    )
    return found


def run_axe(page: Any) -> dict[str, Any]:
    """Inject axe-core (needs a context with ``bypass_csp=True``) and run it on the page."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return {passes: r.passes.length, incomplete: r.incomplete.map(v => v.id),
                  violations: r.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary || ''}))
          }))};
        }"""
    )
    return result


def assert_no_axe_violations(page: Any) -> None:
    """Run axe-core on the page (when installed) and fail on any violation at all."""
    if axe_missing_reason() is not None:
        return
    result = run_axe(page)
    assert result["passes"] > 10  # axe really ran
    assert not result["violations"], describe_violations(result["violations"])


def describe_violations(violations: Sequence[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({len(v['nodes'])} nodes) {v['helpUrl']}")
        for node in v["nodes"][:5]:
            summary = " ".join(node["summary"].split())[:300]
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def browser_marks() -> list[pytest.MarkDecorator]:
    """``pytestmark`` of a browser test module: marked, skipped without Chromium, and run in
    one xdist group (one server and one browser for the module with ``--dist loadgroup``)."""
    missing = chromium_missing_reason()
    return [
        pytest.mark.browser,
        pytest.mark.skipif(missing is not None, reason=missing or ""),
        pytest.mark.xdist_group("browser"),
    ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(**context_options)``: desktop-sized unless told; nothing leaves the machine
    (an article's images point at its publisher: answered 204 here)."""
    import re

    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", DESKTOP)
        ctx = browser.new_context(**options)
        ctx.set_default_timeout(15_000)
        ctx.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.fulfill(status=204, body=""))
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()
