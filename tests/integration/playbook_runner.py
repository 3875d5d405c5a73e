"""One ansible-playbook runner for the integration tests (tests/integration/argocd and day2).

``run_playbook`` runs ansible-playbook from the repository root with its ansible.cfg and the
collection on ``.collections`` (the git-ignored symlink), the JSON callback and the venv's python,
with the Argo CD credentials of the caller's environment removed; ``PlaybookRun`` reads the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# The stand-in's fake controller, fast enough for tests and still ordered like the real one.
FAST_STANDIN = {"pickup_delay": 0.05, "op_duration": 0.15, "reconcile_delay": 0.05, "health_delay": 0.1}
# Argo CD settings the modules read from the environment: a test passes them explicitly or not at all.
SCRUBBED_ENV = ("ARGOCD_AUTH_TOKEN", "ARGOCD_PASSWORD", "ARGOCD_SERVER")
ANSIBLE_ENV = {
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
    "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    "ANSIBLE_LOCALHOST_WARNING": "false",
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_TIMEOUT": "3",
}


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

    @property
    def changed(self) -> int:
        """Changed tasks on localhost."""
        return self.stats().get("changed", 0)

    @property
    def failed(self) -> int:
        """Failed tasks on localhost (ignored failures not counted)."""
        return self.stats().get("failures", 0)

    def tasks(self, host: str = "localhost") -> List[Dict[str, Any]]:
        """Results of ``host`` in run order: dicts with the task name (``_task``) and its result."""
        out = []
        for play in self.data["plays"]:
            for task in play["tasks"]:
                if host in task["hosts"]:
                    out.append(dict(task["hosts"][host], _task=task["task"]["name"]))
        return out

    def task(self, name: str, host: str = "localhost") -> Dict[str, Any]:
        """The first result of the task called ``name`` on ``host``."""
        for result in self.tasks(host):
            if result["_task"] == name:
                return result
        raise KeyError("%s not run on %s; ran: %s" % (name, host, [t["_task"] for t in self.tasks(host)]))

    def failure_messages(self) -> List[str]:
        return [str(t.get("msg")) for t in self.tasks() if t.get("failed")]

    def __repr__(self) -> str:
        return "PlaybookRun(rc=%s, stats=%s)\n%s\n%s" % (self.rc, self.data.get("stats"), self.failure_messages(),
                                                         self.proc.stderr[-2000:])


def playbook_command(playbook: Union[str, Path], extra_vars: Optional[Dict[str, Any]] = None,
                     inventory: str = "localhost,", check: bool = False, diff: bool = False,
                     connection: Optional[str] = None, args: Optional[List[str]] = None) -> List[str]:
    cmd: List[str] = [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", inventory,
                      "-e", json.dumps(extra_vars or {})]
    if connection:
        cmd += ["-c", connection]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    return cmd + list(args or [])


def playbook_env(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    full = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    full.update(ANSIBLE_ENV)
    full.update(env or {})
    return full


def run_playbook(playbook: Union[str, Path], extra_vars: Optional[Dict[str, Any]] = None,
                 inventory: str = "localhost,", env: Optional[Dict[str, str]] = None, check: bool = False,
                 diff: bool = False, connection: Optional[str] = None, args: Optional[List[str]] = None,
                 timeout: int = 300) -> PlaybookRun:
    """Run ``playbook`` (a path or an FQCN such as dictamesh.k3s_gitops.sync) from the repository root."""
    ensure_collection_link()
    proc = subprocess.run(playbook_command(playbook, extra_vars, inventory, check, diff, connection, args),
                          cwd=REPO, env=playbook_env(env), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return PlaybookRun(proc)


def ensure_collection_link() -> None:
    """The git-ignored ``.collections/ansible_collections/dictamesh/k3s_gitops -> ../../..`` (as make venv)."""
    link = REPO / ".collections" / "ansible_collections" / "dictamesh" / "k3s_gitops"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to("../../..")
        except FileExistsError:  # made meanwhile by a parallel run
            pass
