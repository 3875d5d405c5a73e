"""Unit tests for tests/vmlab/vmlab.py (no VM is booted here)."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

VMLAB_DIR = Path(__file__).resolve().parents[1] / "vmlab"
sys.path.insert(0, str(VMLAB_DIR))
vmlab = importlib.import_module("vmlab")


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def platforms() -> list[dict[str, Any]]:
    return [
        {"name": "s1", "groups": ["k3s_cluster"], "children": ["k3s_servers"]},
        {"name": "a1", "groups": ["k3s_cluster"], "children": ["k3s_agents"]},
        {"name": "a2", "groups": ["k3s_cluster"], "children": ["k3s_agents"]},
        {"name": "s2", "groups": ["k3s_cluster"], "vmlab_role": "server"},
    ]


def test_recipe_hash_tracks_build_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    base = vmlab.recipe_hash(vmlab.recipe("ssh-ed25519 AAA key"))
    assert base == vmlab.recipe_hash(vmlab.recipe("ssh-ed25519 AAA key\n"))
    assert base != vmlab.recipe_hash(vmlab.recipe("ssh-ed25519 BBB key"))
    monkeypatch.setattr(vmlab, "PACKAGES", vmlab.PACKAGES + ("vim",))
    assert base != vmlab.recipe_hash(vmlab.recipe("ssh-ed25519 AAA key"))


def test_recipe_ignores_the_apt_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    before = vmlab.recipe_hash(vmlab.recipe("k"))
    monkeypatch.setenv("VMLAB_MIRROR", "http://example.invalid/debian")
    assert vmlab.recipe_hash(vmlab.recipe("k")) == before


def test_spec_roles_from_groups_and_explicit_role() -> None:
    hosts = vmlab.hosts_from_spec(platforms())
    assert [(h.name, h.role) for h in hosts] == [
        ("s1", "server"), ("a1", "agent"), ("a2", "agent"), ("s2", "server")]


@pytest.mark.parametrize("bad", ["[{'name': 's1'}]", [], [{"groups": []}],
                                 [{"name": "x"}, {"name": "x"}],
                                 [{"name": "x", "vmlab_role": "master"}]])
def test_spec_rejects_bad_input(bad: Any) -> None:
    # A Jinja-rendered list arrives as a string: it must fail loudly, not boot nothing.
    with pytest.raises(vmlab.VmlabError):
        vmlab.hosts_from_spec(bad)


def test_addresses_macs_and_segment_port(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_spec(platforms())
    vmlab.assign_addresses(hosts, tmp_path / "a")
    assert {h.name: h.node_ip for h in hosts} == {
        "s1": "10.77.0.11", "a1": "10.77.0.21", "a2": "10.77.0.22", "s2": "10.77.0.12"}
    assert len({h.mac for h in hosts}) == len(hosts)
    assert vmlab.mcast_port(tmp_path / "a") == vmlab.mcast_port(tmp_path / "a")
    assert vmlab.mcast_port(tmp_path / "a") != vmlab.mcast_port(tmp_path / "b")
    low, high = vmlab.MCAST_PORT_RANGE
    assert low <= vmlab.mcast_port(tmp_path / "a") <= high


def test_too_many_servers(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_counts("x", 11, 0)
    with pytest.raises(vmlab.VmlabError):
        vmlab.assign_addresses(hosts, tmp_path)


def test_kernel_cmdline(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_counts("lab", 1, 1)
    vmlab.assign_addresses(hosts, tmp_path)
    cmdline = vmlab.kernel_cmdline(hosts[1], hosts).split()
    assert "ip=10.77.0.21:::255.255.255.0:lab-agent-1:eth1:off" in cmdline
    assert "systemd.hostname=lab-agent-1" in cmdline
    assert "vmlab.hosts=lab-server-1=10.77.0.11,lab-agent-1=10.77.0.21" in cmdline
    assert "root=/dev/vda" in cmdline and "console=ttyS0" in cmdline


def test_qemu_command_accel_and_network(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_counts("lab", 1, 0)
    vmlab.assign_addresses(hosts, tmp_path)
    hosts[0].ssh_port = 40022
    image = vmlab.Image.at(tmp_path / "img", tmp_path / "key")
    tcg = vmlab.qemu_command(image, hosts[0], hosts, tmp_path, False, 1536)
    joined = " ".join(tcg)
    assert "tcg,thread=multi,tb-size=256" in tcg and "-enable-kvm" not in tcg
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in joined
    assert f"mcast=230.0.0.1:{vmlab.mcast_port(tmp_path)}" in joined
    assert tcg[tcg.index("-m") + 1] == "1536"
    kvm = vmlab.qemu_command(image, hosts[0], hosts, tmp_path, True, 1536)
    assert kvm[kvm.index("-accel") + 1] == "kvm"


@pytest.mark.parametrize(("env", "expected"), [("kvm", True), ("tcg", False), ("TCG", False)])
def test_accel_override(monkeypatch: pytest.MonkeyPatch, env: str, expected: bool) -> None:
    monkeypatch.setenv("VMLAB_ACCEL", env)
    assert vmlab.kvm_usable() is expected


def test_kvm_needs_cpu_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VMLAB_ACCEL", raising=False)
    monkeypatch.setattr(vmlab.os, "access", lambda *_: True)
    real_read = Path.read_text

    def fake_read(self: Path, *args: Any, **kwargs: Any) -> str:
        if str(self) == "/proc/cpuinfo":
            return flags
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", fake_read)
    flags = "flags : fpu sse2 hypervisor"
    assert vmlab.kvm_usable() is False
    flags = "flags : fpu vmx sse2"
    assert vmlab.kvm_usable() is True


def test_inventory_groups_and_vars(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_counts("lab", 1, 2)
    vmlab.assign_addresses(hosts, tmp_path)
    for port, host in enumerate(hosts, start=2201):
        host.ssh_port = port
    inv = vmlab.inventory(hosts, Path("/k/id"), {"vmlab_mirror_url": "http://10.0.2.2:1"})
    cluster = inv["all"]["children"]["k3s_cluster"]["children"]
    assert list(cluster["k3s_servers"]["hosts"]) == ["lab-server-1"]
    assert list(cluster["k3s_agents"]["hosts"]) == ["lab-agent-1", "lab-agent-2"]
    agent = cluster["k3s_agents"]["hosts"]["lab-agent-2"]
    assert agent["node_ip"] == "10.77.0.22" and agent["ansible_port"] == 2203
    assert agent["ansible_ssh_private_key_file"] == "/k/id"
    assert inv["all"]["vars"] == {"vmlab_mirror_url": "http://10.0.2.2:1"}


def test_instance_config_is_real_data(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_counts("m", 1, 0)
    vmlab.assign_addresses(hosts, tmp_path)
    hosts[0].ssh_port = 2222
    opts = vmlab.UpOptions(state=tmp_path, hosts=hosts,
                           instance_config=tmp_path / "instance_config.yml",
                           molecule_inventory=tmp_path / "inventory" / "vmlab.yml")
    vmlab.write_outputs(opts, Path("/k/id"), {})
    yaml = pytest.importorskip("yaml")
    loaded = yaml.safe_load((tmp_path / "instance_config.yml").read_text())
    assert isinstance(loaded, list) and isinstance(loaded[0], dict)
    assert {"instance", "address", "user", "port", "identity_file"} <= set(loaded[0])
    assert loaded[0]["port"] == 2222
    extra = yaml.safe_load((tmp_path / "inventory" / "vmlab.yml").read_text())
    assert extra == {"all": {"hosts": {"m-server-1": {"node_ip": "10.77.0.11", "vmlab_forwards": {}}}}}
    assert json.loads((tmp_path / "instances.json").read_text()) == loaded


def fake_build(build: Path, pubkey: str, apt_mirror: str) -> None:
    for name in ("base.qcow2", "vmlinuz", "initrd.img"):
        (build / name).write_text(name)


def test_image_build_is_cached_and_atomic(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def failing_build(build: Path, pubkey: str, apt_mirror: str) -> None:
        calls.append("fail")
        (build / "base.qcow2").write_text("half")
        raise vmlab.VmlabError("killed")

    monkeypatch.setattr(vmlab, "build_image", failing_build)
    with pytest.raises(vmlab.VmlabError):
        vmlab.ensure_image()
    images = cache / "images"
    assert list(images.iterdir()) == []          # no half image is left to be reused

    def counting_build(build: Path, pubkey: str, apt_mirror: str) -> None:
        calls.append("ok")
        fake_build(build, pubkey, apt_mirror)

    monkeypatch.setattr(vmlab, "build_image", counting_build)
    image = vmlab.ensure_image()
    assert image.complete() and image.disk.read_text() == "base.qcow2"
    assert vmlab.ensure_image() == image
    assert calls == ["fail", "ok"]
    assert oct(image.key.stat().st_mode & 0o777) == "0o600"


def test_stale_build_and_old_recipe_are_pruned(cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    images = cache / "images"
    (images / ".build-dead-1").mkdir(parents=True)
    (images / ".build-dead-1" / "base.qcow2").write_text("half")
    (images / "0123456789abcdef").mkdir()
    monkeypatch.setattr(vmlab, "build_image", fake_build)
    image = vmlab.ensure_image()
    assert sorted(p.name for p in images.iterdir()) == [image.directory.name]


def test_down_is_idempotent(tmp_path: Path) -> None:
    assert vmlab.down(tmp_path / "missing") == 0
    state = tmp_path / "state"
    state.mkdir()
    (state / "x.pid").write_text(f"{os.getpid()}\n")   # not a QEMU: must not be killed
    (state / "x.qcow2").write_text("overlay")
    assert vmlab.down(state) == 0
    assert not (state / "x.qcow2").exists() and not (state / "x.pid").exists()
    assert vmlab.down(state) == 0


def test_status_of_a_stopped_state(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_counts("s", 1, 0)
    vmlab.assign_addresses(hosts, tmp_path)
    vmlab.save_state(tmp_path, hosts, {})
    rows = vmlab.status(tmp_path)
    assert rows[0]["name"] == "s-server-1" and rows[0]["running"] is False


def test_cli_errors_are_reported_not_raised(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps("not a list"))
    assert vmlab.main(["up", "--state", str(tmp_path / "s"), "--spec", str(spec)]) == 1
    assert "ERROR" in capsys.readouterr().err


def test_ports_are_distinct_and_servers_get_forwards(tmp_path: Path) -> None:
    hosts = vmlab.hosts_from_counts("p", 2, 2)
    vmlab.assign_addresses(hosts, tmp_path)
    vmlab.assign_ports(hosts)
    ports = [h.ssh_port for h in hosts] + [p for h in hosts for p in h.forwards.values()]
    assert len(ports) == len(set(ports)) == 4 + 2 * len(vmlab.SERVER_FORWARDS)
    assert set(hosts[0].forwards) == {"6443", "443", "80"} and hosts[3].forwards == {}
    fwd = vmlab.hostfwds(hosts[0])
    assert f"hostfwd=tcp:127.0.0.1:{hosts[0].ssh_port}-:22" in fwd
    assert f"hostfwd=tcp:127.0.0.1:{hosts[0].forwards['6443']}-:6443" in fwd


def test_molecule_vars_carry_the_forwarded_ports(tmp_path: Path) -> None:
    """molecule.yml reaches the API at 127.0.0.1:<forward of 6443> (cluster_kube_api_url)."""
    hosts = vmlab.hosts_from_counts("m", 1, 1)
    vmlab.assign_addresses(hosts, tmp_path)
    vmlab.assign_ports(hosts)
    carried = vmlab.molecule_vars(hosts, {})["all"]["hosts"]
    assert carried["m-server-1"]["vmlab_forwards"]["6443"] == hosts[0].forwards["6443"]
    assert carried["m-agent-1"] == {"node_ip": hosts[1].node_ip, "vmlab_forwards": {}}


def test_lab_info_lines() -> None:
    rows = [{"name": "lab-server-1", "role": "server", "node_ip": "10.77.0.11",
             "ssh": "127.0.0.1:2201", "running": True,
             "forwards": {"6443": 3001, "443": 3002, "80": 3003}},
            {"name": "lab-agent-1", "role": "agent", "node_ip": "10.77.0.21",
             "ssh": "127.0.0.1:2202", "running": True, "forwards": {}}]
    text = "\n".join(vmlab.lab_info_lines(rows, {"cluster_name": "mylab",
                                                 "platform_argocd_hostname": "cd.example"},
                                          Path("/k")))
    assert "/.kube/mylab.yaml" in text and "--server https://127.0.0.1:3001" in text
    assert "--resolve cd.example:3002:127.0.0.1 https://cd.example:3002/" in text
    assert "-p 2202" in text
    stopped = [dict(rows[0], running=False)]
    assert vmlab.lab_info_lines(stopped, {}, Path("/k")) == [
        "lab: no lab VM is running (make lab)"]


def test_prune_keeps_images_of_running_vms(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = cache / "images"
    (images / "old-in-use").mkdir(parents=True)
    (images / "old-unused").mkdir()
    monkeypatch.setattr(vmlab, "paths_in_use",
                        lambda: f"qemu-system-x86_64 -kernel {images}/old-in-use/vmlinuz")
    vmlab.prune_stale_builds(images, keep="current")
    assert sorted(p.name for p in images.iterdir()) == ["old-in-use"]


def test_rebuild_replaces_the_image(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmlab, "build_image", fake_build)
    image = vmlab.ensure_image()
    image.disk.write_text("old")
    monkeypatch.setattr(vmlab, "paths_in_use", lambda: f"-kernel {image.directory}/vmlinuz")
    rebuilt = vmlab.ensure_image(force=True)
    assert rebuilt == image and image.disk.read_text() == "base.qcow2"
    assert [p.name for p in (cache / "images").iterdir()] == [image.directory.name]


def test_up_refuses_a_running_state_and_leaves_it_alone(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = vmlab.hosts_from_counts("r", 1, 0)
    vmlab.assign_addresses(hosts, tmp_path)
    vmlab.save_state(tmp_path, hosts, {})
    monkeypatch.setattr(vmlab, "read_pid", lambda *_: 4242)
    downs: list[Path] = []
    monkeypatch.setattr(vmlab, "down", downs.append)
    monkeypatch.setattr(vmlab, "ensure_image", lambda: pytest.fail("must not build"))
    with pytest.raises(vmlab.VmlabError, match="already running"):
        vmlab.up(vmlab.UpOptions(state=tmp_path, hosts=vmlab.hosts_from_counts("r", 1, 0)))
    assert downs == []


def test_up_stops_what_it_started_when_a_step_fails(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    downs: list[Path] = []

    def start_vm(_image: Any, host: Any, *_args: Any) -> None:
        if started:
            raise vmlab.VmlabError("qemu failed")
        started.append(host.name)

    monkeypatch.setattr(vmlab, "ensure_image", lambda: vmlab.Image.at(tmp_path, tmp_path / "k"))
    monkeypatch.setattr(vmlab, "kvm_usable", lambda: False)
    monkeypatch.setattr(vmlab, "start_vm", start_vm)
    monkeypatch.setattr(vmlab, "down", downs.append)
    with pytest.raises(vmlab.VmlabError, match="qemu failed"):
        vmlab.up(vmlab.UpOptions(state=tmp_path / "s", hosts=vmlab.hosts_from_counts("f", 1, 1)))
    assert started == ["f-server-1"] and downs == [(tmp_path / "s").resolve()]
    assert not (tmp_path / "s" / "inventory.yml").exists()
