"""Fixtures of the reliability tests and the measured report.

``pytest tests/reliability --reliability-report build/reliability.json`` writes every figure the
tests record (bad inputs with their messages, leak-scan volumes, fault timings) with each test's
outcome; tests/reliability/render_report.py turns that JSON into the tables of docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.standins.argocd_api import ArgoCDStandIn  # noqa: E402

FAST = {"pickup_delay": 0.05, "op_duration": 0.15, "reconcile_delay": 0.05, "health_delay": 0.1}
RECORDS: List[Dict[str, Any]] = []
OUTCOMES: Dict[str, str] = {}
STARTED = time.time()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-report", default=os.environ.get("RELIABILITY_REPORT", ""),
                     help="write the reliability figures (JSON) to this path")


def pytest_configure(config: pytest.Config) -> None:
    # each pytest-xdist worker would write its own part of the figures over the others'
    workers = config.getoption("numprocesses", None) or hasattr(config, "workerinput")
    if config.getoption("--reliability-report") and workers:
        raise pytest.UsageError("--reliability-report needs one process: add -n 0")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.outcome == "skipped" else "xpassed"
        OUTCOMES[report.nodeid] = outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--reliability-report")
    if not path:
        return
    for record in RECORDS:
        record["outcome"] = OUTCOMES.get(record["nodeid"], "not run")
    data = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "ansible_core": ansible_version()},
            "wall_seconds": round(time.time() - STARTED, 1), "records": RECORDS}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def ansible_version() -> str:
    try:
        from ansible.release import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., Dict[str, Any]]:
    """``record(kind, **figures)``: add a row to the report (returned, so it can grow later)."""
    def add(kind: str, **figures: Any) -> Dict[str, Any]:
        row = dict(kind=kind, nodeid=request.node.nodeid, **figures)
        RECORDS.append(row)
        return row
    return add


@pytest.fixture(scope="session", autouse=True)
def collection_link() -> None:
    link = REPO / ".collections" / "ansible_collections" / "dictamesh" / "k3s_gitops"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("../../..")


@pytest.fixture
def standin() -> Iterator[ArgoCDStandIn]:
    with ArgoCDStandIn(config=dict(FAST)) as server:
        yield server
    assert server.store.violations == [], "stand-in saw contract violations: %s" % server.store.violations
