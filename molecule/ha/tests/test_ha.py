"""HA join order on 3 servers (molecule ha), from the K3S stand-in's records.

The stand-in annotates each node with its join sequence, join time, how it started
(cluster-init or join) and through which server it joined; standin-starts.log holds each
K3S start. Expected: the first inventory server founded the cluster, the others joined it in
inventory order, each only after the previous one was up (serial: 1 + wait for Ready).
"""
from __future__ import annotations

import json

import testinfra.host

K3S = "/usr/local/bin/k3s"


def test_join_order(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    servers = variables["groups"]["k3s_servers"]
    if variables["inventory_hostname"] != servers[0]:
        return
    items = json.loads(host.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    nodes = {i["metadata"]["name"]: i["metadata"] for i in items}
    assert set(nodes) == set(servers)
    notes = {name: meta["annotations"] for name, meta in nodes.items()}
    assert [notes[s]["k3s.standin/join-seq"] for s in servers] == ["1", "2", "3"]
    assert notes[servers[0]]["k3s.standin/mode"] == "cluster-init"
    for server in servers[1:]:
        assert notes[server]["k3s.standin/mode"] == "join"
        assert notes[server]["k3s.standin/joined-via"] == servers[0]
    times = [float(notes[s]["k3s.standin/joined-at"]) for s in servers]
    assert times == sorted(times)
    for server in servers:
        labels = nodes[server]["labels"]
        assert labels.get("node-role.kubernetes.io/etcd") == "true", server


def test_each_server_joined_after_previous_was_up(host: testinfra.host.Host) -> None:
    """Server n+1 registered after server n's K3S reported ready (its start log line)."""
    variables = host.ansible.get_variables()
    servers = variables["groups"]["k3s_servers"]
    if variables["inventory_hostname"] == servers[0]:
        return
    index = servers.index(variables["inventory_hostname"])
    items = json.loads(host.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    joined = {i["metadata"]["name"]: float(i["metadata"]["annotations"]["k3s.standin/joined-at"]) for i in items}
    own_start = float(host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.split()[0])
    assert joined[servers[index - 1]] < joined[servers[index]] <= own_start


def test_config_records_join_target(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    servers = variables["groups"]["k3s_servers"]
    text = host.file("/etc/rancher/k3s/config.yaml").content_string
    if variables["inventory_hostname"] == servers[0]:
        assert "cluster-init: true" in text and "server:" not in text
    else:
        assert "cluster-init" not in text
        assert "server: https://" in text and ":6443" in text
