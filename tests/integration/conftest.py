"""Fixtures shared by the integration tests: an Argo CD API stand-in per test and the playbook runner
(tests/integration/playbook_runner.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.playbook_runner import FAST_STANDIN, ensure_collection_link, run_playbook  # noqa: E402
from tests.standins.argocd_api import ArgoCDStandIn  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def collection_link() -> None:
    ensure_collection_link()


@pytest.fixture
def standin() -> Iterator[ArgoCDStandIn]:
    """A fresh stand-in with a fast fake controller; the test fails if it saw a contract violation."""
    with ArgoCDStandIn(config=dict(FAST_STANDIN)) as server:
        yield server
    assert server.store.violations == [], "stand-in saw contract violations: %s" % server.store.violations


@pytest.fixture
def playbook():
    """``run_playbook(playbook, extra_vars, inventory=..., env=..., check=..., diff=..., args=...)``."""
    return run_playbook
