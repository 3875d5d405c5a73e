"""Before any removal: each node carries what a running K3S leaves behind (the stand-in's runtime
module), so that the reset and remove_node checks (conftest.k3s_gone) prove a clean-up, not an absence."""
from __future__ import annotations

import testinfra.host
from conftest import k3s_rules, leftovers

testinfra_hosts = ["ansible://all"]


def test_node_carries_shims_containers_mounts_and_network(host: testinfra.host.Host) -> None:
    left = leftovers(host)
    procs = left["processes"].values()
    shims = [p for p in procs if "/var/lib/rancher/k3s/data/" in p["args"] and "/bin/containerd-shim" in p["args"]]
    containers = [p for p in procs if p["container"]]
    assert len(shims) >= 2, left["processes"]
    # Container processes do not name the data dir: `pkill --full /var/lib/rancher/k3s/data/` misses them.
    assert len(containers) >= 3 and not any("/var/lib/rancher/k3s" in p["args"] for p in containers), containers
    assert any(m.startswith("/run/k3s/containerd/") for m in left["mounts"]), left["mounts"]
    assert any(m.startswith("/var/lib/kubelet/pods/") for m in left["mounts"]), left["mounts"]
    assert {p["cwd"] for p in containers} & set(left["mounts"]), "no container works inside a mount"
    assert left["netns"] and left["cni0_ports"], left
    assert {"cni0", "flannel.1"} <= set(left["links"]), left["links"]
    for chain in ("KUBE-", "CNI-", "FLANNEL-"):
        assert any(chain in line for line in k3s_rules(left["iptables"])), chain
    assert k3s_rules(left["ip6tables"]), "ip6tables"


def test_a_plain_umount_fails_while_the_containers_run(host: testinfra.host.Host) -> None:
    left = leftovers(host)
    used = {p["cwd"] for p in left["processes"].values() if p["container"]}
    mounts = [m for m in left["mounts"] if m.startswith("/var/lib/kubelet/pods/") and m in used]
    result = host.run("umount %s", mounts[0])
    assert result.rc != 0 and "busy" in result.stderr.lower(), (result.rc, result.stderr)
