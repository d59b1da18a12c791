"""The Host check (the DNS-rebinding door): only configured host names get a page, a cookie
or a CSRF token; everything else gets a short plain-text 421 that names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from engfeed import config
from engfeed.web.app import create_app
from engfeed.web.refresh import Refresher
from engfeed.web.security import AllowedHostsMiddleware, host_name
from test_web import build_feed, csrf_token


@pytest.fixture
def app_default_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ENGFEED_ALLOWED_HOSTS", raising=False)
    feed = build_feed(tmp_path / "h.db", [])
    app = create_app(feed, refresh_interval_min=0, csrf_secret=b"s" * 32)
    yield app
    feed.close()


def test_a_foreign_host_gets_421_and_no_cookie_or_token(app_default_hosts) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app_default_hosts, base_url="http://attacker.example") as c:
        for path in ("/", "/sources", "/api/articles", "/healthz", "/static/app.css"):
            r = c.get(path)
            assert r.status_code == 421, path
            assert r.headers["content-type"].startswith("text/plain")
            assert "set-cookie" not in r.headers
            assert "csrf_token" not in r.text
            assert "ENGFEED_ALLOWED_HOSTS" in r.text
            assert "'attacker.example'" in r.text
            assert r.headers["x-content-type-options"] == "nosniff"


def test_a_foreign_host_cannot_post_refresh_even_with_a_valid_token(app_default_hosts) -> None:  # type: ignore[no-untyped-def]
    refresher: Refresher = app_default_hosts.state.refresher
    triggered: list[bool] = []
    refresher.trigger = lambda only_due=False: triggered.append(only_due) or True  # type: ignore[method-assign]
    with TestClient(app_default_hosts, base_url="http://localhost:8000") as good:
        page = good.get("/sources")
        assert page.status_code == 200
        token = csrf_token(page.text)
        cookie = good.cookies.get("engfeed_csrf")
    assert cookie
    with TestClient(app_default_hosts, base_url="http://attacker.example:8000") as evil:
        evil.cookies.set("engfeed_csrf", cookie)
        r = evil.post("/refresh", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 421
    assert triggered == []


@pytest.mark.parametrize(
    "base", ["http://localhost", "http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"]
)
def test_the_default_names_are_served(app_default_hosts, base: str) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app_default_hosts, base_url=base) as c:
        assert c.get("/").status_code == 200
        assert c.get("/healthz").json()["status"] == "ok"


def test_allowed_hosts_setting_replaces_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGFEED_ALLOWED_HOSTS", "feeds.example.com, *.corp.example")
    feed = build_feed(tmp_path / "e.db", [])
    app = create_app(feed, refresh_interval_min=0)
    for base, status in [
        ("https://feeds.example.com", 200),
        ("https://FEEDS.example.com:443", 200),
        ("https://corp.example", 200),
        ("https://read.corp.example", 200),
        ("https://evilcorp.example", 421),
        ("http://localhost:8000", 421),
    ]:
        with TestClient(app, base_url=base) as c:
            assert c.get("/healthz").status_code == status, base
    feed.close()


def test_default_hosts_include_the_bind_address_unless_it_is_a_wildcard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENGFEED_ALLOWED_HOSTS", raising=False)
    assert config.allowed_hosts() == ("localhost", "127.0.0.1", "[::1]")
    assert config.allowed_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "[::1]")
    assert config.allowed_hosts("feeds.internal") == ("localhost", "127.0.0.1", "[::1]", "feeds.internal")
    assert config.allowed_hosts("::1") == ("localhost", "127.0.0.1", "[::1]")
    for wildcard in ("0.0.0.0", "::", ""):
        assert config.allowed_hosts(wildcard) == ("localhost", "127.0.0.1", "[::1]")
    monkeypatch.setenv("ENGFEED_ALLOWED_HOSTS", "*")
    assert config.allowed_hosts("0.0.0.0") == ("*",)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8000", "localhost"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("example.com.", "example.com"),
        ("[::1", ""),
        ("[::1]x", ""),
        ("host:port", ""),
        ("a@b", ""),
        ("", ""),
    ],
)
def test_host_name_parsing(header: str, name: str) -> None:
    assert host_name(header) == name


def test_wildcard_allows_everything() -> None:
    middleware = AllowedHostsMiddleware(lambda s, r, se: None, ["*"])  # type: ignore[arg-type,return-value]
    assert middleware.permits("anything.example:1234")
    assert middleware.permits("")
