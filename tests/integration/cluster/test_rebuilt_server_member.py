"""k3s_server's old-member step (roles/k3s_server/tasks/old_member.yml) against K3S stand-in servers.

Two stand-in servers run on 127.0.0.1 (s1 founded the cluster, s2 joined). A server rebuilt with an
empty data dir under its old node name is refused by K3S while its old etcd member exists
("duplicate node name found", k3s-io/k3s pkg/etcd/etcd.go). The role's step, run with kubectl on a
live server, must delete that Node (K3S then removes the member) so that the rebuilt server joins,
and must never delete the Node of a server that is still Ready, nor anything for a new name.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))
sys.path.insert(0, str(REPO))

import build_mirror  # noqa: E402
from tests.integration.playbook_runner import run_playbook  # noqa: E402

STANDIN = Path(tempfile.mkdtemp(prefix="k3s-standin-rebuild-")) / "k3s"
STANDIN.write_bytes(build_mirror.standin_for("v1.34.1+k3s1"))
STANDIN.chmod(0o755)
TOKEN = "rebuild-test-token"
GRACE = 3  # seconds a stopped server's Node stays Ready (the stand-in's node monitor grace)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, base: Path, name: str, join: str = "") -> None:
        self.name, self.root, self.port = name, base / name, free_port()
        self.join = join
        self.proc: subprocess.Popen[str] | None = None
        self.env = dict(os.environ, K3S_STANDIN_ROOT=str(self.root), K3S_STANDIN_PORT=str(self.port),
                        K3S_STANDIN_HEARTBEAT="0.5", K3S_STANDIN_NODE_GRACE=str(GRACE), K3S_STANDIN_JOIN_TIMEOUT="5")
        self.env.pop("NOTIFY_SOCKET", None)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        etc = self.root / "etc/rancher/k3s"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "token").write_text(TOKEN + "\n", encoding="utf-8")
        config = [f"node-name: {self.name}", "node-ip: 127.0.0.1", "token-file: /etc/rancher/k3s/token"]
        config.append(f"server: {self.join}" if self.join else "cluster-init: true")
        (etc / "config.yaml").write_text("\n".join(config) + "\n", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, str(STANDIN), "server"], env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 30
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                with urllib.request.urlopen(self.url + "/ping", context=context, timeout=2):
                    return
            except OSError:
                assert time.monotonic() < deadline, f"{self.name} not ready"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def nodes(self) -> Dict[str, Any]:
        out = subprocess.run([sys.executable, str(STANDIN), "kubectl", "get", "nodes", "-o", "json"], env=self.env,
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return {i["metadata"]["name"]: i for i in json.loads(out)["items"]}

    def ready(self, name: str) -> bool:
        node = self.nodes().get(name)
        return bool(node) and any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[List[Server]]:
    s1 = Server(tmp_path, "s1")
    s1.start()
    s1.wait_ready()
    s2 = Server(tmp_path, "s2", join=s1.url)
    s2.start()
    s2.wait_ready()
    deadline = time.monotonic() + 15
    while not s1.ready("s2"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    yield [s1, s2]
    s2.stop()
    s1.stop()


def old_member_step(tmp_path: Path, live: Server, name: str, timeout: int = 20):
    play = tmp_path / "old_member.yml"
    play.write_text("""---
- name: The old-member step of k3s_server
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: dictamesh.k3s_gitops.k3s_server
        tasks_from: old_member
""", encoding="utf-8")
    return run_playbook(play, {"k3s_server__binary": str(STANDIN), "k3s_server__kubectl_host": "localhost",
                               "k3s_server_node_name": name, "k3s_server_node_ip": "127.0.0.1",
                               "k3s_server_ready_timeout": timeout},
                        connection="local", env={"K3S_STANDIN_ROOT": str(live.root), "K3S_STANDIN_PORT": str(live.port)})


def test_rebuilt_server_gets_its_old_member_removed_and_joins(servers: List[Server], tmp_path: Path) -> None:
    s1, s2 = servers
    old_member = s1.nodes()["s2"]["metadata"]["annotations"]["etcd.k3s.cattle.io/node-name"]
    s2.stop()
    shutil.rmtree(s2.root / "var")  # rebuilt: empty data dir, same node name
    s2.start()
    assert s2.proc is not None and s2.proc.wait(timeout=30) == 1  # what K3S does before the step
    assert "duplicate node name found" in s2.proc.stdout.read()
    run = old_member_step(tmp_path, s1, "s2", timeout=30)  # waits until the Node is NotReady
    assert run.rc == 0, run
    assert run.task("dictamesh.k3s_gitops.k3s_server : Delete the Node of the old member (K3S removes the etcd member, "
                    "then the Node)")["changed"]
    assert "s2" not in s1.nodes()
    s2.start()
    s2.wait_ready()
    deadline = time.monotonic() + 15
    while not s1.ready("s2"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert s1.nodes()["s2"]["metadata"]["annotations"]["etcd.k3s.cattle.io/node-name"] != old_member


def test_ready_server_is_never_removed(servers: List[Server], tmp_path: Path) -> None:
    s1, _s2 = servers
    run = old_member_step(tmp_path, s1, "s2", timeout=6)
    assert run.rc != 0
    message = " ".join(run.failure_messages())
    assert "is still Ready" in message and "Nothing was changed" in message, message
    assert s1.ready("s2")
    assert run.changed == 0


def test_new_server_name_changes_nothing(servers: List[Server], tmp_path: Path) -> None:
    s1, _s2 = servers
    run = old_member_step(tmp_path, s1, "s3")
    assert run.rc == 0, run
    assert run.changed == 0
    assert set(s1.nodes()) == {"s1", "s2"}
