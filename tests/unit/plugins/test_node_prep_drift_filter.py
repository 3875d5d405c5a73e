"""plugins/filter/node_prep_state.py: what node_prep still has to change, from one read of the node."""

from __future__ import annotations

import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter.node_prep_state import node_prep_drift

MODULES = ["br_netfilter", "overlay", "iscsi_tcp", "dm_crypt"]
SYSCTL = {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1,
          "net.ipv4.ip_local_port_range": "32768 60999", "vm.max_map_count": 262144}
FSTAB_REGEXP = r"^([ \t]*[^#\s]+[ \t]+\S+[ \t]+swap[ \t].*)$"  # roles/node_prep/vars/main.yml
MODULES_LOAD = "# Ansible managed\nbr_netfilter\noverlay\n"
WANTED = {"modules": MODULES, "sysctl": SYSCTL, "packages": ["curl", "open-iscsi"],
          "services": ["systemd-timesyncd", "iscsid"], "fstab_regexp": FSTAB_REGEXP,
          "files": {"/etc/modules-load.d/k3s.conf": {"content": MODULES_LOAD, "mode": "0644", "owner": "root", "group": "root"}}}


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def read(rc=0, **sections):
    """The read's output: each given section after its marker line, in the order node_prep prints them."""
    lines = []
    for name in ("sysctl", "modules", "builtin", "packages", "swap", "fstab", "files", "services", "multipathd"):
        if name in sections:
            lines.append("==> node_prep:%s <==" % name)
            lines.extend(sections[name])
    return {"rc": rc, "stdout": "\n".join(lines), "stderr": ""}


PREPARED = dict(
    # sysctl prints multi-word values with a tab; overlay is built into the kernel
    sysctl=["net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1",
            "net.ipv4.ip_local_port_range = 32768\t60999", "vm.max_map_count = 262144"],
    modules=["br_netfilter", "iscsi_tcp", "dm_crypt"], builtin=["kernel/fs/overlayfs/overlay.ko"],
    packages=["python3-apt installed", "curl installed", "open-iscsi installed"],
    swap=[], fstab=["# <file system> <mount point> <type>", "UUID=1 / ext4 defaults 0 1", "#/swapfile none swap sw 0 0"],
    files=["/etc/modules-load.d/k3s.conf 644 root root %s" % sha1(MODULES_LOAD)],
    services=["systemd-timesyncd enabled active", "iscsid enabled active"], multipathd=[])


def prepared(**changes):
    """The read of PREPARED with some sections replaced."""
    return read(**{**PREPARED, **changes})


def test_a_prepared_node_needs_nothing():
    assert node_prep_drift(read(**PREPARED), WANTED) == {
        "modules": [], "sysctl": {}, "packages": [], "installed": ["curl", "open-iscsi", "python3-apt"],
        "files": [], "services": [], "swap_active": False, "fstab_swap": False, "multipathd": False}


def test_a_fresh_node_needs_what_differs_and_what_the_read_did_not_show():
    # br_netfilter not loaded yet: its net.bridge.* keys do not exist, `sysctl -e` skips them
    fresh = read(sysctl=["net.ipv4.ip_forward = 0", "net.ipv4.ip_local_port_range = 32768\t60999",
                         "vm.max_map_count = 65530"],
                 modules=["dm_crypt"], builtin=["kernel/drivers/md/dm-mod.ko"],
                 packages=["curl installed", "open-iscsi not-installed"],  # no line at all for python3-apt
                 swap=["/dev/vda3"], fstab=["UUID=1 / ext4 defaults 0 1", "  /dev/vda3\tnone swap sw 0 0"],
                 files=["/etc/modules-load.d/k3s.conf absent"],
                 services=["systemd-timesyncd  inactive", "iscsid disabled inactive"], multipathd=["present"])
    assert node_prep_drift(fresh, WANTED) == {
        "modules": ["br_netfilter", "overlay", "iscsi_tcp"],
        "sysctl": {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1, "vm.max_map_count": 262144},
        "packages": ["open-iscsi"], "installed": ["curl"], "files": ["/etc/modules-load.d/k3s.conf"],
        "services": ["systemd-timesyncd", "iscsid"], "swap_active": True, "fstab_swap": True, "multipathd": True}


@pytest.mark.parametrize("line", [
    "/etc/modules-load.d/k3s.conf 644 root root %s" % sha1(MODULES_LOAD + "extra\n"),  # content
    "/etc/modules-load.d/k3s.conf 600 root root %s" % sha1(MODULES_LOAD),  # mode
    "/etc/modules-load.d/k3s.conf 644 admin root %s" % sha1(MODULES_LOAD),  # owner
    "/etc/modules-load.d/k3s.conf 644 root adm %s" % sha1(MODULES_LOAD),  # group
    "/etc/modules-load.d/k3s.conf absent",
    "/etc/modules-load.d/k3s.conf 644 root",  # a line it cannot read
])
def test_a_file_differs_in_content_mode_owner_or_group(line):
    assert node_prep_drift(prepared(files=[line]), WANTED)["files"] == ["/etc/modules-load.d/k3s.conf"]


@pytest.mark.parametrize("state", ["enabled inactive", "disabled active", "enabled-runtime active", "masked inactive",
                                   "static active", ""])
def test_a_service_is_done_only_enabled_and_active(state):
    drift = node_prep_drift(prepared(services=["systemd-timesyncd " + state, "iscsid enabled active"]), WANTED)
    assert drift["services"] == ["systemd-timesyncd"]


@pytest.mark.parametrize("status", ["config-files", "half-installed", "unpacked", "not-installed"])
def test_a_package_counts_only_installed(status):
    drift = node_prep_drift(prepared(packages=["curl installed", "open-iscsi " + status]), WANTED)
    assert drift["packages"] == ["open-iscsi"]


def test_the_fstab_expression_is_the_replace_modules():
    # commented swap lines and other file systems stay; a swap line after a mount line is found (multiline)
    assert not node_prep_drift(prepared(fstab=["#UUID=2 none swap sw 0 0", "tmpfs /tmp tmpfs swap 0 0"]),
                               WANTED)["fstab_swap"]
    assert node_prep_drift(prepared(fstab=["UUID=1 / ext4 defaults 0 1", "/swapfile none swap sw 0 0"]),
                           WANTED)["fstab_swap"]


def test_module_names_and_values_as_the_modules_compare_them():
    # /proc/modules lists dashes as underscores; a builtin path must end in /<name>.ko, not just contain it
    current = read(sysctl=["kernel.printk = 4 4 1 7"], modules=["nf_conntrack"], builtin=["kernel/net/ipv4/xoverlay.ko"])
    drift = node_prep_drift(current, {"modules": ["nf-conntrack", "overlay"], "sysctl": {"kernel.printk": "4  4 1\t7"}})
    assert (drift["modules"], drift["sysctl"]) == (["overlay"], {})
    assert node_prep_drift(read(sysctl=["net.ipv4.ip_forward = 1"]), {"sysctl": {"net.ipv4.ip_forward": True}})["sysctl"] == {}


def test_a_section_the_read_did_not_print_is_left_to_the_modules():
    partial = dict(PREPARED)
    del partial["packages"], partial["services"], partial["files"]
    drift = node_prep_drift(read(**partial), WANTED)
    assert drift["packages"] == ["curl", "open-iscsi"] and drift["installed"] == []
    assert drift["services"] == ["systemd-timesyncd", "iscsid"] and drift["files"] == ["/etc/modules-load.d/k3s.conf"]
    assert (drift["modules"], drift["sysctl"], drift["swap_active"]) == ([], {}, False)


@pytest.mark.parametrize("failed", [
    {"rc": 127, "stdout": "", "stderr": "sh: 1: sysctl: not found"},
    {"skipped": True},
    None,
])
def test_a_read_that_failed_leaves_everything_to_the_modules(failed):
    assert node_prep_drift(failed, WANTED) == {
        "modules": MODULES, "sysctl": SYSCTL, "packages": ["curl", "open-iscsi"], "installed": [],
        "files": ["/etc/modules-load.d/k3s.conf"], "services": ["systemd-timesyncd", "iscsid"],
        "swap_active": True, "fstab_swap": True, "multipathd": True}


@pytest.mark.parametrize("wanted, text", [
    (["overlay"], "expected a mapping"),
    ({"modules": "overlay"}, "modules must be a list"),
    ({"sysctl": ["a"]}, "sysctl must be a dict"),
    ({"files": ["/etc/x"]}, "files must be a dict"),
])
def test_bad_input(wanted, text):
    with pytest.raises(AnsibleFilterError, match=text):
        node_prep_drift(read(), wanted)
