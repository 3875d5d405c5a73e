"""Fixtures: an Argo CD API stand-in per test and an ansible-playbook runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.standins.argocd_api import ArgoCDStandIn  # noqa: E402

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
VENV_BIN = Path(sys.executable).parent
FAST = {"pickup_delay": 0.05, "op_duration": 0.15, "reconcile_delay": 0.05, "health_delay": 0.1}


class PlaybookResult:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.proc = proc
        self.rc = proc.returncode
        try:
            self.data = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            raise AssertionError("no JSON from ansible-playbook:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:]))
        self.stats = self.data["stats"].get("localhost", {})

    @property
    def changed(self) -> int:
        return self.stats.get("changed", 0)

    @property
    def failed(self) -> int:
        return self.stats.get("failures", 0)

    def task(self, name: str) -> Dict[str, Any]:
        for play in self.data["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"] == name:
                    return task["hosts"]["localhost"]
        raise KeyError(name)

    def __repr__(self) -> str:
        return "PlaybookResult(rc=%s, stats=%s)\n%s" % (self.rc, self.stats, self.proc.stderr[-2000:])


def run_playbook(playbook: str, extra_vars: Dict[str, Any], check: bool = False, diff: bool = False,
                 env: Optional[Dict[str, str]] = None) -> PlaybookResult:
    cmd: List[str] = [str(VENV_BIN / "ansible-playbook"), str(PLAYBOOKS / playbook), "-i", "localhost,",
                      "-c", "local", "-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    full_env = dict(os.environ)
    full_env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    })
    full_env.pop("ARGOCD_AUTH_TOKEN", None)
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300, check=False)
    return PlaybookResult(proc)


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


@pytest.fixture
def playbook():
    return run_playbook
