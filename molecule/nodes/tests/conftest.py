"""Shared reads for the node-change checks: the kept ansible-playbook outputs and the cluster."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import testinfra.host

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
K3S = "/usr/local/bin/k3s"


def run_output(name: str) -> dict[str, Any]:
    """The JSON (ansible.posix.json callback) of one run kept by run_playbook.yml."""
    return json.loads((EPHEMERAL / f"{name}.json").read_text(encoding="utf-8"))


def changed(name: str) -> dict[str, int]:
    return {host: stats["changed"] for host, stats in run_output(name)["stats"].items()}


def ready_nodes(server: testinfra.host.Host) -> dict[str, bool]:
    items = json.loads(server.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    return {i["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in i["status"]["conditions"]) for i in items}


def k3s_gone(host: testinfra.host.Host) -> None:
    assert not host.file(K3S).exists
    for unit in ("k3s", "k3s-agent"):
        assert not host.file(f"/etc/systemd/system/{unit}.service").exists, unit
        assert not host.service(unit).is_running, unit
    for path in ("/etc/rancher/k3s", "/var/lib/rancher/k3s", "/etc/rancher/node"):
        assert not host.file(path).exists, path
    assert "/var/lib/rancher/k3s/data/" not in host.check_output("ps -eww -o args")
