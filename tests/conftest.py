"""Shared test fixtures.

The real feed snapshots live in ``../shared`` beside the repository (CI has them there
too); their text belongs to the publishers, so tests read them in place and never copy them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["httpserver", "browser_support", "pgserver"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ENGFEED_SHARED", ROOT.parent / "shared"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Refreshes fetch article pages for teaser feeds by default; test feeds link to made-up
# hosts, so the suite turns that off and the full-text tests turn it on with loopback pages.
os.environ["ENGFEED_FULLTEXT"] = "0"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared corpus not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI tests run BM25-only (search tests cover the model), with no store or angles file
    from the environment."""
    monkeypatch.setenv("ENGFEED_EMBED", "0")
    monkeypatch.delenv("ENGFEED_DB", raising=False)
    monkeypatch.delenv("ENGFEED_DATABASE_URL", raising=False)
    monkeypatch.delenv("ENGFEED_ANGLES", raising=False)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``engfeed ARGV`` in process: (exit code, stdout, stderr)."""
    from engfeed.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
