"""HA join order on 3 servers (molecule ha), from the K3S stand-in's records.

The stand-in annotates each node with its join sequence, join time, how it started
(cluster-init or join) and through which server it joined; standin-starts.log holds each
K3S start. Expected: the first inventory server founded the cluster, the others joined it in
inventory order, each only after the previous one was up (serial: 1 + wait for Ready).
After side_effect.yml (marker file `rebuilt-first-server`), the wiped first server must have
joined a running server instead of founding a new cluster.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import testinfra.host

K3S = "/usr/local/bin/k3s"


def rebuilt() -> bool:
    return (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rebuilt-first-server").exists()


def nodes(host: testinfra.host.Host) -> dict[str, dict[str, Any]]:
    items = json.loads(host.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    return {i["metadata"]["name"]: i["metadata"] for i in items}


def test_join_order(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    servers = variables["groups"]["k3s_servers"]
    if variables["inventory_hostname"] != servers[1]:
        return  # checked once, from the second server (up in both phases)
    meta = nodes(host)
    assert set(meta) == set(servers)
    notes = {name: m["annotations"] for name, m in meta.items()}
    # the original servers in inventory order; after the rebuild the first server's old member and
    # Node were removed and it joined again as a new member (the last join)
    original = servers[1:] if rebuilt() else servers
    assert [notes[s]["k3s.standin/join-seq"] for s in original] == ["2", "3"] if rebuilt() else ["1", "2", "3"]
    if rebuilt():
        assert notes[servers[0]]["k3s.standin/join-seq"] == "4"
        assert notes[servers[0]]["k3s.standin/mode"] == "join"
        assert notes[servers[0]]["k3s.standin/joined-via"] in servers[1:]
    else:
        assert notes[servers[0]]["k3s.standin/mode"] == "cluster-init"
    for server in servers[1:]:
        assert notes[server]["k3s.standin/mode"] == "join"
        assert notes[server]["k3s.standin/joined-via"] == servers[0]
    order = servers[1:] + servers[:1] if rebuilt() else servers
    times = [float(notes[s]["k3s.standin/joined-at"]) for s in order]
    assert times == sorted(times)
    assert len({n["k3s.standin/cluster-id"] for n in notes.values()}) == 1
    for server in servers:
        assert meta[server]["labels"].get("node-role.kubernetes.io/etcd") == "true", server


def test_each_server_joined_after_previous_was_up(host: testinfra.host.Host) -> None:
    """Server n+1 registered after server n, and no later than its own K3S reported ready."""
    variables = host.ansible.get_variables()
    servers = variables["groups"]["k3s_servers"]
    index = servers.index(variables["inventory_hostname"])
    if index == 0 or (index == 1 and rebuilt()):
        return  # the rebuilt first server joined again after the others
    joined = {name: float(m["annotations"]["k3s.standin/joined-at"]) for name, m in nodes(host).items()}
    own_start = float(host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.split()[0])
    assert joined[servers[index - 1]] < joined[servers[index]] <= own_start


def test_every_server_is_one_etcd_member(host: testinfra.host.Host) -> None:
    """Each server's Node names its own etcd member (k3s-io/k3s: server/db/etcd/name, annotation
    etcd.k3s.cattle.io/node-name); after the rebuild the first server is a new member, the old gone."""
    variables = host.ansible.get_variables()
    name = variables["inventory_hostname"]  # the node names are the inventory names (test_join_order)
    own = host.file("/var/lib/rancher/k3s/server/db/etcd/name").content_string.strip()
    meta = nodes(host)
    members = {m["annotations"]["etcd.k3s.cattle.io/node-name"] for m in meta.values()}
    assert len(members) == len(meta) == 3
    assert meta[name]["annotations"]["etcd.k3s.cattle.io/node-name"] == own
    marker = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "old-member-of-first-server"
    if rebuilt() and variables["inventory_hostname"] == variables["groups"]["k3s_servers"][0]:
        assert marker.read_text().strip() not in members | {own}


def test_config_records_init_or_join(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    servers = variables["groups"]["k3s_servers"]
    text = host.file("/etc/rancher/k3s/config.yaml").content_string
    if variables["inventory_hostname"] == servers[0] and not rebuilt():
        assert "cluster-init: true" in text and "server:" not in text
    else:
        assert "cluster-init" not in text
        assert "server: https://" in text and ":6443" in text


def test_rebuilt_first_server_joined_the_running_cluster(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    servers = variables["groups"]["k3s_servers"]
    if variables["inventory_hostname"] != servers[0] or not rebuilt():
        return
    starts = host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.split()
    assert starts[2] == "join", starts
    text = host.file("/etc/rancher/k3s/config.yaml").content_string
    assert f"server: https://{variables['node_ip']}:" not in text  # joined a peer, not itself
    meta = nodes(host)
    assert set(meta) == set(servers)
    assert len({m["annotations"]["k3s.standin/cluster-id"] for m in meta.values()}) == 1
    assert starts[3] == meta[servers[1]]["annotations"]["k3s.standin/cluster-id"]
