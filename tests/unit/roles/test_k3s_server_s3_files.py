"""k3s_server's S3 files (roles/k3s_server/tasks/etcd_s3.yml) written and removed on this machine by
ansible-playbook, with the files' paths in a temporary directory: one read decides which of them the
tasks write, so a re-run runs none of them, a file changed by hand is written again, and S3 turned off
removes them; the S3 keys never show in the output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
SECRET = "s3-secret-key-not-shown-0123456789"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="etcd_s3.yml writes its files as root:root")


def play(tmp_path: Path, s3: bool, **facts: Any) -> tuple[subprocess.CompletedProcess[str], list[str], bool]:
    """Runs etcd_s3.yml: the recap, the S3 files that differed, k3s_server__untouched afterwards."""
    out = tmp_path / "drift.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: dictamesh.k3s_gitops.k3s_server
        tasks_from: etcd_s3.yml
        public: true  # the role's vars (k3s_server__untouched) for the task below
    - ansible.builtin.copy:
        content: "{{{{ {{'drift': k3s_server__s3_drift, 'untouched': k3s_server__untouched}} | to_json }}}}"
        dest: {out}
        mode: "0644"
      changed_when: false
""", encoding="utf-8")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\n", encoding="utf-8")
    extra: dict[str, Any] = {
        "ansible_python_interpreter": sys.executable,
        "k3s_server__s3_credentials_file": str(tmp_path / "etc/etcd-s3-credentials"),
        "k3s_server__s3_ca_file": str(tmp_path / "etc/etcd-s3-ca.crt"),
        "k3s_server__s3_dropin": str(tmp_path / "k3s.service.d/etcd-s3.conf"),
        "k3s_server_etcd_s3": s3, "k3s_server_etcd_s3_endpoint": "s3.example.test:9000" if s3 else "",
        "k3s_server_etcd_s3_bucket": "snapshots" if s3 else "",
        "k3s_server_etcd_s3_access_key": "AKIATEST" if s3 else "", "k3s_server_etcd_s3_secret_key": SECRET if s3 else "",
        "k3s_server_etcd_s3_endpoint_ca": str(ca) if s3 else "", **facts}
    (tmp_path / "extra.json").write_text(json.dumps(extra), encoding="utf-8")
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
                             "-e", f"@{tmp_path / 'extra.json'}"], capture_output=True, text=True, check=False,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")), timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert SECRET not in result.stdout + result.stderr
    seen = json.loads(out.read_text(encoding="utf-8"))
    return result, seen["drift"], seen["untouched"]


def changed(result: subprocess.CompletedProcess[str]) -> int:
    return int(result.stdout.rsplit("changed=", 1)[1].split()[0])


def test_s3_files_written_once_then_left_alone_then_removed(tmp_path: Path) -> None:
    etc, dropin = tmp_path / "etc", tmp_path / "k3s.service.d"
    first, drift = play(tmp_path, s3=True)[:2]
    assert drift == sorted([str(etc), str(etc / "etcd-s3-credentials"), str(etc / "etcd-s3-ca.crt"),
                            str(dropin), str(dropin / "etcd-s3.conf")])
    assert changed(first) == 5
    assert oct((etc / "etcd-s3-credentials").stat().st_mode & 0o777) == "0o600"
    assert (etc / "etcd-s3-ca.crt").read_text(encoding="utf-8").endswith("-----\n\n")  # copied as is

    second, drift = play(tmp_path, s3=True)[:2]
    assert (drift, changed(second)) == ([], 0)

    (etc / "etcd-s3-credentials").write_text("[default]\n", encoding="utf-8")
    third, drift = play(tmp_path, s3=True)[:2]
    assert (drift, changed(third)) == ([str(etc / "etcd-s3-credentials")], 1)
    assert SECRET in (etc / "etcd-s3-credentials").read_text(encoding="utf-8")

    off, drift = play(tmp_path, s3=False)[:2]
    assert drift == sorted([str(etc / "etcd-s3-credentials"), str(etc / "etcd-s3-ca.crt"), str(dropin / "etcd-s3.conf")])
    assert changed(off) == 3
    assert not (etc / "etcd-s3-credentials").exists() and not (dropin / "etcd-s3.conf").exists()
    again, drift = play(tmp_path, s3=False)[:2]
    assert (drift, changed(again)) == ([], 0)


def test_the_readiness_waits_are_skipped_only_when_nothing_was_started_or_restarted(tmp_path: Path) -> None:
    """k3s_server__untouched (main.yml skips /readyz and the node wait): k3s_install found everything as
    wanted and no S3 file changed."""
    assert play(tmp_path, s3=True, k3s_install__untouched=True)[2] is False  # the S3 files were just written
    assert play(tmp_path, s3=True, k3s_install__untouched=True)[2] is True
    assert play(tmp_path, s3=True, k3s_install__untouched=False)[2] is False
    assert play(tmp_path, s3=True)[2] is False  # k3s_install did not say
