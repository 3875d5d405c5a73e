"""Smoke checks, run by molecule's testinfra verifier through molecule's inventory."""
from __future__ import annotations

import testinfra.host


def node_ip(host: testinfra.host.Host) -> str:
    return str(host.ansible.get_variables()["node_ip"])


def test_marker_file_from_converge(host: testinfra.host.Host) -> None:
    marker = host.file("/etc/dictamesh-smoke")
    assert marker.is_file
    assert marker.mode == 0o644
    assert marker.user == "root"
    assert marker.content_string == f"node_ip={node_ip(host)}\n"


def test_segment_address(host: testinfra.host.Host) -> None:
    addresses = host.interface("eth1").addresses
    assert node_ip(host) in addresses


def test_hostname_matches_inventory(host: testinfra.host.Host) -> None:
    assert host.check_output("hostname") == host.ansible.get_variables()["inventory_hostname"]


def test_br_netfilter_loaded(host: testinfra.host.Host) -> None:
    assert host.file("/proc/sys/net/bridge/bridge-nf-call-iptables").exists


def test_sshd_running(host: testinfra.host.Host) -> None:
    assert host.service("ssh").is_running


def test_asset_downloaded_from_mirror(host: testinfra.host.Host) -> None:
    asset = host.file("/usr/local/share/smoke-asset")
    assert asset.is_file
    assert asset.content_string == "smoke asset served like a K3S release file\n"
    assert host.ansible.get_variables()["vmlab_mirror_url"].startswith("http://10.0.2.2:")
