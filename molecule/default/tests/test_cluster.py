"""K3S cluster checks (molecule default, ha and site scenarios), through molecule's inventory.

K3S here is the stand-in of tests/standins/k3s/ (installed from the artifact mirror with its
checksum file): the checks are those that hold for real K3S too, plus two stand-in records
(tests/standins/k3s/standin/): `standin-starts.log` (one line per K3S start, so a
needless restart shows) and the join annotations on the nodes.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import testinfra.host

VERSION = "v1.34.9+k3s1"
K3S = "/usr/local/bin/k3s"


def hostvars(host: testinfra.host.Host) -> dict[str, Any]:
    return host.ansible.get_variables()


def is_server(host: testinfra.host.Host) -> bool:
    return "k3s_servers" in hostvars(host)["group_names"]


def service(host: testinfra.host.Host) -> str:
    return "k3s" if is_server(host) else "k3s-agent"


def nodes_from(host: testinfra.host.Host) -> dict[str, dict[str, Any]]:
    out = host.check_output(f"{K3S} kubectl get nodes -o json")
    return {item["metadata"]["name"]: item for item in json.loads(out)["items"]}


def test_binary_installed_and_pinned(host: testinfra.host.Host) -> None:
    binary = host.file(K3S)
    assert binary.is_file and binary.mode == 0o755 and binary.user == "root"
    assert host.check_output(f"{K3S} --version").startswith(f"k3s version {VERSION} (")


def test_token_file_is_private(host: testinfra.host.Host) -> None:
    token = host.file("/etc/rancher/k3s/token")
    assert token.mode == 0o600 and token.user == "root"
    assert token.content_string.strip() == hostvars(host)["cluster_token"]


def test_config_refers_to_token_file(host: testinfra.host.Host) -> None:
    config = host.file("/etc/rancher/k3s/config.yaml")
    assert config.mode == 0o600
    text = config.content_string
    assert "token-file: /etc/rancher/k3s/token" in text
    assert hostvars(host)["cluster_token"] not in text
    assert f"node-ip: {hostvars(host)['node_ip']}" in text
    assert f"node-name: {hostvars(host)['inventory_hostname']}" in text


def test_unit_enabled_running_without_secrets(host: testinfra.host.Host) -> None:
    name = service(host)
    unit = host.service(name)
    assert unit.is_enabled and unit.is_running
    token = hostvars(host)["cluster_token"]
    unit_file = host.file(f"/etc/systemd/system/{name}.service")
    assert unit_file.mode == 0o644
    assert token not in unit_file.content_string
    assert f"ExecStart={K3S} {'server' if is_server(host) else 'agent'}\n" in unit_file.content_string
    assert token not in host.check_output(f"systemctl show {name} -p Environment -p ExecStart")


def test_token_absent_from_processes(host: testinfra.host.Host) -> None:
    token = hostvars(host)["cluster_token"]
    assert token not in host.check_output("ps -eww -o args")
    pid = host.check_output(f"systemctl show {service(host)} -p MainPID --value")
    assert pid != "0"
    environ = host.run(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert environ.rc == 0 and token not in environ.stdout


def test_started_once(host: testinfra.host.Host) -> None:
    """converge + idempotence: K3S started exactly once (the second run restarted nothing)."""
    starts = host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.splitlines()
    assert len(starts) == 1, starts


def test_server_files(host: testinfra.host.Host) -> None:
    if not is_server(host):
        assert not host.file("/var/lib/rancher/k3s/server").exists
        return
    assert host.file("/etc/rancher/k3s/k3s.yaml").mode == 0o600
    for rel in ("server/token", "server/node-token"):
        assert host.file(f"/var/lib/rancher/k3s/{rel}").mode == 0o600
    assert host.file("/var/lib/rancher/k3s/server/db").is_directory
    assert host.file("/var/lib/rancher/k3s/server/manifests").is_directory


def test_every_inventory_node_ready(host: testinfra.host.Host) -> None:
    if not is_server(host):
        return
    variables = hostvars(host)
    expected = set(variables["groups"]["k3s_cluster"])
    nodes = nodes_from(host)
    assert set(nodes) == expected
    for name, node in nodes.items():
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", name
        assert node["status"]["nodeInfo"]["kubeletVersion"] == VERSION
    ids = {n["metadata"]["annotations"]["k3s.standin/cluster-id"] for n in nodes.values()}
    assert len(ids) == 1, "the servers founded more than one cluster"
    agents = set(variables["groups"].get("k3s_agents", []))
    for name in agents:
        assert "node-role.kubernetes.io/control-plane" not in nodes[name]["metadata"]["labels"]


def test_node_ip_used(host: testinfra.host.Host) -> None:
    if not is_server(host):
        return
    node = nodes_from(host)[hostvars(host)["inventory_hostname"]]
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == hostvars(host)["node_ip"]


def test_kubeconfig_on_controller(host: testinfra.host.Host) -> None:
    variables = hostvars(host)
    first = variables["groups"]["k3s_servers"][0]
    if variables["inventory_hostname"] != first:
        return
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "kubeconfig.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert f"server: https://{variables['node_ip']}:6443\n" in text
    assert "client-key-data:" in text
    assert "127.0.0.1" not in text
