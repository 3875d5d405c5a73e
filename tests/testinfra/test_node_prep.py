"""Testinfra checks of dictamesh.k3s_gitops.node_prep on every node of a cluster scenario.

Run against an Ansible inventory, for example:

    .venv/bin/pytest tests/testinfra/test_node_prep.py \
        --hosts='ansible://k3s_cluster' --ansible-inventory=<inventory.yml>

What is expected comes from the role's defaults (roles/node_prep/defaults/main.yml) overridden
by the host's inventory variables `node_prep_*` (plain values only: a Jinja expression cannot be
evaluated here and is ignored). The scenario-level switches fall back to the cluster-wide inventory
inputs the playbooks map into the role: `platform_longhorn_enabled` for
`node_prep_longhorn_enabled`, `cluster_firewall` for `node_prep_firewall`. A few K3S requirements
are also checked against fixed values, so that a wrong default cannot pass unnoticed.
"""
from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLE_DIR = Path(__file__).resolve().parents[2] / "roles" / "node_prep"
MODULES_LOAD_FILE = "/etc/modules-load.d/k3s.conf"
SYSCTL_FILE = "/etc/sysctl.d/90-k3s.conf"
NFT_FILE = "/etc/nftables.d/k3s.nft"
NFT_TABLE = "k3s_node_prep"

# What K3S itself needs, independent of the role's defaults (docs.k3s.io, requirements).
K3S_REQUIRED_MODULES = ("br_netfilter", "overlay")
K3S_REQUIRED_SYSCTL = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
LONGHORN_MODULES = ("iscsi_tcp", "dm_crypt")
FAMILY = {
    "debian": {
        "base": ["ca-certificates", "curl", "iptables", "kmod", "procps"],
        "longhorn": ["open-iscsi", "nfs-common", "cryptsetup"],
        "time_sync_service": "systemd-timesyncd",
        "nftables_conf": "/etc/nftables.conf",
    },
    "redhat": {
        "base": ["ca-certificates", "curl", "iptables", "kmod", "procps-ng"],
        "longhorn": ["iscsi-initiator-utils", "nfs-utils", "cryptsetup"],
        "time_sync_service": "chronyd",
        "nftables_conf": "/etc/sysconfig/nftables.conf",
    },
}
FALLBACKS = {
    "node_prep_longhorn_enabled": "platform_longhorn_enabled",
    "node_prep_firewall": "cluster_firewall",
}


@functools.lru_cache(maxsize=1)
def role_defaults() -> dict[str, Any]:
    return yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text(encoding="utf-8"))


def is_plain(value: Any) -> bool:
    """True unless the value is (or contains) a Jinja expression."""
    return "{{" not in str(value) and "{%" not in str(value)


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def setting(hostvars: dict[str, Any], name: str) -> Any:
    """The value the role ran with: inventory override, fallback input, else the role default."""
    for key in (name, FALLBACKS.get(name)):
        if key and key in hostvars and is_plain(hostvars[key]):
            return hostvars[key]
    return role_defaults()[name]


@pytest.fixture(scope="module")
def hostvars(host: Any) -> dict[str, Any]:
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def family(host: Any) -> dict[str, Any]:
    distro = host.system_info.distribution.lower()
    if distro in {"debian", "ubuntu"}:
        return FAMILY["debian"]
    if distro in {"rhel", "redhat", "centos", "rocky", "almalinux", "fedora"}:
        return FAMILY["redhat"]
    pytest.fail(f"node_prep does not support distribution {distro!r}")


@pytest.fixture(scope="module")
def longhorn(hostvars: dict[str, Any]) -> bool:
    return as_bool(setting(hostvars, "node_prep_longhorn_enabled"))


@pytest.fixture(scope="module")
def node_role(hostvars: dict[str, Any]) -> str:
    value = hostvars.get("node_prep_node_role")
    if value is not None and is_plain(value):
        return str(value)
    return "server" if "k3s_servers" in hostvars.get("group_names", []) else "agent"


@pytest.fixture(scope="module")
def expected_modules(hostvars: dict[str, Any], longhorn: bool) -> list[str]:
    modules = list(setting(hostvars, "node_prep_kernel_modules"))
    if longhorn:
        modules += [m for m in LONGHORN_MODULES if m not in modules]
    return modules


@pytest.fixture(scope="module")
def expected_sysctl(hostvars: dict[str, Any]) -> dict[str, str]:
    wanted = dict(setting(hostvars, "node_prep_sysctl"))
    wanted.update(setting(hostvars, "node_prep_sysctl_extra") or {})
    return {key: " ".join(str(value).split()) for key, value in wanted.items()}


@pytest.fixture(scope="module")
def firewall(hostvars: dict[str, Any]) -> str:
    return str(setting(hostvars, "node_prep_firewall"))


@pytest.fixture(scope="module")
def firewall_ports(hostvars: dict[str, Any], node_role: str) -> list[tuple[str, str]]:
    key = f"node_prep_firewall_{node_role}_ports"
    ports = list(setting(hostvars, key)) + list(setting(hostvars, "node_prep_firewall_extra_ports"))
    if as_bool(setting(hostvars, "node_prep_firewall_wireguard")):
        ports += [{"port": "51820", "proto": "udp"}, {"port": "51821", "proto": "udp"}]
    if as_bool(setting(hostvars, "node_prep_firewall_spegel")):
        ports += [{"port": "5001", "proto": "tcp"}]
    return [(str(p["port"]), str(p["proto"])) for p in ports]


def config_lines(content: str) -> list[str]:
    return [line.strip() for line in content.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def parse_sysctl_output(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.strip()] = " ".join(value.split())
    return values


def test_k3s_required_modules_are_configured(expected_modules: list[str]) -> None:
    assert set(K3S_REQUIRED_MODULES) <= set(expected_modules)


@pytest.mark.parametrize("module", K3S_REQUIRED_MODULES + LONGHORN_MODULES)
def test_kernel_module_loaded(host: Any, expected_modules: list[str], module: str) -> None:
    if module not in expected_modules:
        pytest.skip(f"{module} is not expected on this host")
    # /sys/module/<name> exists for loaded modules and for built-in ones alike.
    assert host.file(f"/sys/module/{module}").is_directory, f"{module} is not loaded"


def test_modules_persisted(host: Any, expected_modules: list[str]) -> None:
    conf = host.file(MODULES_LOAD_FILE)
    assert conf.is_file
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    assert config_lines(conf.content_string) == expected_modules


def test_k3s_required_sysctl_is_configured(expected_sysctl: dict[str, str]) -> None:
    for key, value in K3S_REQUIRED_SYSCTL.items():
        assert expected_sysctl.get(key) == value, key


def test_sysctl_persisted(host: Any, expected_sysctl: dict[str, str]) -> None:
    conf = host.file(SYSCTL_FILE)
    assert conf.is_file
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    assert parse_sysctl_output("\n".join(config_lines(conf.content_string))) == expected_sysctl


def test_sysctl_running_values(host: Any, expected_sysctl: dict[str, str]) -> None:
    cmd = host.run("sysctl " + " ".join(shlex.quote(k) for k in expected_sysctl))
    assert cmd.rc == 0, cmd.stderr
    assert parse_sysctl_output(cmd.stdout) == expected_sysctl


def test_swap_off(host: Any, hostvars: dict[str, Any]) -> None:
    if not as_bool(setting(hostvars, "node_prep_swap_disable")):
        pytest.skip("node_prep_swap_disable is false")
    swaps = host.file("/proc/swaps").content_string.splitlines()
    assert swaps[1:] == [], f"swap still active: {swaps[1:]}"
    fstab = host.file("/etc/fstab")
    if fstab.exists:
        active = [line for line in config_lines(fstab.content_string) if re.split(r"\s+", line)[2:3] == ["swap"]]
        assert active == [], f"swap entries left in /etc/fstab: {active}"


def test_base_packages(host: Any, family: dict[str, Any], hostvars: dict[str, Any]) -> None:
    wanted = family["base"] + list(setting(hostvars, "node_prep_packages"))
    missing = [name for name in wanted if not host.package(name).is_installed]
    assert missing == []


def test_time_sync(host: Any, family: dict[str, Any], hostvars: dict[str, Any]) -> None:
    if not as_bool(setting(hostvars, "node_prep_time_sync")):
        pytest.skip("node_prep_time_sync is false")
    name = hostvars.get("node_prep_time_sync_service")
    service = host.service(name if name and is_plain(name) else family["time_sync_service"])
    assert service.is_enabled
    assert service.is_running


def test_longhorn_packages(host: Any, family: dict[str, Any], longhorn: bool) -> None:
    if not longhorn:
        pytest.skip("Longhorn is not enabled")
    missing = [name for name in family["longhorn"] if not host.package(name).is_installed]
    assert missing == []


def test_longhorn_iscsid(host: Any, longhorn: bool) -> None:
    if not longhorn:
        pytest.skip("Longhorn is not enabled")
    iscsid = host.service("iscsid")
    assert iscsid.is_enabled
    assert iscsid.is_running


def test_longhorn_multipath_blacklist(host: Any, hostvars: dict[str, Any], longhorn: bool) -> None:
    if not longhorn or not as_bool(setting(hostvars, "node_prep_longhorn_multipath_blacklist")):
        pytest.skip("Longhorn multipath blacklist not expected")
    conf = host.file("/etc/multipath.conf")
    if not host.file("/usr/sbin/multipathd").exists:
        # Per Longhorn docs the blacklist is only for hosts that run multipathd.
        assert not conf.exists or "dictamesh.k3s_gitops.node_prep" not in conf.content_string
        return
    assert re.search(r'blacklist\s*\{\s*devnode\s+"\^sd\[a-z0-9\]\+"\s*\}', conf.content_string)


def test_firewall_nftables(host: Any, family: dict[str, Any], firewall: str,
                           firewall_ports: list[tuple[str, str]]) -> None:
    if firewall != "nftables":
        pytest.skip(f"firewall is {firewall}")
    rules = host.file(NFT_FILE)
    assert (rules.user, rules.mode) == ("root", 0o644)
    assert f'include "{NFT_FILE}"' in config_lines(host.file(family["nftables_conf"]).content_string)
    assert host.service("nftables").is_enabled
    listing = host.check_output(f"nft list table inet {NFT_TABLE}")
    assert "policy drop" in listing
    assert re.search(r"tcp dport 22 accept", listing)
    for port, proto in firewall_ports:
        assert re.search(rf"{proto} dport {port.replace(':', '-')} accept", listing), f"{port}/{proto}"


def test_firewall_ufw(host: Any, firewall: str, firewall_ports: list[tuple[str, str]]) -> None:
    if firewall != "ufw":
        pytest.skip(f"firewall is {firewall}")
    status = host.check_output("ufw status")
    assert "Status: active" in status
    for port, proto in firewall_ports:
        assert re.search(rf"^{re.escape(port)}/{proto}\s+ALLOW", status, re.M), f"{port}/{proto}"


def test_firewall_firewalld(host: Any, firewall: str, firewall_ports: list[tuple[str, str]]) -> None:
    if firewall != "firewalld":
        pytest.skip(f"firewall is {firewall}")
    opened = host.check_output("firewall-cmd --list-ports").split()
    for port, proto in firewall_ports:
        assert f"{port.replace(':', '-')}/{proto}" in opened


def test_no_firewall_table_when_disabled(host: Any, firewall: str) -> None:
    if firewall != "none":
        pytest.skip(f"firewall is {firewall}")
    assert not host.file(NFT_FILE).exists
