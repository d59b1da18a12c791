"""``engfeed db status | upgrade | copy`` and the store options, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from pgserver import PgServer, store_location

FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Acme Engineering</title>
<link>https://acme.example/</link>
<item><title>Caching at the edge</title><link>https://acme.example/1</link>
<pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate><description>How we cache.</description></item>
<item><title>Failover between regions</title><link>https://acme.example/2</link>
<pubDate>Tue, 07 Jan 2025 10:00:00 GMT</pubDate><description>Keeping services up.</description></item>
</channel></rss>"""


def where(location: str) -> list[str]:
    return ["--database-url", location] if location.startswith("postgresql://") else ["--db", location]


@pytest.mark.usefixtures("cli_env")
def test_status_upgrade_and_a_copy_there_and_back(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = store_location(request, backend, "src")
    (tmp_path / "acme.xml").write_bytes(FEED)
    assert run_cli(capsys, *where(src), "import", str(tmp_path / "acme.xml"))[0] == 0
    code, out, _ = run_cli(capsys, *where(src), "db", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["backend"] == backend and status["pending"] == 0
    assert set(status) == {"backend", "location", "version", "latest", "pending"}
    code, out, _ = run_cli(capsys, *where(src), "db", "upgrade", "--json")
    assert code == 0 and json.loads(out)["after"]["pending"] == 0

    other = "postgresql" if backend == "sqlite" else "sqlite"
    dest = store_location(request, other, "dest")
    code, out, err = run_cli(capsys, *where(src), "db", "copy", "--to", dest, "--json")
    copied = json.loads(out)
    assert code == 0 and copied["rows"]["articles"] == 2 and copied["rows"]["sources"] == 0
    code, out, _ = run_cli(capsys, *where(dest), "list", "--json")
    assert code == 0
    assert [a["title"] for a in json.loads(out)] == ["Failover between regions", "Caching at the edge"]
    code, out, err = run_cli(capsys, *where(src), "db", "copy", "--to", dest)
    assert code == 2 and "not empty" in err and "Traceback" not in err


@pytest.mark.usefixtures("cli_env")
def test_a_bad_database_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        run_cli(capsys, "--database-url", "mysql://x/y", "db", "status")
    assert stop.value.code == 2
    assert "postgresql://" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
def test_passwords_never_reach_the_output(
    pg_server: PgServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.fresh_database().replace("postgres:@", "postgres:hunter2@")
    monkeypatch.setenv("ENGFEED_DATABASE_URL", url)
    code, out, err = run_cli(capsys, "db", "status")
    assert code == 0 and "hunter2" not in out + err and "postgres:***@" in out
