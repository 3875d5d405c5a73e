"""After add_node.yml, on the first server: the new agent is a Ready node beside the others."""
from __future__ import annotations

import testinfra.host
from conftest import ready_nodes

testinfra_hosts = ["ansible://k3s_servers"]


def test_every_node_ready_including_the_new_one(host: testinfra.host.Host) -> None:
    assert ready_nodes(host) == {"nd-server-1": True, "nd-agent-1": True, "nd-agent-2": True}
