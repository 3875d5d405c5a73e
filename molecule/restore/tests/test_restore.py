"""etcd restore on one server (molecule restore), locally and from S3 (moto on the controller), from the
K3S stand-in's records and the bucket's objects."""
from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path

import testinfra.host

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "standins"))
import s3server  # noqa: E402 (tests/standins: moto and boto3 run in .venv-s3)

K3S = "/usr/local/bin/k3s"
DB = "/var/lib/rancher/k3s/server/db"
FOLDER = "molecule-restore"


def s3_state() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "s3"


def bucket() -> dict[str, dict]:
    """key -> {body, metadata} of every object under the scenario's folder, as boto3 reads them (in
    .venv-s3, through s3server.objects: boto3's botocore cannot share the test venv)."""
    keys = dict(line.split(" = ", 1) for line in (s3_state() / "credentials").read_text().splitlines()[1:])
    port = (s3_state() / "port").read_text().strip()
    info = {"url": f"http://127.0.0.1:{port}", "access_key": keys["aws_access_key_id"],
            "secret_key": keys["aws_secret_access_key"]}
    return s3server.objects(info, "k3s-snapshots", FOLDER + "/")


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
    assert len(olds) == 2  # the local restore, then the one from S3


def test_server_ready_again(host: testinfra.host.Host) -> None:
    assert host.service("k3s").is_running
    items = json.loads(host.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    assert [i["metadata"]["name"] for i in items] == [host.ansible.get_variables()["inventory_hostname"]]
    ready = [c["status"] for c in items[0]["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]
    starts = host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.splitlines()
    assert len(starts) == 3  # installed, then started again after each reset


def test_offsite_snapshot_downloaded_from_s3_and_restored(host: testinfra.host.Host) -> None:
    objects = bucket()
    offsite = [k for k in objects if k.startswith(f"{FOLDER}/offsite-")]
    assert len(offsite) == 1, sorted(objects)
    name = offsite[0].rsplit("/", 1)[1]
    local = host.file(f"{DB}/snapshots/{name}")  # converge deleted it before the restore: K3S downloaded it
    assert local.exists and local.mode == 0o600
    assert host.check_output(f"base64 -w0 {DB}/snapshots/{name}") == base64.b64encode(objects[offsite[0]]["body"]).decode()
    state = json.loads(host.file(f"{DB}/state.json").content_string)
    snapshot = json.loads(objects[offsite[0]]["body"])
    assert state["cluster_id"] == snapshot["datastore"]["cluster_id"] and "reset_at" in state


def test_uploads_carry_k3s_metadata(host: testinfra.host.Host) -> None:
    objects = bucket()
    before = [k for k in objects if k.startswith(f"{FOLDER}/before-restore-")]
    assert [k.rsplit("/", 1)[1] for k in before] == [fetched().name]  # the first backup went to S3 too
    node = host.ansible.get_variables()["inventory_hostname"]
    for key, obj in objects.items():
        assert obj["metadata"]["k3s-node-name"] == node, key
        assert set(obj["metadata"]) == {"k3s-cluster-id", "k3s-node-name", "k3s-token-hash"}


def scheduled_ticks(host: testinfra.host.Host) -> int:
    return int(host.check_output("journalctl -u k3s --no-pager | grep -c 'Scheduled snapshot saved' || true"))


def test_scheduled_snapshots_kept_to_retention(host: testinfra.host.Host) -> None:
    # the schedule ticks once a minute: a quick run may reach verify after two ticks; wait for a third
    # (retention 2), so that retention has had something to prune
    deadline = time.monotonic() + 240
    while scheduled_ticks(host) <= 2 and time.monotonic() < deadline:
        time.sleep(10)
    assert scheduled_ticks(host) > 2
    scheduled = [k for k in bucket() if k.startswith(f"{FOLDER}/etcd-snapshot-")]
    local = host.check_output(f"ls {DB}/snapshots").split()
    local_scheduled = [n for n in local if n.startswith("etcd-snapshot-")]
    assert 1 <= len(scheduled) <= 2 and 1 <= len(local_scheduled) <= 2, (scheduled, local_scheduled)


def test_s3_keys_only_in_the_private_file(host: testinfra.host.Host) -> None:
    secret = dict(line.split(" = ", 1) for line in
                  (s3_state() / "credentials").read_text().splitlines()[1:])["aws_secret_access_key"]
    creds = host.file("/etc/rancher/k3s/etcd-s3-credentials")
    assert creds.mode == 0o600 and creds.user == "root"
    assert secret in creds.content_string
    config = host.file("/etc/rancher/k3s/config.yaml").content_string
    assert "etcd-s3: true" in config and secret not in config
    dropin = host.file("/etc/systemd/system/k3s.service.d/etcd-s3.conf").content_string
    assert "AWS_SHARED_CREDENTIALS_FILE=/etc/rancher/k3s/etcd-s3-credentials" in dropin and secret not in dropin
    assert secret not in host.file("/etc/systemd/system/k3s.service").content_string
