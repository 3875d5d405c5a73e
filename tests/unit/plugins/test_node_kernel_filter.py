"""plugins/filter/node_kernel.py: what node_prep still has to load and set, from one read."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter.node_kernel import node_kernel_drift

MODULES = ["br_netfilter", "overlay", "iscsi_tcp", "dm_crypt"]
SYSCTL = {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1,
          "net.ipv4.ip_local_port_range": "32768 60999", "vm.max_map_count": 262144}


def read(sysctl_lines, modules=(), builtin=(), rc=0):
    stdout = "\n".join(list(sysctl_lines) + ["#modules"] + list(modules) + ["#builtin"] + list(builtin))
    return {"rc": rc, "stdout": stdout, "stderr": ""}


def test_a_node_already_prepared_needs_nothing():
    # sysctl prints multi-word values with a tab; modules.builtin paths of a module built into the kernel
    current = read(["net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1",
                    "net.ipv4.ip_local_port_range = 32768\t60999", "vm.max_map_count = 262144"],
                   modules=["br_netfilter", "iscsi_tcp", "dm_crypt"], builtin=["kernel/fs/overlayfs/overlay.ko"])
    assert node_kernel_drift(current, MODULES, SYSCTL) == {"modules": [], "sysctl": {}}


def test_a_fresh_node_needs_what_differs_and_what_the_read_did_not_show():
    # br_netfilter not loaded yet: its net.bridge.* keys do not exist, `sysctl -e` skips them
    fresh = read(["net.ipv4.ip_forward = 0", "net.ipv4.ip_local_port_range = 32768\t60999",
                  "vm.max_map_count = 65530"], modules=["dm_crypt"], builtin=["kernel/drivers/md/dm-mod.ko"])
    assert node_kernel_drift(fresh, MODULES, SYSCTL) == {
        "modules": ["br_netfilter", "overlay", "iscsi_tcp"],
        "sysctl": {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1, "vm.max_map_count": 262144}}


def test_module_names_and_values_as_the_modules_compare_them():
    # /proc/modules lists dashes as underscores; a builtin path must end in /<name>.ko, not just contain it
    current = read(["kernel.printk = 4 4 1 7"], modules=["nf_conntrack"], builtin=["kernel/net/ipv4/xoverlay.ko"])
    assert node_kernel_drift(current, ["nf-conntrack", "overlay"], {"kernel.printk": "4  4 1\t7"}) == {
        "modules": ["overlay"], "sysctl": {}}
    assert node_kernel_drift(read(["net.ipv4.ip_forward = 1"]), [], {"net.ipv4.ip_forward": True}) == {
        "modules": [], "sysctl": {}}


@pytest.mark.parametrize("failed", [
    {"rc": 127, "stdout": "", "stderr": "sh: 1: sysctl: not found"},
    {"skipped": True},
    None,
])
def test_a_read_that_failed_leaves_everything_to_the_modules(failed):
    assert node_kernel_drift(failed, MODULES, SYSCTL) == {"modules": MODULES, "sysctl": SYSCTL}


def test_bad_input():
    with pytest.raises(AnsibleFilterError, match="expected a list of modules and a mapping"):
        node_kernel_drift(read([]), "overlay", SYSCTL)
