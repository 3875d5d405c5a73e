"""etcd restore on one server (molecule restore), from the K3S stand-in's records."""
from __future__ import annotations

import json
import os
from pathlib import Path

import testinfra.host

K3S = "/usr/local/bin/k3s"
DB = "/var/lib/rancher/k3s/server/db"


def fetched() -> Path:
    copies = sorted((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "backups").glob("*/before-restore-*"))
    assert len(copies) == 1, copies
    return copies[0]


def test_backup_copy_on_the_controller_is_private() -> None:
    assert fetched().stat().st_mode & 0o777 == 0o600


def test_datastore_reset_from_that_snapshot(host: testinfra.host.Host) -> None:
    state = json.loads(host.file(f"{DB}/state.json").content_string)
    assert "reset_at" in state  # written by `k3s server --cluster-reset`
    snapshot = json.loads(host.file(f"{DB}/snapshots/{fetched().name}").content_string)
    assert state["cluster_id"] == snapshot["datastore"]["cluster_id"]
    assert host.file(f"{DB}/snapshots/{fetched().name}").mode == 0o600
    olds = host.check_output("ls -d /var/lib/rancher/k3s/server/db-old-*").split()
    assert len(olds) == 1


def test_server_ready_again(host: testinfra.host.Host) -> None:
    assert host.service("k3s").is_running
    items = json.loads(host.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    assert [i["metadata"]["name"] for i in items] == [host.ansible.get_variables()["inventory_hostname"]]
    ready = [c["status"] for c in items[0]["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]
    starts = host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.splitlines()
    assert len(starts) == 2  # installed, then started again after the reset
