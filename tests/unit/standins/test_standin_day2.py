"""The K3S stand-in's day-2 surface (standin/day2.py): etcd-snapshot, cluster-reset, cordon/drain,
per-node versions and fault injection, with real stand-in processes on 127.0.0.1 under temp roots."""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))

import build_mirror  # noqa: E402

OLD, NEW = "v1.33.5+k3s1", "v1.34.1+k3s1"
BUILDS = Path(tempfile.mkdtemp(prefix="k3s-standin-day2-"))
atexit.register(shutil.rmtree, BUILDS, ignore_errors=True)
BINARIES = {}
for _version in (OLD, NEW):
    BINARIES[_version] = BUILDS / _version / "k3s"
    BINARIES[_version].parent.mkdir(parents=True)
    BINARIES[_version].write_bytes(build_mirror.standin_for(_version))
TOKEN = "day2-cluster-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    def __init__(self, root: Path, name: str, version: str = OLD) -> None:
        self.root, self.name, self.version = root / name, name, version
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        (self.root / "etc/rancher/k3s").mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ, K3S_STANDIN_ROOT=str(self.root), K3S_STANDIN_PORT=str(self.port),
                   K3S_STANDIN_HEARTBEAT="0.3", K3S_STANDIN_NODE_GRACE="3", K3S_STANDIN_JOIN_TIMEOUT="3")
        env.pop("NOTIFY_SOCKET", None)
        return env

    def configure(self, **config: object) -> None:
        (self.root / "etc/rancher/k3s/token").write_text(TOKEN + "\n", encoding="utf-8")
        lines = [f"node-name: {self.name}", "node-ip: 127.0.0.1", "token-file: /etc/rancher/k3s/token"]
        lines += [f"{k.replace('_', '-')}: {json.dumps(v)}" for k, v in config.items()]
        (self.root / "etc/rancher/k3s/config.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(BINARIES[self.version]), *args], env=self.env(),
                              capture_output=True, text=True, timeout=30, check=False)

    def start(self, command: str = "server") -> None:
        self.proc = subprocess.Popen([sys.executable, str(BINARIES[self.version]), command], env=self.env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/ping", context=context, timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def nodes(self) -> dict[str, dict]:
        result = self.run("kubectl", "get", "nodes", "-o", "json")
        assert result.returncode == 0, result.stderr
        return {item["metadata"]["name"]: item for item in json.loads(result.stdout)["items"]}

    def data(self, rel: str) -> Path:
        return self.root / "var/lib/rancher/k3s" / rel


@pytest.fixture
def make(tmp_path: Path) -> Iterator:
    started: list[Node] = []

    def factory(name: str, version: str = OLD) -> Node:
        node = Node(tmp_path, name, version)
        started.append(node)
        return node

    yield factory
    for node in started:
        node.stop()


def wait_registered(server: Node, name: str, timeout: float = 20) -> None:
    """Until `name` is registered (a loaded machine starts a stand-in process slowly)."""
    deadline = time.monotonic() + timeout
    while name not in server.nodes():
        assert time.monotonic() < deadline, f"{name} did not register"
        time.sleep(0.2)


def etcd_server(make, name: str = "s1") -> Node:
    server = make(name)
    server.configure(cluster_init=True)
    server.start()
    server.wait_ready()
    return server


LOGRUS = re.compile(r'^time="[0-9T:-]+Z" level=(\w+) msg="(.*)"$')


def logged(stderr: str) -> list[tuple[str, str]]:
    """(level, message) of each logrus line (K3S logs through logrus to stderr)."""
    lines = [LOGRUS.match(line) for line in stderr.splitlines()]
    assert all(lines), stderr
    return [(m.group(1), m.group(2)) for m in lines if m]


def saved_name(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # upstream logs the name on stderr only
    (level, message), = logged(result.stderr)
    match = re.fullmatch(r"Snapshot (\S+) saved\.", message)
    assert level == "info" and match, result.stderr
    return match.group(1)


def test_snapshot_save_ls_delete_prune(make) -> None:
    server = etcd_server(make)
    name = saved_name(server.run("etcd-snapshot", "save", "--name", "pre-upgrade"))
    assert re.fullmatch(r"pre-upgrade-s1-\d{10}", name)
    path = server.data("server/db/snapshots") / name
    assert path.is_file() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text())["datastore"]["nodes"]["s1"]["role"] == "server"
    listed = server.run("etcd-snapshot", "ls", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(listed.stdout)["items"]] == [name]
    assert name in server.run("etcd-snapshot", "ls").stdout
    for _attempt in range(2):
        time.sleep(1.05)  # names carry the second
        saved_name(server.run("etcd-snapshot", "save", "--name", "pre-upgrade"))
    pruned = server.run("etcd-snapshot", "prune", "--name", "pre-upgrade", "--snapshot-retention", "2")
    assert pruned.returncode == 0 and logged(pruned.stderr) == [("info", f"Snapshot {name} deleted.")]
    remaining = sorted(p.name for p in server.data("server/db/snapshots").iterdir())
    assert len(remaining) == 2 and name not in remaining
    deleted = server.run("etcd-snapshot", "delete", remaining[0])
    assert deleted.returncode == 0 and logged(deleted.stderr) == [("info", f"Snapshot {remaining[0]} deleted.")]
    assert sorted(p.name for p in server.data("server/db/snapshots").iterdir()) == remaining[1:]
    missing = server.run("etcd-snapshot", "delete", "nope")  # upstream warns and exits 0
    assert missing.returncode == 0 and logged(missing.stderr) == [("warning", "Snapshot nope not found.")]


def test_snapshot_save_needs_the_running_local_server(make) -> None:
    server = etcd_server(make)
    server.stop()
    refused = server.run("etcd-snapshot", "save")
    assert refused.returncode == 1 and refused.stdout == ""
    expected = (f'Error: failed to get CA certs: Get \\"https://127.0.0.1:{server.port}/cacerts\\": '
                f'dial tcp 127.0.0.1:{server.port}: connect: connection refused')
    assert logged(refused.stderr) == [("fatal", expected)]
    assert not server.data("server/db/snapshots").exists()
    fresh = make("s2")
    fresh.configure(cluster_init=True)
    no_token = fresh.run("etcd-snapshot", "save")  # never started: no server/token to authenticate with
    assert no_token.returncode == 1 and "server/token: no such file or directory" in no_token.stderr


def test_snapshot_refused_on_sqlite(make) -> None:
    server = make("s1")
    server.configure()
    server.start()
    server.wait_ready()
    result = server.run("etcd-snapshot", "save")
    assert result.returncode == 1
    assert logged(result.stderr) == [("fatal", "Error: see server log for details: etcd datastore disabled")]


def test_cordon_drain_uncordon_with_a_real_kubectl(make) -> None:
    server = etcd_server(make)
    assert server.run("kubectl", "cordon", "s1").stdout == "node/s1 cordoned\n"
    assert server.nodes()["s1"]["spec"]["unschedulable"] is True
    assert server.run("kubectl", "cordon", "s1").stdout == "node/s1 already cordoned\n"
    assert server.run("kubectl", "uncordon", "s1").stdout == "node/s1 uncordoned\n"
    assert "unschedulable" not in server.nodes()["s1"]["spec"]
    refused = server.run("kubectl", "drain", "s1", "--timeout=30s")
    assert refused.returncode == 1 and "--ignore-daemonsets" in refused.stderr
    refused = server.run("kubectl", "drain", "s1", "--ignore-daemonsets")
    assert refused.returncode == 1 and "--delete-emptydir-data" in refused.stderr
    drained = server.run("kubectl", "drain", "s1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "60s")
    assert drained.returncode == 0 and drained.stdout.endswith("node/s1 drained\n")
    unknown = server.run("kubectl", "cordon", "ghost")
    assert unknown.returncode == 1 and 'nodes "ghost" not found' in unknown.stderr
    # drain evicted coredns and metrics-server (their ReplicaSets place them again on a schedulable
    # node: none while s1 is cordoned) and left the servicelb DaemonSet pod alone

    def placed() -> dict[str, str]:
        pods = json.loads(server.run("kubectl", "get", "pods", "-A", "-o", "json").stdout)["items"]
        return {p["metadata"]["name"].split("-")[0]: p["spec"].get("nodeName") for p in pods
                if not p["metadata"]["name"].startswith("helm-install-")}
    assert placed() == {"svclb": "s1"}
    assert server.run("kubectl", "uncordon", "s1").returncode == 0
    deadline = time.monotonic() + 10
    while placed() != {"svclb": "s1", "coredns": "s1", "metrics": "s1"} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert placed() == {"svclb": "s1", "coredns": "s1", "metrics": "s1"}


def test_drain_fault_knob(make) -> None:
    server = etcd_server(make)
    server.data("server/standin-drain-fail").write_text("s1\n")
    deadline = time.monotonic() + 10  # the budget and its pod appear at the next controller pass
    while server.run("kubectl", "get", "pdb", "blocked-s1").returncode and time.monotonic() < deadline:
        time.sleep(0.5)
    result = server.run("kubectl", "drain", "s1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5s")
    assert result.returncode == 1 and "disruption budget" in result.stderr
    assert server.nodes()["s1"]["spec"]["unschedulable"] is True  # drain cordons first, like kubectl


def test_new_binary_reports_its_version_and_fault_marker_blocks_only_that_version(make) -> None:
    server = etcd_server(make)
    agent = make("a1")
    agent.configure(server=f"https://127.0.0.1:{server.port}")
    agent.start("agent")
    wait_registered(server, "a1")
    assert {n: v["status"]["nodeInfo"]["kubeletVersion"] for n, v in server.nodes().items()} == {"s1": OLD, "a1": OLD}
    agent.stop()
    agent.data("standin-fail-start").write_text(NEW + "\n")
    agent.version = NEW
    assert agent.run("--version").stdout.startswith(f"k3s version {NEW} ")
    failed = agent.run("agent")
    assert failed.returncode == 1 and "fault injection" in failed.stderr
    agent.data("standin-fail-start").unlink()
    agent.start("agent")
    deadline = time.monotonic() + 10
    while server.nodes()["a1"]["status"]["nodeInfo"]["kubeletVersion"] != NEW:
        assert time.monotonic() < deadline, server.nodes()["a1"]
        time.sleep(0.2)
    server.stop()
    server.version = NEW
    server.start()
    server.wait_ready()
    assert server.nodes()["s1"]["status"]["nodeInfo"]["kubeletVersion"] == NEW


def test_cluster_reset_restores_snapshot(make) -> None:
    server = etcd_server(make)
    snapshot = server.data("server/db/snapshots") / saved_name(server.run("etcd-snapshot", "save", "--name", "before"))
    agent = make("a1")
    agent.configure(server=f"https://127.0.0.1:{server.port}")
    agent.start("agent")
    wait_registered(server, "a1")
    agent.stop()
    server.stop()
    (server.root / "etc/rancher/k3s/token").write_text("another-token\n")
    wrong = server.run("server", "--cluster-reset", "--cluster-reset-restore-path", str(snapshot))
    assert wrong.returncode == 1 and "token differs" in wrong.stderr
    (server.root / "etc/rancher/k3s/token").write_text(TOKEN + "\n")
    reset = server.run("server", "--cluster-reset", "--cluster-reset-restore-path", str(snapshot))
    assert reset.returncode == 0 and "restart without --cluster-reset" in reset.stderr
    assert (server.data("server/db/snapshots") / snapshot.name).is_file()  # kept across the reset
    assert list(server.data("server").glob("db-old-*"))
    server.start()
    server.wait_ready()
    assert set(server.nodes()) == {"s1"}  # the agent registered after the snapshot


def test_deleted_node_disappears_until_it_sends_a_heartbeat_again(make) -> None:
    server = etcd_server(make)
    agent = make("a1")
    agent.configure(server=f"https://127.0.0.1:{server.port}")
    agent.start("agent")
    wait_registered(server, "a1")
    agent.stop()
    time.sleep(1.1)  # heartbeat times have second resolution
    deleted = server.run("kubectl", "delete", "node", "a1")
    assert deleted.returncode == 0 and deleted.stdout == 'node "a1" deleted\n'
    assert set(server.nodes()) == {"s1"}
    missing = server.run("kubectl", "get", "node", "a1", "-o", "json")
    assert missing.returncode == 1 and 'nodes "a1" not found' in missing.stderr
    for again in (["drain", "a1", "--ignore-daemonsets"], ["delete", "node", "a1"], ["cordon", "a1"]):
        refused = server.run("kubectl", *again)
        assert refused.returncode == 1 and 'nodes "a1" not found' in refused.stderr, again
    time.sleep(1.1)
    agent.start("agent")  # reinstalled / restarted: it registers again
    deadline = time.monotonic() + 10
    while "a1" not in server.nodes():
        assert time.monotonic() < deadline
        time.sleep(0.3)
