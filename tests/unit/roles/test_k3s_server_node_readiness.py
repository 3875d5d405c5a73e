"""k3s_server's node readiness logic (roles/k3s_server/vars/main.yml), on node lists shaped
like `kubectl get nodes -o json` (k3s_server_kube_client: server) or registered from
kubernetes.core.k8s_info (controller): which expected nodes are not Ready, which are registered.

The expressions are evaluated by ansible-playbook itself (include_vars of the role's vars file)
so that the test sees Ansible's templating (2.19 native types), not a re-implementation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]


def node(name: str, ready: str | None) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": {"name": name}, "status": {"conditions": conditions}}


def evaluate(tmp_path: Path, stdout: str, expected: list[str], client: str = "server") -> dict[str, Any]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: {REPO}/roles/k3s_server/vars/main.yml
    - ansible.builtin.copy:
        content: "{{{{ {{'not_ready': k3s_server__not_ready, 'seen': k3s_server__seen}} | to_json }}}}"
        dest: {tmp_path}/out.json
        mode: "0644"
""", encoding="utf-8")
    extra = tmp_path / "extra.json"
    registered = {"k3s_server__nodes": {"stdout": stdout, "rc": 0}}
    if client == "controller":  # what k8s_info registers; the kubectl task is skipped
        registered = {"k3s_server__nodes": {"skipped": True, "changed": False},
                      "k3s_server__nodes_api": {"changed": False, "api_found": True,
                                                "resources": json.loads(stdout)["items"] if stdout else []}}
    extra.write_text(json.dumps(dict(registered, k3s_server_expected_nodes=expected, k3s_server_kube_client=client,
                                     ansible_python_interpreter=sys.executable)), encoding="utf-8")
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local",
                             str(playbook), "-e", f"@{extra}"], capture_output=True, text=True,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")), timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((tmp_path / "out.json").read_text())


@pytest.mark.parametrize(("nodes", "expected", "not_ready"), [
    ([node("k3s-server-1", "True"), node("k3s-agent-1", "True")], ["k3s-server-1", "k3s-agent-1"], []),
    ([node("k3s-server-1", "True"), node("k3s-agent-1", "Unknown")], ["k3s-server-1", "k3s-agent-1"], ["k3s-agent-1"]),
    ([node("k3s-server-1", "True")], ["k3s-server-1", "k3s-agent-2", "k3s-agent-1"], ["k3s-agent-1", "k3s-agent-2"]),
    ([node("k3s-server-1", None)], ["k3s-server-1"], ["k3s-server-1"]),
    ([node("a", "True")], ["a", "b"], ["b"]),  # one-letter names: no string/char confusion
    ([], ["s"], ["s"]),
])
@pytest.mark.parametrize("client", ["server", "controller"])
def test_not_ready(tmp_path: Path, nodes: list[dict[str, Any]], expected: list[str], not_ready: list[str],
                   client: str) -> None:
    out = evaluate(tmp_path, json.dumps({"kind": "NodeList", "items": nodes}), expected, client)
    assert out["not_ready"] == not_ready
    assert out["seen"] == [n["metadata"]["name"] for n in nodes]


@pytest.mark.parametrize("client", ["server", "controller"])
def test_empty_output_means_nothing_registered(tmp_path: Path, client: str) -> None:
    out = evaluate(tmp_path, "", ["k3s-server-1"], client)
    assert out == {"not_ready": ["k3s-server-1"], "seen": []}
