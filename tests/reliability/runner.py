"""Shared runner of the reliability tests: throw-away inventories and ansible-playbook runs.

Secrets and variables never go on the command line: extra variables are written to a 0600 JSON
file passed as ``-e @file`` (the leak scan samples ``ps`` while a playbook runs, so the runner
itself must not put a secret there).

Inventories start from the staging sample (inventories/staging/group_vars/all, minus its vault
placeholders) so the playbooks see the same variables as a real run. Host connection modes:

* ``unreachable``: every host is ``ssh 127.0.0.1:1``; checks that run on the controller (assert,
  set_fact, argument specs) work, the first real contact with a host fails as unreachable;
* ``local_validate``: the hosts are the controller (connection local) only during plays whose
  name starts with "Validate" or "Check"; in any later play they are unreachable. So a play that
  would change a host can never run on this machine, and it shows up as unreachable if it starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() \
    else str(Path(sys.executable).parent / "ansible-playbook")
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
STAGING_VARS = REPO / "inventories" / "staging" / "group_vars" / "all"
VALIDATION_PLAYS = r"^(Validate|Check)"
TEST_SECRETS = {
    "vault_cluster_token": "reliability-cluster-token-0123456789abcdef",
    "vault_argocd_admin_password": "reliability-argocd-admin-pw",
    "vault_gitops_repo_username": "",
    "vault_gitops_repo_password": "",
    "vault_gitops_repo_ssh_private_key": "",
}
DROP = object()


def staging_vars() -> Dict[str, Any]:
    """The staging sample's group_vars/all, the vault placeholders replaced by test values."""
    merged: Dict[str, Any] = {}
    for path in sorted(STAGING_VARS.glob("_common/*.yml")) + sorted(STAGING_VARS.glob("*.yml")):
        if path.name != "vault.yml":
            merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    merged.update(TEST_SECRETS)
    merged["cluster_k3s_download_base_url"] = "http://127.0.0.1:1/unused"
    return merged


def connection_vars(mode: str) -> Dict[str, Any]:
    base = {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_python_interpreter": PYTHON,
            "ansible_become": False}
    if mode == "local":  # only for playbooks that change nothing on the hosts (API calls, checks)
        return dict(base, ansible_connection="local")
    if mode == "unreachable":
        return dict(base, ansible_connection="ssh")
    if mode == "local_validate":
        return dict(base, ansible_connection="{{ 'local' if ansible_play_name is search('%s') else 'ssh' }}"
                    % VALIDATION_PLAYS)
    raise ValueError("unknown host mode %r" % mode)


def write_inventory(directory: Path, mode: str = "unreachable", servers: int = 1, agents: int = 1,
                    group_vars: Optional[Dict[str, Any]] = None,
                    host_vars: Optional[Dict[str, Dict[str, Any]]] = None) -> Path:
    """A staging-like inventory dir: hosts s1..sN, a1..aM. ``group_vars`` values None remove a key."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    values = staging_vars()
    values.update(connection_vars(mode))
    for key, value in (group_vars or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    private_file(directory / "group_vars" / "all" / "main.yml", yaml.safe_dump(values))
    hosts = {"s%d" % i: {"node_ip": "192.0.2.%d" % i, "node_name": "s%d" % i} for i in range(1, servers + 1)}
    agents_hosts = {"a%d" % i: {"node_ip": "192.0.2.%d" % (100 + i), "node_name": "a%d" % i}
                    for i in range(1, agents + 1)}
    for name, more in (host_vars or {}).items():
        (hosts if name in hosts else agents_hosts).setdefault(name, {}).update(more)
    inventory = {"k3s_cluster": {"children": {"k3s_servers": {"hosts": hosts or None},
                                              "k3s_agents": {"hosts": agents_hosts or None}}}}
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return directory


def private_file(path: Path, text: str) -> Path:
    """Write ``text`` to a new 0600 file."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


@dataclass
class Run:
    """One ansible-playbook run: rc, output, the JSON callback's data (if used) and the wall time."""

    proc: subprocess.CompletedProcess
    seconds: float
    data: Dict[str, Any] = field(default_factory=dict)

    @property
    def rc(self) -> int:
        return self.proc.returncode

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    @property
    def stats(self) -> Dict[str, Dict[str, int]]:
        return self.data.get("stats", {})

    @property
    def plays(self) -> List[str]:
        return [p["play"]["name"] for p in self.data.get("plays", [])]

    def failures(self) -> List[str]:
        """Messages of every failed or unreachable task result, in run order."""
        out = []
        for play in self.data.get("plays", []):
            for task in play["tasks"]:
                for host, result in task["hosts"].items():
                    if result.get("failed") or result.get("unreachable"):
                        out.append("%s: %s" % (host, result.get("msg")))
        return out

    def changed(self) -> int:
        return sum(s.get("changed", 0) for s in self.stats.values())

    def unreachable(self) -> List[str]:
        return sorted(h for h, s in self.stats.items() if s.get("unreachable", 0))

    def __repr__(self) -> str:
        return "Run(rc=%s, %.1fs, plays=%s, stats=%s)\nfailures=%s\nstderr=%s" % (
            self.rc, self.seconds, self.plays, self.stats, self.failures(), self.proc.stderr[-2500:])


def ansible_env(extra: Optional[Dict[str, str]] = None, json_callback: bool = True) -> Dict[str, str]:
    env = dict(os.environ)
    for var in ("ARGOCD_AUTH_TOKEN", "ARGOCD_PASSWORD", "ARGOCD_SERVER", "ARGOCD_OLD_PASSWORD"):
        env.pop(var, None)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
        "ANSIBLE_PYTHON_INTERPRETER": PYTHON,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_TIMEOUT": "3",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json" if json_callback else "default",
    })
    env.update(extra or {})
    return env


def command(playbook: str, workdir: Path, inventory: Optional[Path] = None,
            extra_vars: Optional[Dict[str, Any]] = None, args: Optional[List[str]] = None) -> List[str]:
    """The ansible-playbook command line; extra vars go through a 0600 file."""
    cmd = [ANSIBLE_PLAYBOOK, playbook, "-i", str(inventory) if inventory else "localhost,"]
    if extra_vars:
        workdir.mkdir(parents=True, exist_ok=True)
        path = private_file(workdir / "extra-vars.json", json.dumps(extra_vars))
        cmd += ["-e", "@%s" % path]
    return cmd + list(args or [])


def run(playbook: str, workdir: Path, inventory: Optional[Path] = None,
        extra_vars: Optional[Dict[str, Any]] = None, args: Optional[List[str]] = None,
        env: Optional[Dict[str, str]] = None, json_callback: bool = True, timeout: int = 300) -> Run:
    """Run ``playbook`` (a path or an FQCN) from the repo root; parse the JSON callback's output."""
    cmd = command(playbook, workdir, inventory, extra_vars, args)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(env, json_callback), capture_output=True, text=True,
                          timeout=timeout, check=False)
    result = Run(proc, time.monotonic() - started)
    if json_callback:
        try:
            result.data = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            result.data = {}
    return result
