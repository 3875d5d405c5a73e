"""roles/etcd_snapshot against a running K3S stand-in server on 127.0.0.1 (connection local).

The stand-in's `etcd-snapshot` behaves as K3S v1.34's (tests/standins/FIDELITY.md): it asks the
running local server, and the name of the new snapshot is only in its stderr (`Snapshot <name>
saved.` logged through logrus). The role must record that name (etcd_snapshot_result), apply the
retention, copy the file to the controller (0600), and explain a failure (no server running).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))

import build_mirror  # noqa: E402

STANDIN = Path(tempfile.mkdtemp(prefix="k3s-standin-snaprole-")) / "k3s"
STANDIN.write_bytes(build_mirror.standin_for("v1.34.1+k3s1"))
STANDIN.chmod(0o755)
TOKEN = "snapshot-role-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A stand-in K3S server (embedded etcd) under its own root."""

    def __init__(self, root: Path, cluster_init: bool = True) -> None:
        self.root, self.port = root, free_port()
        etc = root / "etc/rancher/k3s"
        etc.mkdir(parents=True)
        (etc / "token").write_text(TOKEN + "\n", encoding="utf-8")
        (etc / "config.yaml").write_text("node-name: snap-1\nnode-ip: 127.0.0.1\ntoken-file: /etc/rancher/k3s/token\n"
                                         + ("cluster-init: true\n" if cluster_init else ""), encoding="utf-8")
        self.env = dict(os.environ, K3S_STANDIN_ROOT=str(root), K3S_STANDIN_PORT=str(self.port))
        self.env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen([sys.executable, str(STANDIN), "server"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/ping", context=context, timeout=2):
                    return
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "stand-in server did not start"
                time.sleep(0.1)

    @property
    def snapshots(self) -> Path:
        return self.root / "var/lib/rancher/k3s/server/db/snapshots"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "root")
    yield srv
    srv.stop()


def snapshot(playbook, server: Server, tmp_path: Path, **role_vars: Any):
    play = tmp_path / "snapshot.yml"
    play.write_text("""---
- name: Snapshot with the role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run etcd_snapshot
      ansible.builtin.include_role:
        name: dictamesh.k3s_gitops.etcd_snapshot
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ etcd_snapshot_result | to_json }}"
        dest: "%s"
        mode: "0600"
""" % (tmp_path / "result.json"), encoding="utf-8")
    variables: Dict[str, Any] = {"etcd_snapshot_k3s_binary": str(STANDIN), "etcd_snapshot_dir": str(server.snapshots)}
    variables.update(role_vars)
    return playbook(play, variables, connection="local",
                    env={"K3S_STANDIN_ROOT": str(server.root), "K3S_STANDIN_PORT": str(server.port)})


def test_records_the_name_logged_on_stderr_and_fetches_the_file(playbook, server: Server, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    run = snapshot(playbook, server, tmp_path, etcd_snapshot_name="nightly", etcd_snapshot_fetch=True,
                   etcd_snapshot_fetch_dir=str(backups))
    assert run.rc == 0, run
    result = json.loads((tmp_path / "result.json").read_text())
    assert re.fullmatch(r"nightly-snap-1-\d{10}", result["name"]), result
    assert [p.name for p in server.snapshots.iterdir()] == [result["name"]]
    assert result["path"] == str(server.snapshots / result["name"])
    copy = backups / "localhost" / result["name"]
    assert result["fetched_to"] == str(copy)
    assert copy.read_bytes() == (server.snapshots / result["name"]).read_bytes()
    assert oct(copy.stat().st_mode & 0o777) == "0o600"


def test_retention_deletes_the_oldest_of_that_name(playbook, server: Server, tmp_path: Path) -> None:
    names = []
    for _attempt in range(3):
        run = snapshot(playbook, server, tmp_path, etcd_snapshot_name="keep", etcd_snapshot_retention=2)
        assert run.rc == 0, run
        names.append(json.loads((tmp_path / "result.json").read_text())["name"])
        time.sleep(1.05)  # K3S names carry the second
    assert len(set(names)) == 3
    assert sorted(p.name for p in server.snapshots.iterdir()) == sorted(names[1:])
    assert json.loads((tmp_path / "result.json").read_text())["deleted"] == [names[0]]


def test_no_running_server_is_explained(playbook, server: Server, tmp_path: Path) -> None:
    server.stop()
    run = snapshot(playbook, server, tmp_path)
    assert run.rc != 0
    message = " ".join(run.failure_messages())
    assert "k3s etcd-snapshot save failed on localhost" in message
    assert "connection refused" in message and "K3S must be running on this server" in message, message
