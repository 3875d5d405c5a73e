"""Secret-leak scan: playbooks that handle secrets, run with -vvv on the controller.

Each scenario gives distinctive secret values (never used anywhere else) and asserts that none of
them, nor their base64 form, appears in: stdout/stderr of ``ansible-playbook -vvv``; any file the
run wrote under its own HOME, TMPDIR and Ansible temp dirs unless that file is 0600; and
``ps -eww -o args``, sampled every 50 ms by a background thread while the playbook runs. The
session tokens the Argo CD stand-in issued during the run are scanned for too.

Positive controls: each scenario checks that the secret really was used (the stand-in stored the
repository password, the login with the password succeeded, the token check ran), so a scan
that finds nothing is not a scan of a run that never saw the secret.
The node-side checks (unit files, ps and token file modes on real VMs) run in molecule default
(molecule/default/tests/test_cluster.py).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest

from tests.reliability import runner
from tests.standins.argocd_api import ArgoCDStandIn

APP = {"metadata": {"name": "leakcheck"}, "spec": {"project": "default", "source": {
    "repoURL": "https://github.com/controle-digital/dictamesh.git", "path": "apps", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"}}}


class PsSampler(threading.Thread):
    """Collects the distinct command lines of every process, every ``interval`` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True, name="ps-sampler")
        self.interval = interval
        self.stopped = threading.Event()
        self.samples = 0
        self.lines: Set[str] = set()

    def run(self) -> None:
        while not self.stopped.is_set():
            out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=False).stdout
            self.lines.update(out.splitlines()[1:])
            self.samples += 1
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def forms(secret: str) -> List[str]:
    """The secret and its base64 encodings (slurp, Kubernetes Secrets)."""
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")]


def found(text: str, secrets: List[str]) -> List[str]:
    return sorted({s for s in secrets for f in forms(s) if f in text})


def snapshot(root: Path) -> Dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


class Scan:
    """Run one playbook under the scan and return the figures."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.dirs = {name: tmp_path / name for name in ("home", "tmp", "ansible-local", "ansible-remote")}
        for path in self.dirs.values():
            path.mkdir(parents=True, exist_ok=True)

    def env(self, extra: Optional[Dict[str, str]]) -> Dict[str, str]:
        env = {"HOME": str(self.dirs["home"]), "TMPDIR": str(self.dirs["tmp"]),
               "ANSIBLE_LOCAL_TEMP": str(self.dirs["ansible-local"]),
               "ANSIBLE_REMOTE_TEMP": str(self.dirs["ansible-remote"])}
        env.update(extra or {})
        return env

    def run(self, playbook: str, secrets: List[str], inventory: Optional[Path] = None,
            extra_vars: Optional[Dict[str, Any]] = None, env: Optional[Dict[str, str]] = None,
            args: Optional[List[str]] = None, more_secrets: Any = None) -> Dict[str, Any]:
        before = snapshot(self.root)
        sampler = PsSampler()
        sampler.start()
        try:
            result = runner.run(playbook, self.root / "run", inventory, extra_vars, ["-vvv"] + list(args or []),
                                self.env(env), json_callback=False)
        finally:
            sampler.stop()
        all_secrets = list(secrets) + list(more_secrets() if more_secrets else [])
        files = self.scan_files(before, all_secrets)
        ps_text = "\n".join(sampler.lines)
        return {"result": result, "rc": result.rc, "secrets": len(all_secrets),
                "output_bytes": len(result.output.encode()), "output_lines": result.output.count("\n"),
                "in_output": found(result.output, all_secrets),
                "files_scanned": files["scanned"], "file_bytes": files["bytes"],
                "leaky_files": files["leaky"], "private_files_with_secret": files["private"],
                "ps_samples": sampler.samples, "ps_lines": len(sampler.lines), "in_ps": found(ps_text, all_secrets),
                "seconds": round(result.seconds, 1)}

    def scan_files(self, before: Dict[str, float], secrets: List[str]) -> Dict[str, Any]:
        scanned, size, leaky, private = 0, 0, [], []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.is_symlink() or before.get(str(path)) == path.stat().st_mtime:
                continue
            data = path.read_bytes().decode("utf-8", "replace")
            scanned += 1
            size += len(data)
            hits = found(data, secrets)
            mode = stat.S_IMODE(path.stat().st_mode)
            if hits and mode & 0o077:
                leaky.append("%s (%o): %s" % (path.relative_to(self.root), mode, hits))
            elif hits:
                private.append(str(path.relative_to(self.root)))
        return {"scanned": scanned, "bytes": size, "leaky": leaky, "private": private}


def assert_clean(scan: Dict[str, Any]) -> None:
    assert scan["in_output"] == [], "secret in -vvv output: %s" % scan["in_output"]
    assert scan["leaky_files"] == [], scan["leaky_files"]
    assert scan["in_ps"] == [], "secret on a command line: %s" % scan["in_ps"]
    assert scan["ps_samples"] >= 5, "the ps sampler barely ran"


def tokens_of(standin: ArgoCDStandIn) -> Any:
    def read() -> List[str]:
        with standin.store.cond:
            return list(standin.store.tokens)
    return read


def keep(record: Any, scenario: str, scan: Dict[str, Any]) -> None:
    record("leak", scenario=scenario, **{k: v for k, v in scan.items() if k != "result"})


@pytest.fixture
def seeded(standin: ArgoCDStandIn) -> Iterator[ArgoCDStandIn]:
    with standin.store.cond:
        standin.api.create_app(json.loads(json.dumps(APP)), {})
    yield standin


def test_sync_with_password_from_environment(tmp_path: Path, seeded: ArgoCDStandIn, record) -> None:
    password = "LeakCheck-Sync-Pw-7f3a91c2"
    with seeded.store.cond:
        seeded.store.users["admin"] = password
    scan = Scan(tmp_path).run("dictamesh.k3s_gitops.sync", [password], None,
                              {"gitops_server_url": seeded.url, "sync_apps": "leakcheck"},
                              env={"ARGOCD_PASSWORD": password}, more_secrets=tokens_of(seeded))
    keep(record, "sync.yml, ARGOCD_PASSWORD in the environment, login + sync", scan)
    assert scan["rc"] == 0, scan["result"]
    assert scan["secrets"] >= 2, "no session token was issued: the login did not happen"
    assert_clean(scan)


def test_gitops_bootstrap_with_repository_credentials(tmp_path: Path, standin: ArgoCDStandIn, record) -> None:
    admin, repo_password = "LeakCheck-Admin-Pw-51b0e2d4", "LeakCheck-Repo-Token-c81d77aa"
    with standin.store.cond:
        standin.store.users["admin"] = admin
    inventory = runner.write_inventory(tmp_path / "inventory", "local", group_vars={
        "gitops_server_url": standin.url, "gitops_validate_certs": False, "gitops_sync": False,
        "vault_argocd_admin_password": admin, "vault_gitops_repo_username": "git",
        "vault_gitops_repo_password": repo_password})
    scan = Scan(tmp_path).run(str(runner.REPO / "playbooks/gitops_bootstrap.yml"), [admin, repo_password],
                              inventory, more_secrets=tokens_of(standin))
    keep(record, "gitops_bootstrap.yml: admin login, repository with a password, AppProject, Application", scan)
    assert scan["rc"] == 0, scan["result"]
    with standin.store.cond:
        stored = [r.get("password") for r in standin.store.repos.values()]
    assert stored == [repo_password], "the repository password never reached Argo CD"
    assert_clean(scan)


def test_rotate_argocd_admin_refusal(tmp_path: Path, record) -> None:
    short = "LkRot-9x"
    inventory = runner.write_inventory(tmp_path / "inventory", "unreachable",
                                       group_vars={"vault_argocd_admin_password": short})
    scan = Scan(tmp_path).run(str(runner.REPO / "playbooks/rotate_argocd_admin.yml"), [short], inventory,
                              env={"ARGOCD_OLD_PASSWORD": "LeakCheck-Old-Pw-0aa3f1"})
    keep(record, "rotate_argocd_admin.yml: a too-short new password refused", scan)
    assert scan["rc"] != 0
    assert "shorter than 12 characters" in scan["result"].output
    assert_clean(scan)


def test_k3s_cluster_validation_with_token(tmp_path: Path, record) -> None:
    sys.path.insert(0, str(runner.REPO / "tests" / "standins" / "k3s"))
    import build_mirror  # pylint: disable=import-outside-toplevel
    token = "LeakCheck-Cluster-Token-93e1f0b7d2c4"
    version = str(runner.staging_vars()["cluster_k3s_version"])
    bundle = build_mirror.build(tmp_path / "bundle", [version])[0]
    inventory = runner.write_inventory(tmp_path / "inventory", "local_validate", servers=3, agents=2, group_vars={
        "vault_cluster_token": token, "cluster_k3s_airgap_dir": str(bundle)})
    scan = Scan(tmp_path).run(str(runner.REPO / "playbooks/k3s_cluster.yml"), [token], inventory,
                              args=["--tags", "k3s_validate"])
    keep(record, "k3s_cluster.yml validation play (--tags k3s_validate), 5 hosts, cluster_token", scan)
    assert scan["rc"] == 0, scan["result"]
    assert "Require k3s_install_token" in scan["result"].output
    assert_clean(scan)


def test_scanner_finds_a_planted_leak(tmp_path: Path) -> None:
    """Control: the same scan reports a secret that a playbook does print, writes 0644 and puts in ps."""
    secret = "LeakCheck-Planted-5e5e5e5e"
    playbook = tmp_path / "leaky.yml"
    playbook.write_text("""---
- name: Leak on purpose
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Print it
      ansible.builtin.debug:
        msg: "{{ planted }}"
    - name: Write it world-readable
      ansible.builtin.copy:
        content: "{{ planted }}"
        dest: "{{ lookup('ansible.builtin.env', 'TMPDIR') }}/planted.txt"
        mode: "0644"
    - name: Put it on a command line
      ansible.builtin.command:
        argv: [sh, -c, sleep 0.6, sh, "{{ planted }}"]
      changed_when: false
      failed_when: false
""", encoding="utf-8")
    scan = Scan(tmp_path).run(str(playbook), [secret], None, {"planted": secret})
    assert scan["in_output"] == [secret]
    assert any("planted.txt" in f for f in scan["leaky_files"]), scan
    assert scan["in_ps"] == [secret]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_runner_inputs_are_private(tmp_path: Path) -> None:
    """The harness's own secret-bearing inputs (inventory, extra vars) are 0600."""
    inventory = runner.write_inventory(tmp_path / "inventory", "unreachable")
    extra = runner.command("x.yml", tmp_path / "run", None, {"k": "v"})[-1].lstrip("@")
    assert _mode(inventory / "group_vars" / "all" / "main.yml") == 0o600
    assert _mode(Path(extra)) == 0o600
