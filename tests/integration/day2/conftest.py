"""Fixtures for the day-2 playbook tests: an Argo CD stand-in and a playbook runner."""

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

VENV_BIN = Path(sys.executable).parent
FAST = {"pickup_delay": 0.05, "op_duration": 0.15, "reconcile_delay": 0.05, "health_delay": 0.1}


class PlaybookRun:
    """One ansible-playbook run with the JSON callback."""

    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.proc = proc
        self.rc = proc.returncode
        try:
            self.data = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError as exc:
            raise AssertionError("no JSON from ansible-playbook:\n%s\n%s" % (proc.stdout[-3000:],
                                                                             proc.stderr[-3000:])) from exc

    def stats(self, host: str = "localhost") -> Dict[str, int]:
        return self.data["stats"].get(host, {})

    def tasks(self, host: str = "localhost") -> List[Dict[str, Any]]:
        """Results of ``host`` in run order: dicts with the task name and its result."""
        out = []
        for play in self.data["plays"]:
            for task in play["tasks"]:
                if host in task["hosts"]:
                    out.append(dict(task["hosts"][host], _task=task["task"]["name"]))
        return out

    def task(self, name: str, host: str = "localhost") -> Dict[str, Any]:
        for result in self.tasks(host):
            if result["_task"] == name:
                return result
        raise KeyError("%s not run on %s; ran: %s" % (name, host, [t["_task"] for t in self.tasks(host)]))

    def failure_messages(self) -> List[str]:
        return [str(t.get("msg")) for t in self.tasks() if t.get("failed")]

    def __repr__(self) -> str:
        return "PlaybookRun(rc=%s, stats=%s)\n%s\n%s" % (self.rc, self.data.get("stats"), self.failure_messages(),
                                                         self.proc.stderr[-2000:])


def run_playbook(playbook: str, extra_vars: Optional[Dict[str, Any]] = None, inventory: str = "localhost,",
                 env: Optional[Dict[str, str]] = None, check: bool = False, args: Optional[List[str]] = None,
                 timeout: int = 300) -> PlaybookRun:
    """``playbook`` is a path or an FQCN (dictamesh.k3s_gitops.sync)."""
    cmd: List[str] = [str(VENV_BIN / "ansible-playbook"), playbook, "-i", inventory,
                      "-e", json.dumps(extra_vars or {})] + list(args or [])
    if check:
        cmd.append("--check")
    full_env = dict(os.environ)
    for var in ("ARGOCD_AUTH_TOKEN", "ARGOCD_PASSWORD", "ARGOCD_SERVER"):
        full_env.pop(var, None)
    full_env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_TIMEOUT": "3",
    })
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(proc)


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
