"""roles/etcd_snapshot with S3 on, against a K3S stand-in server on 127.0.0.1 and a real S3 server
(moto, tests/standins/s3server.py). K3S's CLI reports a snapshot saved even when the server failed to
upload it (the error is only in the server log): the role must check the bucket and say so."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests/standins"))
sys.path.insert(0, str(HERE))

import s3server  # noqa: E402
from test_etcd_snapshot_role import STANDIN, Server, snapshot  # noqa: E402


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state = tmp_path_factory.mktemp("moto")
    info = s3server.start(state, 0, "k3s-snapshots")
    info["credentials"] = str(state / "credentials")
    yield info
    s3server.stop(state)


def with_s3(srv: Server, moto: dict, credentials: str) -> Server:
    """Restart the stand-in server with the etcd-s3 options in config.yaml and the credentials file
    in its environment (what k3s_server's config and systemd drop-in give K3S)."""
    srv.stop()
    with open(srv.root / "etc/rancher/k3s/config.yaml", "a", encoding="utf-8") as handle:
        handle.write(f"etcd-s3: true\netcd-s3-endpoint: 127.0.0.1:{moto['port']}\netcd-s3-insecure: true\n"
                     "etcd-s3-bucket: k3s-snapshots\netcd-s3-folder: role\n")
    srv.env["AWS_SHARED_CREDENTIALS_FILE"] = credentials
    srv.proc = subprocess.Popen([sys.executable, str(STANDIN), "server"], env=srv.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{srv.port}/ping", context=context, timeout=2):
                return srv
        except OSError:
            assert time.monotonic() < deadline and srv.proc.poll() is None, "stand-in server did not restart"
            time.sleep(0.1)


def test_snapshot_checked_in_the_bucket(playbook, moto: dict, tmp_path: Path) -> None:
    srv = with_s3(Server(tmp_path / "root"), moto, moto["credentials"])
    try:
        run = snapshot(playbook, srv, tmp_path, etcd_snapshot_name="offsite", etcd_snapshot_s3=True)
    finally:
        srv.stop()
    assert run.rc == 0, run
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["s3_location"] == f"s3://k3s-snapshots/role/{result['name']}"
    body = s3server.objects(moto, "k3s-snapshots", f"role/{result['name']}")[f"role/{result['name']}"]["body"]
    assert body == (srv.snapshots / result["name"]).read_bytes()


def test_failed_upload_is_reported(playbook, moto: dict, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-credentials"
    wrong.write_text("[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n", encoding="utf-8")
    os.chmod(wrong, 0o600)
    srv = with_s3(Server(tmp_path / "root"), moto, str(wrong))
    try:
        run = snapshot(playbook, srv, tmp_path, etcd_snapshot_name="offsite", etcd_snapshot_s3=True)
    finally:
        srv.stop()
    assert run.rc != 0
    message = " ".join(run.failure_messages())
    assert "k3s etcd-snapshot ls failed" in message or "is not in the S3 bucket" in message, message
    assert [p.name for p in srv.snapshots.iterdir()]  # the local copy is kept
