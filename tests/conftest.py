"""Shared test fixtures.

The real feed snapshots live in ``../shared`` beside the repository (CI has them there
too); their text belongs to the publishers, so tests read them in place and never copy them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["httpserver"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ENGFEED_SHARED", ROOT.parent / "shared"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared corpus not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
