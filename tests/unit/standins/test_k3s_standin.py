"""The K3S stand-in's rules, run on the controller with temporary roots and ports.

Each test starts real stand-in processes (`k3s server` / `k3s agent`) on 127.0.0.1 with
K3S_STANDIN_ROOT pointing at a temp dir, and checks a rule K3S enforces.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))

import build_mirror  # noqa: E402
from standin import core as k3s_standin  # noqa: E402

# The processes run the same zipapp the mirror serves to the VMs.
STANDIN = Path(tempfile.mkdtemp(prefix="k3s-standin-")) / "k3s"
atexit.register(shutil.rmtree, STANDIN.parent, ignore_errors=True)
STANDIN.write_bytes(build_mirror.standin_for(build_mirror.DEFAULT_VERSION))

TOKEN = "s3cret-cluster-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    """One stand-in process with its own root directory."""

    def __init__(self, root: Path, name: str, port: int | None = None) -> None:
        self.root = root / name
        self.name = name
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None
        (self.root / "etc/rancher/k3s").mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, K3S_STANDIN_ROOT=str(self.root), K3S_STANDIN_PORT=str(self.port),
                   K3S_STANDIN_HEARTBEAT="0.3", K3S_STANDIN_NODE_GRACE="3",
                   K3S_STANDIN_JOIN_TIMEOUT="3")
        env.pop("NOTIFY_SOCKET", None)
        env.update(extra)
        return env

    def configure(self, token: str | None = TOKEN, **config: object) -> None:
        lines = [f"node-name: {self.name}", "node-ip: 127.0.0.1"]
        if token is not None:
            (self.root / "etc/rancher/k3s/token").write_text(token + "\n", encoding="utf-8")
            lines.append("token-file: /etc/rancher/k3s/token")
        for key, value in config.items():
            key = key.replace("_", "-")
            if isinstance(value, list):
                lines.append(f"{key}:")
                lines.extend(f"- {item}" for item in value)
            else:
                lines.append(f"{key}: {json.dumps(value)}")
        (self.root / "etc/rancher/k3s/config.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, command: str = "server", binary: Path = STANDIN, **env: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(binary), command], env=self.env(**env),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                if get(self.url + "/ping") == (200, "pong"):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready")

    def wait_exit(self, timeout: float = 20) -> tuple[int, str]:
        assert self.proc is not None
        out, _err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(STANDIN), "kubectl", *args], env=self.env(),
                              capture_output=True, text=True, timeout=30, check=False)

    def nodes(self) -> dict[str, dict]:
        result = self.kubectl("get", "nodes", "-o", "json")
        assert result.returncode == 0, result.stderr
        return {item["metadata"]["name"]: item for item in json.loads(result.stdout)["items"]}

    def data(self, rel: str) -> Path:
        return self.root / "var/lib/rancher/k3s" / rel


def get(url: str) -> tuple[int, str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def wait_nodes(node: Node, names: set[str], timeout: float = 15) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = node.nodes()
        if names <= {n for n, v in nodes.items() if ready(v)} or time.monotonic() > deadline:
            return nodes
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    started: list[Node] = []

    def make(name: str) -> Node:
        node = Node(tmp_path, name)
        started.append(node)
        return node

    yield make  # type: ignore[misc]
    for node in started:
        node.stop()


def first_server(make) -> Node:
    server = make("s1")
    server.configure(cluster_init=True)
    server.start()
    server.wait_ready()
    return server


# ---------------------------------------------------------------- pure functions


def test_version_output() -> None:
    out = subprocess.run([sys.executable, str(STANDIN), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[0].startswith("k3s version %s (" % build_mirror.DEFAULT_VERSION)


def test_parse_config_subset() -> None:
    text = ("# comment\ncluster-init: true\nnode-ip: 10.0.0.1\nwrite-kubeconfig-mode: '0600'\n"
            "disable:\n- traefik\n- servicelb\ntls-san: [a.example, 10.0.0.9]\nserver: null\n")
    assert k3s_standin.parse_config(text) == {
        "cluster-init": True, "node-ip": "10.0.0.1", "write-kubeconfig-mode": "0600",
        "disable": ["traefik", "servicelb"], "tls-san": ["a.example", "10.0.0.9"], "server": None}


def test_parse_config_rejects_nesting() -> None:
    with pytest.raises(k3s_standin.StandinError, match="line 2"):
        k3s_standin.parse_config("a:\n  b: c\n")


def test_token_forms() -> None:
    digest = "a" * 64
    assert k3s_standin.split_token(f"K10{digest}::server:pw") == (digest, "pw")
    assert k3s_standin.split_token("plain") == (None, "plain")
    with pytest.raises(k3s_standin.StandinError, match="K10<CA-HASH>"):
        k3s_standin.split_token("K10broken")


def test_unknown_config_key_is_skipped_with_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc/rancher/k3s").mkdir(parents=True)
    (tmp_path / "etc/rancher/k3s/config.yaml").write_text("node-ip: 1.2.3.4\nno-such-flag: 1\n")
    monkeypatch.setenv("K3S_STANDIN_ROOT", str(tmp_path))
    config = k3s_standin.load_config("server", {})
    assert config == {"node-ip": "1.2.3.4"}
    assert "Unknown flag --no-such-flag" in capsys.readouterr().err


def test_server_only_key_skipped_for_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc/rancher/k3s").mkdir(parents=True)
    (tmp_path / "etc/rancher/k3s/config.yaml").write_text("cluster-init: true\nserver: https://x:6443\n")
    monkeypatch.setenv("K3S_STANDIN_ROOT", str(tmp_path))
    assert k3s_standin.load_config("agent", {}) == {"server": "https://x:6443"}


# ---------------------------------------------------------------- cluster rules


def test_first_server_writes_k3s_files(cluster) -> None:
    server = first_server(cluster)
    kubeconfig = server.root / "etc/rancher/k3s/k3s.yaml"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert "server: https://127.0.0.1:" in kubeconfig.read_text()
    for rel in ("server/token", "server/node-token"):
        assert stat.S_IMODE(server.data(rel).stat().st_mode) == 0o600
    ca = server.data("server/tls/server-ca.crt").read_bytes()
    assert server.data("server/token").read_text() == f"K10{hashlib.sha256(ca).hexdigest()}::server:{TOKEN}\n"
    for rel in ("server/db", "server/manifests", "agent/images"):
        assert server.data(rel).is_dir()
    assert get(server.url + "/cacerts") == (200, ca.decode())


def test_api_and_health_need_client_certificate(cluster) -> None:
    """Anonymous auth is off on K3S: /readyz is 401 without credentials (k3s-io/k3s#3576)."""
    server = first_server(cluster)
    assert get(server.url + "/ping") == (200, "pong")
    assert get(server.url + "/readyz")[0] == 401
    assert get(server.url + "/api/v1/nodes")[0] == 401
    result = server.kubectl("get", "--raw", "/readyz")
    assert (result.returncode, result.stdout) == (0, "ok")  # the real kubectl adds no newline


def test_servers_and_agent_join_and_share_nodes(cluster) -> None:
    s1 = first_server(cluster)
    s2 = cluster("s2")
    s2.configure(server=s1.url)
    s2.start()
    s2.wait_ready()
    agent = cluster("a1")
    agent.configure(server=s2.url)
    agent.start("agent")
    nodes = wait_nodes(s1, {"s1", "s2", "a1"})
    assert {n for n, v in nodes.items() if ready(v)} == {"s1", "s2", "a1"}
    assert [nodes[n]["metadata"]["annotations"]["k3s.standin/join-seq"] for n in ("s1", "s2", "a1")] == ["1", "2", "3"]
    assert nodes["s1"]["metadata"]["annotations"]["k3s.standin/mode"] == "cluster-init"
    assert nodes["s2"]["metadata"]["annotations"]["k3s.standin/mode"] == "join"
    assert "node-role.kubernetes.io/etcd" in nodes["s2"]["metadata"]["labels"]
    assert "node-role.kubernetes.io/control-plane" not in nodes["a1"]["metadata"]["labels"]
    # the agent registered through s2: s1 learnt it by syncing with s2
    assert nodes["a1"]["metadata"]["annotations"]["k3s.standin/joined-via"] == "s2"
    ids = {v["metadata"]["annotations"]["k3s.standin/cluster-id"] for v in s2.nodes().values()}
    assert len(ids) == 1
    # both servers issued K10 tokens for the same CA
    assert s1.data("server/token").read_text() == s2.data("server/token").read_text()


def test_stopped_agent_turns_not_ready(cluster) -> None:
    s1 = first_server(cluster)
    agent = cluster("a1")
    agent.configure(server=s1.url)
    agent.start("agent")
    assert ready(wait_nodes(s1, {"a1"})["a1"])
    agent.stop()
    time.sleep(4)
    assert not ready(s1.nodes()["a1"])


@pytest.mark.parametrize("command", ["server", "agent"])
def test_wrong_token_cannot_join(cluster, command: str) -> None:
    s1 = first_server(cluster)
    other = cluster("x1")
    other.configure(token="wrong-token", server=s1.url)
    other.start(command)
    code, out = other.wait_exit()
    assert code == 1
    assert "token does not match" in out
    assert "x1" not in s1.nodes()


def test_full_token_with_foreign_ca_hash_is_refused(cluster) -> None:
    s1 = first_server(cluster)
    other = cluster("x1")
    other.configure(token=f"K10{'0' * 64}::server:{TOKEN}", server=s1.url)
    other.start("agent")
    code, out = other.wait_exit()
    assert code == 1
    assert "CA hash does not match" in out


def test_full_token_from_server_file_joins(cluster) -> None:
    s1 = first_server(cluster)
    agent = cluster("a1")
    agent.configure(token=s1.data("server/token").read_text().strip(), server=s1.url)
    agent.start("agent")
    assert ready(wait_nodes(s1, {"a1"})["a1"])


def test_missing_token_for_join_is_fatal(cluster) -> None:
    s1 = first_server(cluster)
    other = cluster("x1")
    other.configure(token=None, server=s1.url)
    other.start("agent")
    code, out = other.wait_exit()
    assert code == 1 and "--token is required" in out


def test_server_cannot_join_sqlite_server(cluster) -> None:
    s1 = cluster("s1")
    s1.configure()  # no cluster-init: single server on sqlite
    s1.start()
    s1.wait_ready()
    s2 = cluster("s2")
    s2.configure(server=s1.url)
    s2.start()
    code, out = s2.wait_exit()
    assert code == 1 and "not a member of an etcd cluster" in out


def test_cluster_init_ignored_on_existing_data_dir(cluster) -> None:
    s1 = first_server(cluster)
    cluster_id = s1.nodes()["s1"]["metadata"]["annotations"]["k3s.standin/cluster-id"]
    s1.stop()
    s1.start()
    s1.wait_ready()
    assert s1.nodes()["s1"]["metadata"]["annotations"]["k3s.standin/cluster-id"] == cluster_id
    starts = s1.data("standin-starts.log").read_text().splitlines()
    assert [line.split()[2] for line in starts] == ["cluster-init", "restart"]


def test_rebuilt_server_with_cluster_init_founds_a_new_cluster(cluster) -> None:
    """What the roles must avoid: cluster-init on an empty data dir founds a second cluster."""
    s1 = first_server(cluster)
    s2 = cluster("s2")
    s2.configure(server=s1.url)
    s2.start()
    s2.wait_ready()
    old_id = s2.nodes()["s2"]["metadata"]["annotations"]["k3s.standin/cluster-id"]
    s1.stop()
    import shutil
    shutil.rmtree(s1.root / "var")
    s1.start()
    s1.wait_ready()
    nodes = s1.nodes()
    assert set(nodes) == {"s1"}
    assert nodes["s1"]["metadata"]["annotations"]["k3s.standin/cluster-id"] != old_id


def test_rebuilt_server_is_refused_while_its_old_member_exists(cluster) -> None:
    """k3s-io/k3s pkg/etcd/etcd.go join: an empty data dir means a new member name <node>-<8 hex>;
    a member of the same node name under another member name makes the join fail; deleting the
    Node from a live server removes that member (member_controller.go), then the join succeeds."""
    s1 = first_server(cluster)
    s2 = cluster("s2")
    s2.configure(server=s1.url)
    s2.start()
    s2.wait_ready()
    nodes = wait_nodes(s1, {"s1", "s2"})
    old_member = nodes["s2"]["metadata"]["annotations"]["etcd.k3s.cattle.io/node-name"]
    old_joined = float(nodes["s2"]["metadata"]["annotations"]["k3s.standin/joined-at"])
    assert re.fullmatch(r"s2-[0-9a-f]{8}", old_member)
    assert (s2.data("server/db/etcd/name").read_text()) == old_member
    assert nodes["s2"]["metadata"]["annotations"]["etcd.k3s.cattle.io/node-address"] == "127.0.0.1"
    assert nodes["s2"]["metadata"]["finalizers"] == ["wrangler.cattle.io/managed-etcd-controller"]
    s2.stop()
    shutil.rmtree(s2.root / "var")  # rebuilt: same node name, empty data dir
    s2.start()
    code, out = s2.wait_exit()
    assert code == 1
    assert 'level=fatal msg="etcd cluster join failed: duplicate node name found, please use a unique name for ' \
           'this node"' in out
    assert not s2.data("server/db").exists()  # nothing kept: a restart tries the join again
    deleted = s1.kubectl("delete", "node", "s2")
    assert deleted.returncode == 0 and deleted.stdout == 'node "s2" deleted\n'
    assert "s2" not in s1.nodes()
    s2.start()
    s2.wait_ready()
    nodes = wait_nodes(s1, {"s1", "s2"})
    new = nodes["s2"]["metadata"]
    assert new["annotations"]["etcd.k3s.cattle.io/node-name"] not in ("", old_member)
    assert float(new["annotations"]["k3s.standin/joined-at"]) > old_joined  # a new member, not the old entry
    assert new["annotations"]["k3s.standin/mode"] == "join"
    assert ready(nodes["s2"])


def test_deleting_a_member_node_reaches_every_server_at_once(cluster) -> None:
    s1 = first_server(cluster)
    others = {}
    # s2 joins last, with a controller pass every 60 s: only its pass before READY adds Nodes
    for name, interval in (("s3", "1"), ("s2", "60")):
        server = cluster(name)
        server.configure(server=s1.url)
        server.start(K3S_STANDIN_CONTROLLER_INTERVAL=interval)
        server.wait_ready()
        others[name] = server
    wait_nodes(s1, {"s1", "s2", "s3"})
    assert "s3" in others["s2"].nodes()
    others["s3"].stop()
    assert s1.kubectl("delete", "node", "s3").returncode == 0
    assert "s3" not in others["s2"].nodes()  # gone from s2's API at once, not at its next controller pass
    time.sleep(1)  # a sync round later, s2's older copy of s3 must not come back
    assert "s3" not in s1.nodes() and "s3" not in others["s2"].nodes()
    shutil.rmtree(others["s3"].root / "var")
    others["s3"].configure(server=others["s2"].url)  # joins through s2, which must not see a duplicate
    others["s3"].start()
    others["s3"].wait_ready()
    assert ready(wait_nodes(s1, {"s3"})["s3"])


def test_node_reads_into_the_kubernetes_clients_typed_model(cluster) -> None:
    """k8s_drain reads the Node with CoreV1Api.read_node, whose model requires every nodeInfo field
    a kubelet sets (a missing one failed the upgrade scenario's cordon)."""
    client = pytest.importorskip("kubernetes.client")
    config = pytest.importorskip("kubernetes.config")
    s1 = first_server(cluster)
    api = client.CoreV1Api(config.new_client_from_config(str(s1.root / "etc/rancher/k3s/k3s.yaml")))
    info = api.read_node("s1").status.node_info
    assert info.kubelet_version == build_mirror.DEFAULT_VERSION
    assert info.container_runtime_version.startswith("containerd://") and info.kernel_version == os.uname().release
    pods = api.list_pod_for_all_namespaces(field_selector="spec.nodeName=s1").items  # what k8s_drain lists
    assert pods and all(c.image and c.image_id for p in pods for c in p.status.container_statuses)


def test_api_objects_survive_a_restart(cluster) -> None:
    """The API's objects live under the data dir (as K3S's datastore does): a restart keeps them."""
    s1 = first_server(cluster)
    assert s1.kubectl("cordon", "s1").returncode == 0
    manifest = s1.root / "kept.json"  # (`create -f`: kubectl's typed `create configmap` sends protobuf)
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"},
                                    "data": {"a": "b"}}))
    made = s1.kubectl("create", "-f", str(manifest))
    assert made.returncode == 0, made.stderr
    state = s1.data("server/db/kubeapi.json")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    s1.stop()
    s1.start()
    s1.wait_ready()
    assert s1.nodes()["s1"]["spec"].get("unschedulable") is True
    kept = s1.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}")
    assert (kept.returncode, kept.stdout) == (0, "b"), kept.stderr


def test_cordon_is_one_node_state_for_every_server(cluster) -> None:
    """One etcd holds the Node: a cordon through one server is seen through the others."""
    s1 = first_server(cluster)
    s2 = cluster("s2")
    s2.configure(server=s1.url)
    s2.start()
    s2.wait_ready()
    wait_nodes(s2, {"s1", "s2"})
    # The stand-in's servers share their state by polling each other (FIDELITY.md): s1 may see s2's
    # Node a moment after s2 does (upstream's one etcd has no such gap), and a cordon through s1 of
    # a Node it does not hold yet is NotFound.
    wait_nodes(s1, {"s1", "s2"})

    def unschedulable(server: Node) -> bool:
        return bool(server.nodes()["s2"]["spec"].get("unschedulable"))
    for writer, reader, verb, expected in ((s1, s2, "cordon", True), (s2, s1, "uncordon", False)):
        assert writer.kubectl(verb, "s2").returncode == 0
        deadline = time.monotonic() + 10
        while unschedulable(reader) != expected and time.monotonic() < deadline:
            time.sleep(0.3)
        assert unschedulable(reader) == expected, verb


@pytest.mark.parametrize("role", ["server", "agent"])
def test_restarted_node_version_reaches_every_server(cluster, tmp_path: Path, role: str) -> None:
    """One etcd holds the Node, whose status the kubelet writes at its start (kubernetes/kubernetes
    pkg/kubelet/kubelet_node_status.go): a node restarted at a new version shows that kubeletVersion
    through every server, not only through the one it talks to (the HA rolling upgrade's last check
    reads every Node on the first server)."""
    newer = tmp_path / "k3s-newer"
    newer.write_bytes(build_mirror.standin_for("v1.35.0+k3s1"))
    s1 = first_server(cluster)
    s2 = cluster("s2")
    s2.configure(server=s1.url)
    s2.start()
    s2.wait_ready()
    node = s2
    if role == "agent":
        node = cluster("a1")
        node.configure(server=s2.url)  # registers through s2; s1 learns it by syncing
        node.start("agent")
    wait_nodes(s1, {"s1", "s2", node.name})
    node.stop()
    node.start(role, binary=newer)
    if role == "server":
        node.wait_ready()

    def version(server: Node) -> str:
        return server.nodes()[node.name]["status"]["nodeInfo"]["kubeletVersion"]
    deadline = time.monotonic() + 10
    while version(s1) != "v1.35.0+k3s1" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert version(s1) == version(s2) == "v1.35.0+k3s1"
    assert ready(s1.nodes()[node.name])


def test_restarted_server_version_is_seen_by_its_peers_once_it_serves(cluster, tmp_path: Path) -> None:
    """The rolling upgrade checks every Node's version on the first server right after the last
    server's restart (upgrade_k3s.yml's last play); upstream that Node status is in etcd before the
    restarted server reports ready. Sync rounds here are 30 s apart: only a push at start can pass."""
    newer = tmp_path / "k3s-newer"
    newer.write_bytes(build_mirror.standin_for("v1.35.0+k3s1"))
    slow = {"K3S_STANDIN_HEARTBEAT": "30", "K3S_STANDIN_NODE_GRACE": "120"}
    s1 = cluster("s1")
    s1.configure(cluster_init=True)
    s1.start(**slow)
    s1.wait_ready()
    s2 = cluster("s2")
    s2.configure(server=s1.url)
    s2.start(**slow)
    s2.wait_ready()
    assert wait_nodes(s1, {"s2"})["s2"]["status"]["nodeInfo"]["kubeletVersion"] == build_mirror.DEFAULT_VERSION
    s2.stop()
    s2.start(binary=newer, **slow)
    s2.wait_ready()
    assert s1.nodes()["s2"]["status"]["nodeInfo"]["kubeletVersion"] == "v1.35.0+k3s1"


def test_agent_and_new_server_names_are_not_duplicates(cluster) -> None:
    s1 = first_server(cluster)
    s10 = cluster("s1-b")  # a node name that extends another one is no duplicate
    s10.configure(server=s1.url)
    s10.start()
    s10.wait_ready()
    assert ready(wait_nodes(s1, {"s1-b"})["s1-b"])


def test_different_token_on_existing_data_dir_is_fatal(cluster) -> None:
    s1 = first_server(cluster)
    s1.stop()
    (s1.root / "etc/rancher/k3s/token").write_text("another-token\n")
    s1.start()
    code, out = s1.wait_exit()
    assert code == 1 and "encrypted with different token" in out


def test_kubeconfig_mode_follows_config(cluster) -> None:
    s1 = cluster("s1")
    s1.configure(cluster_init=True, write_kubeconfig_mode="0640")
    s1.start()
    s1.wait_ready()
    assert stat.S_IMODE((s1.root / "etc/rancher/k3s/k3s.yaml").stat().st_mode) == 0o640


def test_tls_san_in_serving_certificate(cluster) -> None:
    s1 = cluster("s1")
    s1.configure(cluster_init=True, tls_san=["k3s.example.org", "192.0.2.50"])
    s1.start()
    s1.wait_ready()
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(s1.data("server/tls/serving-kube-apiserver.crt"))],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:k3s.example.org" in text and "IP Address:192.0.2.50" in text


def test_sd_notify_ready(cluster, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(20)
        s1 = cluster("s1")
        s1.configure(cluster_init=True)
        s1.start(NOTIFY_SOCKET=str(sock_path))
        assert sock.recv(100) == b"READY=1"


def test_k3s_kubectl_is_a_real_kubectl(cluster) -> None:
    """`k3s kubectl` runs kubectl itself (k3s-io/k3s pkg/kubectl/main.go) with the admin kubeconfig."""
    s1 = first_server(cluster)
    result = s1.kubectl("version", "-o", "json")
    assert result.returncode == 0, result.stderr
    versions = json.loads(result.stdout)
    assert versions["clientVersion"]["major"] == "1" and versions["clientVersion"]["gitVersion"].startswith("v1.")
    assert versions["serverVersion"]["gitVersion"] == build_mirror.DEFAULT_VERSION
    result = s1.kubectl("port-forward", "svc/traefik", "8080:80")
    assert result.returncode == 1 and "Error from server (NotFound)" in result.stderr


# ---------------------------------------------------------------- mirror builder


def test_build_mirror_checksums(tmp_path: Path) -> None:
    build_mirror.build(tmp_path, ["v1.34.1+k3s1", "v1.34.2+k3s1"], corrupt=["v1.34.2+k3s1"])
    digests = {}
    for version in ("v1.34.1+k3s1", "v1.34.2+k3s1"):
        target = tmp_path / version
        sums = dict(reversed(line.split()) for line in (target / "sha256sum-amd64.txt").read_text().splitlines())
        assert set(sums) == {"k3s", "k3s-airgap-images-amd64.tar.zst"}
        digests[version] = hashlib.sha256((target / "k3s").read_bytes()).hexdigest()
        matches = digests[version] == sums["k3s"]
        assert matches == (version == "v1.34.1+k3s1")
        arm = dict(reversed(line.split()) for line in (target / "sha256sum-arm64.txt").read_text().splitlines())
        assert set(arm) == {"k3s-arm64", "k3s-airgap-images-arm64.tar.zst"}
    assert digests["v1.34.1+k3s1"] != digests["v1.34.2+k3s1"]
    out = subprocess.run([sys.executable, str(tmp_path / "v1.34.1+k3s1/k3s"), "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("k3s version v1.34.1+k3s1 ")
