"""argocd_cli installing the CLI from the controller (argocd_cli_local_dir): the copy is checked
against its line in cli_checksums.txt (sha256, the format of argoproj/argo-cd's release asset) with
ansible.builtin.stat on the controller, before anything is written on the host. Runs the real role on
localhost into a temporary directory."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

REPO = Path(__file__).resolve().parents[3]
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine())
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  roles:
    - dictamesh.k3s_gitops.argocd_cli
"""

pytestmark = pytest.mark.skipif(ARCH is None, reason="the role supports amd64 and arm64 hosts only")


def run(tmp_path: Path, check: bool = False) -> Dict[str, Any]:
    (tmp_path / "play.yml").write_text(PLAY, encoding="utf-8")
    extra = {"argocd_cli_local_dir": str(tmp_path / "dl"), "argocd_cli_install_dir": str(tmp_path / "bin"),
             "argocd_cli_owner": pwd.getpwuid(os.getuid()).pw_name, "ansible_python_interpreter": sys.executable}
    link = REPO / ".collections" / "ansible_collections" / "dictamesh" / "k3s_gitops"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("../../..")
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
           "-e", json.dumps(extra)] + (["--check", "--diff"] if check else [])
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="false")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    results = [dict(t["hosts"]["localhost"], _task=t["task"]["name"]) for p in data["plays"] for t in p["tasks"]
               if "localhost" in t["hosts"]]
    return {"rc": proc.returncode, "stats": data["stats"]["localhost"], "results": results}


def release(tmp_path: Path, listed: bytes) -> bytes:
    """A CLI asset and a cli_checksums.txt whose line for it is the sha256 of ``listed``."""
    cli = b"#!/bin/sh\necho argocd\n"
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / f"argocd-linux-{ARCH}").write_bytes(cli)
    (dl / "cli_checksums.txt").write_text(
        f"{hashlib.sha256(b'other').hexdigest()}  argocd-darwin-amd64\n"
        f"{hashlib.sha256(listed).hexdigest()}  argocd-linux-{ARCH}\n", encoding="utf-8")
    return cli


def test_verified_copy_is_installed_once(tmp_path: Path) -> None:
    cli = release(tmp_path, b"#!/bin/sh\necho argocd\n")
    check = run(tmp_path, check=True)
    assert check["rc"] == 0, check
    assert not (tmp_path / "bin" / "argocd").exists()
    first = run(tmp_path)
    assert first["rc"] == 0, first
    assert (tmp_path / "bin" / "argocd").read_bytes() == cli
    assert (tmp_path / "bin" / "argocd").stat().st_mode & 0o777 == 0o755
    second = run(tmp_path)
    assert second["rc"] == 0 and second["stats"]["changed"] == 0, second


def test_copy_that_differs_from_its_checksum_line_is_refused(tmp_path: Path) -> None:
    release(tmp_path, b"the genuine CLI")
    result = run(tmp_path)
    assert result["rc"] != 0
    failed = [r for r in result["results"] if r.get("failed")]
    assert [r["_task"].split(" : ")[-1] for r in failed] == [
        "Check the controller's copy of the CLI against cli_checksums.txt"]
    assert "does not match its line in cli_checksums.txt" in failed[0]["msg"]
    assert not (tmp_path / "bin" / "argocd").exists()
