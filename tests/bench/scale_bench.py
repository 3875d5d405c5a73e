"""`scale`: controller time per host as the host count grows (3, 10, 30 hosts).

Hosts are podman containers (systemd as PID 1, sshd) made from the vmlab base image's root
file system, reached by ansible over SSH at their bridge addresses (the real connection path,
ControlPersist as in ansible.cfg). The playbook is playbooks/k3s_cluster.yml without its
node_prep play (modprobe and host-wide sysctls cannot run in containers): input validation
(with the release checksum check against the mirror), the K3S server (1), the K3S agents
(N-1) with the K3S stand-in from an artifact mirror on the bridge, every node Ready, the
kubeconfig fetched. Each size gets fresh containers; the playbook runs twice (first install,
then the idempotent re-run); wall time and the controller CPU (user+sys of ansible-playbook
and all its children, plus the SSH masters left behind) are reported per host.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from common import (OUTPUT, REPO, ansible_env, log, now_iso, parse_json_output, qemu_vms_running,
                    recap, run_timed, venv_tool)

sys.path.insert(0, str(REPO / "tests" / "vmlab"))
import mirror  # noqa: E402
import vmlab  # noqa: E402

WORK = OUTPUT / "scale"
PREFIX = "bench-scale"
VERSION = "v1.34.1+k3s1"
NETWORK = "podman"
IMAGE_RECIPE = "2"
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
"""


def podman(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CONTAINERS_CONF=str(WORK / "containers.conf"))
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=env,
                          stdin=kw.pop("stdin", subprocess.DEVNULL), check=False, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} failed: {proc.stderr[-2000:]}")
    return proc


def ensure_image() -> str:
    """localhost/dictamesh-bench-node:<vmlab recipe hash>: the vmlab rootfs, no networkd/fstab."""
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "containers.conf").write_text(CONTAINERS_CONF, encoding="utf-8")
    image = vmlab.ensure_image()
    # udev is masked: with it, every container's eth0 got the same MAC (MACAddressPolicy=
    # persistent from the same machine-id) and the bridge sent every address to one container.
    tag = f"localhost/dictamesh-bench-node:{image.directory.name}-{IMAGE_RECIPE}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    log(f"building {tag} from {image.disk}")
    raw, mnt = WORK / "root.raw", WORK / "mnt"
    mnt.mkdir(exist_ok=True)
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image.disk), str(raw)], check=True)
    subprocess.run(["mount", "-o", "loop,ro", str(raw), str(mnt)], check=True)
    try:
        tar = subprocess.Popen(["tar", "-C", str(mnt), "-c", "."], stdout=subprocess.PIPE)
        podman("import", "-", f"{tag}-base", stdin=tar.stdout)
        tar.wait()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        raw.unlink(missing_ok=True)
    podman("rm", "-f", f"{PREFIX}-build", check=False)
    podman("run", "--name", f"{PREFIX}-build", f"{tag}-base", "/bin/sh", "-c",
           "systemctl mask systemd-networkd.service systemd-networkd.socket "
           "systemd-network-generator.service systemd-udevd.service systemd-udevd-control.socket "
           "systemd-udevd-kernel.socket && systemctl disable vmlab-boot.service && : > /etc/fstab "
           "&& : > /etc/machine-id")
    podman("commit", "--change", "CMD=/sbin/init", "--change", "STOPSIGNAL=SIGRTMIN+3",
           f"{PREFIX}-build", tag)
    podman("rm", "-f", f"{PREFIX}-build")
    podman("rmi", f"{tag}-base", check=False)
    return tag


def remove_containers() -> None:
    names = podman("ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^{PREFIX}-",
                   check=False).stdout.split()
    if names:
        podman("rm", "-f", "-t", "2", *names, check=False)


def start_containers(tag: str, count: int) -> dict[str, str]:
    """Start `count` containers; return {name: address}."""
    remove_containers()
    names = [f"{PREFIX}-{i}" for i in range(1, count + 1)]
    for name in names:
        podman("run", "-d", "--name", name, "--hostname", name, "--privileged",
               "--systemd=always", "--network", NETWORK, tag, "/sbin/init")
    out = json.loads(podman("inspect", *names).stdout)
    return {c["Name"].lstrip("/"): c["NetworkSettings"]["Networks"][NETWORK]["IPAddress"] for c in out}


def wait_ssh(addresses: dict[str, str], key: Path, timeout: float = 300) -> float:
    started = time.monotonic()
    pending = dict(addresses)
    while pending:
        for name, address in list(pending.items()):
            proc = subprocess.run(["ssh", "-i", str(key), *vmlab.SSH_OPTS, "-o", "ConnectTimeout=3",
                                   f"root@{address}", "systemctl is-system-running --wait >/dev/null; true"],
                                  capture_output=True, stdin=subprocess.DEVNULL, check=False, timeout=120)
            if proc.returncode == 0:
                del pending[name]
        if pending and time.monotonic() - started > timeout:
            raise RuntimeError(f"no SSH on {sorted(pending)}")
        if pending:
            time.sleep(2)
    return time.monotonic() - started


def gateway() -> str:
    data = json.loads(podman("network", "inspect", NETWORK).stdout)
    return str(data[0]["subnets"][0]["gateway"])


def playbook() -> Path:
    """playbooks/k3s_cluster.yml without the node_prep play (written beside the run's files)."""
    plays = yaml.safe_load((REPO / "playbooks" / "k3s_cluster.yml").read_text(encoding="utf-8"))
    kept = [p for p in plays if not any(
        (r.get("role") if isinstance(r, dict) else r) == "dictamesh.k3s_gitops.node_prep"
        for r in p.get("roles", []))]
    assert len(kept) == len(plays) - 1, "expected exactly one node_prep play in k3s_cluster.yml"
    path = WORK / "k3s_cluster_without_node_prep.yml"
    path.write_text("---\n# Generated by tests/bench/scale_bench.py from playbooks/k3s_cluster.yml\n"
                    + yaml.safe_dump(kept, sort_keys=False, width=200), encoding="utf-8")
    return path


def write_inventory(addresses: dict[str, str], key: Path, mirror_url: str, size: int) -> Path:
    names = sorted(addresses, key=lambda n: int(n.rsplit("-", 1)[1]))
    hostvars = {n: {"ansible_host": addresses[n], "node_ip": addresses[n]} for n in names}
    inv = {"all": {"vars": {
        "ansible_user": "root", "ansible_ssh_private_key_file": str(key),
        "ansible_python_interpreter": "/usr/bin/python3",
        "cluster_name": f"bench-scale-{size}", "cluster_k3s_version": VERSION,
        "cluster_k3s_download_base_url": mirror_url,
        "cluster_token": "bench-scale-token-not-a-secret-0123456789",
        "cluster_kubeconfig_path": str(WORK / f"kubeconfig-{size}.yaml"),
        "cluster_ready_timeout": 600},
        "children": {"k3s_cluster": {"children": {
            "k3s_servers": {"hosts": {names[0]: hostvars[names[0]]}},
            "k3s_agents": {"hosts": {n: hostvars[n] for n in names[1:]}}}}}}}
    path = WORK / f"inventory-{size}.yml"
    path.write_text("---\n" + yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
    return path


def one_run(label: str, inventory: Path, book: Path, forks: int, hosts: int) -> dict[str, Any]:
    control = WORK / f"cp-{label}"
    env = ansible_env(control_dir=control)
    vms = qemu_vms_running()
    timed = run_timed([venv_tool("ansible-playbook"), "-i", str(inventory), "-f", str(forks), str(book)],
                      env=env, control_dir=control, log_to=WORK / "logs" / f"{label}.json")
    out: dict[str, Any] = {**timed.figures(), "qemu_vms": vms,
                           "wall_per_host_s": round(timed.wall_s / hosts, 3),
                           "cpu_per_host_s": round(timed.cpu_s / hosts, 3)}
    try:
        rc = recap(parse_json_output(timed.stdout))
        out["recap"] = rc["totals"]
        out["tasks_run"] = rc["tasks_run"]
    except ValueError:
        out["stderr"] = timed.stderr[-2000:]
    log(f"{label}: rc={timed.rc} wall={timed.wall_s:.1f}s cpu={timed.cpu_s:.1f}s "
        f"({out['wall_per_host_s']}/{out['cpu_per_host_s']} s per host) load={timed.load['load1_mean']}")
    if timed.rc != 0:
        raise RuntimeError(f"{label} failed (rc={timed.rc}); see {WORK / 'logs' / (label + '.json')}")
    return out


INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_CONTAINER = 8     # measured: systemd 5, dbus-daemon 1, systemd-logind 1 (+ margin)


def raise_inotify_limit(hosts: int) -> int | None:
    """systemd in each container holds ~7 inotify instances, all charged to root: with the
    kernel's default of 128 per user only ~20 containers get to sshd. Raise the host's limit
    for the run when needed; return the previous value to restore (None: unchanged)."""
    current = int(INOTIFY.read_text().strip())
    wanted = hosts * INOTIFY_PER_CONTAINER + 128
    if current >= wanted:
        return None
    log(f"raising fs.inotify.max_user_instances {current} -> {wanted} for the run (restored after)")
    INOTIFY.write_text(f"{wanted}\n")
    return current


def run(sizes: list[int], forks_values: list[int],
        on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    tag = ensure_image()
    key = vmlab.ssh_key(vmlab.cache_dir())
    book = playbook()
    mroot = WORK / "mirror"
    subprocess.run([sys.executable, str(REPO / "tests" / "standins" / "k3s" / "build_mirror.py"),
                    "--root", str(mroot), "--version", VERSION], check=True, capture_output=True)
    result: dict[str, Any] = {
        "connection": "ssh (ansible.builtin.ssh, ControlPersist, pipelining) to podman containers",
        "playbook": "playbooks/k3s_cluster.yml without the node_prep play", "runs": []}
    restore = raise_inotify_limit(max(sizes))
    try:
        for size in sizes:
            for forks in forks_values:
                log(f"scale: {size} containers, forks={forks}")
                row: dict[str, Any] = {"when": now_iso(), "hosts": size, "forks": forks}
                try:
                    addresses = start_containers(tag, size)
                    row["ssh_ready_s"] = round(wait_ssh(addresses, key), 1)
                    gw = gateway()
                    mirror.stop(WORK / "mirror.pid")
                    info = mirror.start(mroot, WORK / "mirror.pid", bind=gw, port=0)
                    inventory = write_inventory(addresses, key, f"http://{gw}:{info['port']}", size)
                    row["first"] = one_run(f"h{size}-f{forks}-first", inventory, book, forks, size)
                    row["rerun"] = one_run(f"h{size}-f{forks}-rerun", inventory, book, forks, size)
                except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
                    log(f"scale: {size} hosts, forks={forks}: FAILED: {exc}")
                    row["error"] = str(exc)[-2000:]
                result["runs"].append(row)
                if on_progress:
                    on_progress(result)
                remove_containers()
    finally:
        remove_containers()
        mirror.stop(WORK / "mirror.pid")
        if restore is not None:
            INOTIFY.write_text(f"{restore}\n")
    return result
