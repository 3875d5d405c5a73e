"""After reset.yml -e confirm=molecule-nodes: K3S is gone, the snapshot and node preparation stay."""
from __future__ import annotations

import testinfra.host
from conftest import changed, k3s_gone

testinfra_hosts = ["ansible://k3s_cluster"]
KEPT = "/var/lib/rancher/k3s-snapshots-molecule-nodes"


def test_k3s_gone(host: testinfra.host.Host) -> None:
    k3s_gone(host)


def test_node_preparation_kept(host: testinfra.host.Host) -> None:
    assert "net.ipv4.ip_forward" in host.file("/etc/sysctl.d/90-k3s.conf").content_string
    assert host.file("/etc/modules-load.d/k3s.conf").exists


def test_snapshot_kept_on_the_first_server_only(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    if variables["inventory_hostname"] == variables["groups"]["k3s_servers"][0]:
        kept = host.file(KEPT)
        assert kept.is_directory and any(n.startswith("backup-") for n in kept.listdir()), kept.listdir()
    else:
        assert not host.file(KEPT).exists


def test_reset_changed_every_node_once() -> None:
    assert all(count > 0 for count in changed("reset-first-run").values())
    assert set(changed("reset-first-run")) == {"nd-server-1", "nd-agent-1"}
    assert set(changed("reset-second-run").values()) == {0}
