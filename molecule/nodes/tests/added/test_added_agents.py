"""After add_node.yml, on the agents: the new one runs K3S, the old one was left alone."""
from __future__ import annotations

import testinfra.host
from conftest import EPHEMERAL, K3S

NEW = ["ansible://k3s_spare"]
OLD = ["ansible://k3s_agents"]
testinfra_hosts = NEW + OLD


def test_agent_runs_k3s_at_the_inventory_version(host: testinfra.host.Host) -> None:
    version = host.ansible.get_variables()["cluster_k3s_version"]
    assert host.service("k3s-agent").is_running and host.service("k3s-agent").is_enabled
    assert host.check_output(f"{K3S} --version").startswith(f"k3s version {version} ")
    assert host.file("/etc/rancher/k3s/token").mode == 0o600


def test_existing_agent_not_restarted(host: testinfra.host.Host) -> None:
    inventory_name = host.ansible.get_variables()["inventory_hostname"]
    marker = EPHEMERAL / f"{inventory_name}-started-before-add"
    groups = host.ansible.get_variables()["group_names"]
    assert marker.exists() == ("k3s_agents" in groups)
    if marker.exists():
        now = host.check_output("systemctl show k3s-agent --property ActiveEnterTimestampMonotonic --value")
        assert now == marker.read_text().strip() and int(now) > 0
