"""After remove_node.yml -e remove_node=nd-agent-2: the node is out and clean, the rest untouched."""
from __future__ import annotations

import testinfra.host
from conftest import EPHEMERAL, changed, k3s_gone, ready_nodes

testinfra_hosts = ["ansible://all"]


def groups(host: testinfra.host.Host) -> list[str]:
    return host.ansible.get_variables()["group_names"]


def test_removed_node_clean_and_others_running(host: testinfra.host.Host) -> None:
    if "k3s_spare" in groups(host):
        k3s_gone(host)
    else:
        unit = "k3s" if "k3s_servers" in groups(host) else "k3s-agent"
        assert host.service(unit).is_running, unit


def test_cluster_lists_the_remaining_nodes_ready(host: testinfra.host.Host) -> None:
    if "k3s_servers" in groups(host):
        assert ready_nodes(host) == {"nd-server-1": True, "nd-agent-1": True}
    else:
        assert not host.file("/etc/rancher/k3s/k3s.yaml").exists  # kubeconfig only on servers


def test_remaining_agent_not_restarted(host: testinfra.host.Host) -> None:
    marker = EPHEMERAL / f"{host.ansible.get_variables()['inventory_hostname']}-started-before-add"
    assert marker.exists() == ("k3s_agents" in groups(host))
    if marker.exists():
        now = host.check_output("systemctl show k3s-agent --property ActiveEnterTimestampMonotonic --value")
        assert now == marker.read_text().strip()


def test_first_run_removed_and_the_second_changed_nothing() -> None:
    assert changed("remove-first-run")["nd-agent-2"] > 0
    assert changed("remove-first-run")["nd-server-1"] > 0  # drain and delete from the first server
    assert set(changed("remove-second-run").values()) == {0}
