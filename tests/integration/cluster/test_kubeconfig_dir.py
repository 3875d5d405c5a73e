"""k3s_server's kubeconfig entry point never re-modes the directory it writes into.

Issue 17: it ran `file: state=directory mode=0700` on the dirname of k3s_server_kubeconfig_path,
so a kubeconfig path of ~/x.yaml or /tmp/x.yaml re-moded $HOME or /tmp. The entry point runs on the
controller (connection local) against a sample k3s.yaml; the directory's mode is checked before and
after, in check mode and for real, twice (the second run changes nothing).
"""
from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, Dict

import yaml

PLAYBOOK = Path(__file__).resolve().parent / "kubeconfig.yml"
SAMPLE = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "default", "cluster": {"certificate-authority-data": "Q0EtREFUQQ==",
                                                 "server": "https://127.0.0.1:6443"}}],
    "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
    "current-context": "default",
    "users": [{"name": "default", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}}],
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def extra(tmp_path: Path, dest: Path) -> Dict[str, Any]:
    source = tmp_path / "k3s.yaml"
    source.write_text(yaml.safe_dump(SAMPLE), encoding="utf-8")
    source.chmod(0o600)
    return {"k3s_server__kubeconfig_source": str(source), "k3s_server_kubeconfig_path": str(dest),
            "k3s_server_kubeconfig_name": "lab", "k3s_server_api_endpoint": "192.0.2.10",
            "k3s_server_api_port": 6443}


def test_existing_directory_keeps_its_mode(tmp_path: Path, playbook) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    dest = shared / "lab.yaml"
    variables = extra(tmp_path, dest)

    dry = playbook(PLAYBOOK, variables, check=True, diff=True)
    assert dry.rc == 0, dry
    assert mode(shared) == 0o1777 and not dest.exists()

    first = playbook(PLAYBOOK, variables)
    assert first.rc == 0, first
    assert mode(shared) == 0o1777, "the existing directory was re-moded"
    assert mode(dest) == 0o600
    written = yaml.safe_load(dest.read_text(encoding="utf-8"))
    assert written["clusters"][0]["cluster"]["server"] == "https://192.0.2.10:6443"
    assert written["current-context"] == "lab"

    second = playbook(PLAYBOOK, variables)
    assert second.rc == 0 and second.changed == 0, second
    assert mode(shared) == 0o1777


def test_missing_directory_is_created_private(tmp_path: Path, playbook) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    dest = home / ".kube" / "clusters" / "lab.yaml"
    result = playbook(PLAYBOOK, extra(tmp_path, dest))
    assert result.rc == 0, result
    assert mode(home) == 0o755, "a parent that existed was re-moded"
    assert mode(dest.parent) == 0o700 and mode(dest) == 0o600
