"""VM test hosts for dictamesh.k3s_gitops: one implementation for molecule and `make lab`.

Subcommands:
  image                 build (or reuse the cached) Debian bookworm base image
  up                    boot VMs (COW overlays) and write inventory.yml / instances.json
  down                  stop the VMs of a state dir and remove their overlays (idempotent)
  status                show the VMs of a state dir
  lab                   image + 1 server + 2 agents + inventories/lab/hosts.yml
  lab-info, lab-down    where the lab's kubeconfig/Argo CD/VMs are; remove the lab

Everything runs unattended (no tty, no stdin) as root. See docs/lab.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mirror  # noqa: E402  (sibling module, also a CLI)

RECIPE_VERSION = "5"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "linux-image-amd64",
    "kmod", "iproute2", "procps", "sudo", "ca-certificates", "curl", "iptables", "udev",
)
IMAGE_SIZE = "10G"
SEGMENT = ipaddress.ip_network("10.77.0.0/24")
SERVER_BASE = 11          # servers get .11, .12, ...
AGENT_BASE = 21           # agents get .21, .22, ...
MCAST_GROUP = "230.0.0.1"
# Guest ports of servers forwarded to 127.0.0.1:<free port> (K3S API, ingress HTTPS/HTTP):
# the segment is not reachable from the controller, these are.
SERVER_FORWARDS = (6443, 443, 80)
MCAST_PORT_RANGE = (20000, 29999)
SSH_OPTS = (
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
)
REPO_ROOT = Path(__file__).resolve().parents[2]

# Files written into the image. Part of the recipe hash: editing them rebuilds the image.
IMAGE_FILES: dict[str, str] = {
    "etc/fstab": "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n",
    "etc/hostname": "vmlab\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    "etc/resolv.conf": "nameserver 10.0.2.3\n",
    # The VMs boot the kernel and initrd extracted at build time: rebuilding the initramfs
    # when a package asks (open-iscsi, cryptsetup, multipath-tools) is wasted work, measured
    # at 20 of the 25 minutes of a Longhorn node_prep converge under software emulation.
    "etc/initramfs-tools/update-initramfs.conf": "update_initramfs=no\nbackup_initramfs=no\n",
    # eth0: QEMU user-mode network (fixed addresses, no DHCP needed).
    "etc/systemd/network/10-vmlab-user.network": (
        "[Match]\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n"
        "DNS=10.0.2.3\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    ),
    # eth1: shared segment, address from the kernel `ip=` argument (systemd-network-generator
    # turns it into /run/systemd/network/*.network); vmlab-boot.service below is the fallback.
    "usr/local/sbin/vmlab-boot": (
        "#!/bin/sh\n"
        "# Applies vmlab.* kernel arguments: /etc/hosts entries and the segment address.\n"
        "set -u\n"
        "for arg in $(cat /proc/cmdline); do\n"
        "  case \"$arg\" in\n"
        "    vmlab.hosts=*) hosts=\"${arg#vmlab.hosts=}\" ;;\n"
        "    vmlab.addr=*) addr=\"${arg#vmlab.addr=}\" ;;\n"
        "  esac\n"
        "done\n"
        "if [ -n \"${hosts:-}\" ]; then\n"
        "  sed -i '/# vmlab$/d' /etc/hosts\n"
        "  echo \"$hosts\" | tr ',' '\\n' | while IFS='=' read -r name ip; do\n"
        "    [ -n \"$name\" ] && printf '%s %s # vmlab\\n' \"$ip\" \"$name\" >> /etc/hosts\n"
        "  done\n"
        "fi\n"
        "if [ -n \"${addr:-}\" ] && ! ip -4 addr show dev eth1 | grep -q \"${addr%/*}/\"; then\n"
        "  ip link set eth1 up && ip addr add \"$addr\" dev eth1\n"
        "fi\n"
        "exit 0\n"
    ),
    "etc/systemd/system/vmlab-boot.service": (
        "[Unit]\nDescription=vmlab: /etc/hosts and segment address from the kernel command line\n"
        "After=systemd-networkd.service\nBefore=ssh.service\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/local/sbin/vmlab-boot\nRemainAfterExit=yes\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    ),
    "etc/ssh/sshd_config.d/vmlab.conf": "UseDNS no\nPermitRootLogin prohibit-password\n",
    "etc/apt/apt.conf.d/99vmlab": (
        'APT::Install-Recommends "false";\nAPT::Periodic::Enable "0";\n'
        'Acquire::Retries "3";\n'
    ),
}
ENABLE_UNITS = ("systemd-networkd.service", "systemd-network-generator.service",
                "vmlab-boot.service", "ssh.service")
MASK_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
              "e2scrub_reap.service",
              "fstrim.timer", "systemd-networkd-wait-online.service")


class VmlabError(RuntimeError):
    """An error with a message meant for the user."""


def log(msg: str) -> None:
    print(f"vmlab: {msg}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command without stdin, raising VmlabError with its output on failure."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("text", True)
    proc = subprocess.run(list(cmd), capture_output=True, check=False, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise VmlabError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc


# --------------------------------------------------------------------------- cache, key, image
def cache_dir() -> Path:
    default = Path(os.environ.get("HOME", "/root")) / ".cache" / "dictamesh-vmlab"
    path = Path(os.environ.get("VMLAB_CACHE") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def ssh_key(cache: Path) -> Path:
    """Return the private key path, generating the key pair once (atomically)."""
    key = cache / "id_ed25519"
    if key.exists() and key.with_suffix(".pub").exists():
        return key
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".key-"))
    try:
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dictamesh-vmlab",
             "-f", str(tmp / "id_ed25519")])
        os.replace(tmp / "id_ed25519.pub", key.with_suffix(".pub"))
        os.replace(tmp / "id_ed25519", key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    key.chmod(0o600)
    return key


def recipe(pubkey: str) -> dict[str, Any]:
    """Every input that changes the image's content (the mirror URL does not)."""
    return {
        "version": RECIPE_VERSION, "suite": SUITE, "packages": sorted(PACKAGES),
        "files": IMAGE_FILES, "enable": ENABLE_UNITS, "mask": MASK_UNITS,
        "size": IMAGE_SIZE, "pubkey": pubkey.strip(),
    }


def recipe_hash(data: dict[str, Any]) -> str:
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Image:
    directory: Path
    disk: Path
    kernel: Path
    initrd: Path
    key: Path

    @classmethod
    def at(cls, directory: Path, key: Path) -> "Image":
        return cls(directory, directory / "base.qcow2", directory / "vmlinuz",
                   directory / "initrd.img", key)

    def complete(self) -> bool:
        needed = (self.disk, self.kernel, self.initrd, self.directory / "recipe.json")
        return all(p.is_file() for p in needed)


@dataclasses.dataclass
class FileLock:
    path: Path
    fd: int = -1

    def __enter__(self) -> "FileLock":
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts", encoding="utf-8") as handle:
        points = [line.split()[1].replace("\\040", " ") for line in handle]
    return sorted((p for p in points if (p + "/").startswith(prefix)), reverse=True)


def remove_tree(path: Path) -> None:
    """Remove a (possibly half-built) tree, unmounting anything debootstrap left mounted."""
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False, stdin=subprocess.DEVNULL)
    if mounts_under(path):
        raise VmlabError(f"refusing to delete {path}: still has mounts {mounts_under(path)}")
    shutil.rmtree(path, ignore_errors=True)


def paths_in_use() -> str:
    """Command lines of all processes (running VMs name their image dir via -kernel)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(found)


def prune_stale_builds(images: Path, keep: str) -> None:
    """Delete leftovers of killed builds and images of older recipes (caller holds the lock).

    An old image still used by a running VM (of another state dir) is kept.
    """
    in_use = paths_in_use()
    for entry in images.iterdir():
        if entry.name.startswith(".build-") or (entry.is_dir() and entry.name != keep):
            if f"{entry}/" in in_use:
                continue
            log(f"removing stale {entry}")
            remove_tree(entry)


def configure_rootfs(rootfs: Path, pubkey: str, apt_mirror: str) -> None:
    for rel, content in IMAGE_FILES.items():
        target = rootfs / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_text(content, encoding="utf-8")
    (rootfs / "usr/local/sbin/vmlab-boot").chmod(0o755)
    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey.strip() + "\n", encoding="utf-8")
    (ssh_dir / "authorized_keys").chmod(0o600)
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {apt_mirror} {SUITE} main\ndeb {apt_mirror} {SUITE}-updates main\n"
        f"deb http://deb.debian.org/debian-security {SUITE}-security main\n", encoding="utf-8")
    # Empty machine-id: every VM generates its own on first boot.
    (rootfs / "etc/machine-id").write_text("", encoding="utf-8")
    run(["chroot", str(rootfs), "systemctl", "enable", *ENABLE_UNITS])
    run(["chroot", str(rootfs), "systemctl", "mask", *MASK_UNITS])
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / junk).glob("*"):
            if entry.is_file():
                entry.unlink()


def extract_boot(rootfs: Path, out: Path) -> None:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise VmlabError(f"no kernel/initrd in {rootfs}/boot")
    shutil.copy2(kernels[-1], out / "vmlinuz")
    shutil.copy2(initrds[-1], out / "initrd.img")


def build_image(build: Path, pubkey: str, apt_mirror: str) -> None:
    rootfs = build / "rootfs"
    log(f"debootstrap {SUITE} from {apt_mirror} (minbase + {len(PACKAGES)} packages)")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
         SUITE, str(rootfs), apt_mirror])
    configure_rootfs(rootfs, pubkey, apt_mirror)
    extract_boot(rootfs, build)
    raw = build / "root.raw"
    log("mkfs.ext4 -d rootfs + qemu-img convert")
    run(["truncate", "-s", IMAGE_SIZE, str(raw)])
    run(["mkfs.ext4", "-q", "-F", "-L", "vmlab-root", "-d", str(rootfs), str(raw)])
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(build / "base.qcow2")])
    raw.unlink()
    remove_tree(rootfs)


def ensure_image(force: bool = False) -> Image:
    """Return the cached image for the current recipe, building it atomically if needed."""
    cache = cache_dir()
    key = ssh_key(cache)
    pubkey = key.with_suffix(".pub").read_text(encoding="utf-8")
    data = recipe(pubkey)
    digest = recipe_hash(data)
    images = cache / "images"
    images.mkdir(exist_ok=True)
    image = Image.at(images / digest, key)
    with FileLock(cache / "build.lock"):
        if image.complete() and not force:
            return image
        prune_stale_builds(images, keep="" if force else digest)
        build = images / f".build-{digest}-{os.getpid()}"
        build.mkdir()
        started = time.monotonic()
        try:
            build_image(build, pubkey, os.environ.get("VMLAB_MIRROR") or DEFAULT_MIRROR)
            (build / "recipe.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
            if image.directory.exists():          # --rebuild: retire the old one
                retired = images / f".build-retired-{digest}-{os.getpid()}"
                os.rename(image.directory, retired)
                remove_tree(retired)                # running VMs keep their open files
            os.rename(build, image.directory)   # atomic: a killed build leaves only .build-*
        finally:
            if build.exists():
                remove_tree(build)
        log(f"image {digest} built in {time.monotonic() - started:.0f} s")
    return image


# --------------------------------------------------------------------------- VM specs
@dataclasses.dataclass
class Host:
    name: str
    role: str                     # "server" or "agent"
    groups: list[str]
    node_ip: str = ""
    ssh_port: int = 0
    mac: str = ""
    forwards: dict[str, int] = dataclasses.field(default_factory=dict)  # guest port -> host port

    @property
    def vm_role_group(self) -> str:
        return "k3s_servers" if self.role == "server" else "k3s_agents"


def hosts_from_counts(prefix: str, servers: int, agents: int) -> list[Host]:
    if servers < 1 and agents < 1:
        raise VmlabError("need at least one VM")
    hosts = [Host(f"{prefix}-server-{i}", "server", []) for i in range(1, servers + 1)]
    hosts += [Host(f"{prefix}-agent-{i}", "agent", []) for i in range(1, agents + 1)]
    return hosts


def role_of(platform: dict[str, Any]) -> str:
    explicit = platform.get("vmlab_role")
    if explicit in ("server", "agent"):
        return str(explicit)
    if explicit is not None:
        raise VmlabError(f"{platform.get('name')}: vmlab_role must be server or agent")
    names = list(platform.get("groups", [])) + list(platform.get("children", []))
    return "agent" if any("agent" in str(n) for n in names) else "server"


def hosts_from_spec(spec: Any) -> list[Host]:
    """Hosts from molecule-style platforms: [{name, groups, children, vmlab_role}, ...]."""
    if isinstance(spec, dict):
        spec = spec.get("platforms", [])
    if not isinstance(spec, list) or not spec:
        raise VmlabError("spec must be a non-empty list of platforms (real data, not a string)")
    hosts = []
    for platform in spec:
        if not isinstance(platform, dict) or not platform.get("name"):
            raise VmlabError(f"bad platform entry: {platform!r}")
        groups = [str(g) for g in platform.get("groups", [])]
        hosts.append(Host(str(platform["name"]), role_of(platform), groups))
    if len({h.name for h in hosts}) != len(hosts):
        raise VmlabError("platform names must be unique")
    return hosts


def assign_addresses(hosts: list[Host], state: Path) -> None:
    net = list(SEGMENT.hosts())
    counters = {"server": SERVER_BASE, "agent": AGENT_BASE}
    seed = hashlib.sha256(str(state.resolve()).encode()).digest()
    for index, host in enumerate(hosts):
        host.node_ip = str(net[counters[host.role] - 1])
        counters[host.role] += 1
        if counters["server"] > AGENT_BASE:
            raise VmlabError(f"at most {AGENT_BASE - SERVER_BASE} servers")
        host.mac = "52:54:%02x:%02x:%02x:%02x" % (seed[0], seed[1], seed[2], index + 1)


def mcast_port(state: Path) -> int:
    """Segment port derived from the state dir: two state dirs never share a segment."""
    low, high = MCAST_PORT_RANGE
    digest = int(hashlib.sha256(str(state.resolve()).encode()).hexdigest(), 16)
    return low + digest % (high - low + 1)


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all bound at once, so none repeats)."""
    socks = []
    try:
        for _index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def assign_ports(hosts: list[Host]) -> None:
    needed = sum(1 + (len(SERVER_FORWARDS) if h.role == "server" else 0) for h in hosts)
    ports = iter(free_ports(needed))
    for host in hosts:
        host.ssh_port = next(ports)
        if host.role == "server":
            host.forwards = {str(guest): next(ports) for guest in SERVER_FORWARDS}


# --------------------------------------------------------------------------- accel, qemu
def kvm_usable() -> bool:
    """KVM only where it really works: /dev/kvm usable AND hardware virtualisation flags."""
    forced = os.environ.get("VMLAB_ACCEL", "").lower()
    if forced in ("kvm", "tcg"):
        return forced == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    except OSError:
        return False
    return "vmx" in flags or "svm" in flags


def accel_args(kvm: bool) -> list[str]:
    if kvm:
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"]


def kernel_cmdline(host: Host, hosts: list[Host]) -> str:
    prefix = SEGMENT.prefixlen
    etc_hosts = ",".join(f"{h.name}={h.node_ip}" for h in hosts)
    return " ".join([
        "root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0", "panic=-1",
        # Software emulation on a busy 2-core host: boot jobs can need minutes, not 90 s.
        "systemd.default_timeout_start_sec=600",
        f"systemd.hostname={host.name}",
        f"ip={host.node_ip}:::{SEGMENT.netmask}:{host.name}:eth1:off",
        f"vmlab.addr={host.node_ip}/{prefix}", f"vmlab.hosts={etc_hosts}",
    ])


def vm_paths(state: Path, name: str) -> dict[str, Path]:
    return {
        "disk": state / f"{name}.qcow2", "pid": state / f"{name}.pid",
        "log": state / f"{name}.console.log",
    }


def hostfwds(host: Host) -> list[str]:
    ports = {"22": host.ssh_port, **host.forwards}
    return [f"hostfwd=tcp:127.0.0.1:{hport}-:{gport}" for gport, hport in ports.items()]


def qemu_command(image: Image, host: Host, hosts: list[Host], state: Path,
                 kvm: bool, memory: int) -> list[str]:
    paths = vm_paths(state, host.name)
    return [
        "qemu-system-x86_64", "-name", host.name, *accel_args(kvm),
        "-m", str(memory), "-smp", "1", "-nodefaults", "-no-reboot",
        "-display", "none", "-monitor", "none", "-serial", f"file:{paths['log']}",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", kernel_cmdline(host, hosts),
        "-drive", f"file={paths['disk']},format=qcow2,if=virtio,cache=unsafe,discard=unmap",
        "-netdev", "user,id=n0," + ",".join(hostfwds(host)),
        "-device", "virtio-net-pci,netdev=n0",
        "-netdev", f"socket,id=n1,mcast={MCAST_GROUP}:{mcast_port(state)}",
        "-device", f"virtio-net-pci,netdev=n1,mac={host.mac}",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-pci,rng=rng0",
        "-daemonize", "-pidfile", str(paths["pid"]),
    ]


def read_pid(pidfile: Path, state: Path) -> int | None:
    """The pid in pidfile if it is still a QEMU of this state dir (guards recycled pids)."""
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if "qemu-system" in cmdline and str(state) in cmdline else None


def start_vm(image: Image, host: Host, hosts: list[Host], state: Path, kvm: bool,
             memory: int) -> None:
    paths = vm_paths(state, host.name)
    if read_pid(paths["pid"], state):
        raise VmlabError(f"{host.name} is already running in {state} (run `down` first)")
    paths["disk"].unlink(missing_ok=True)
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", "qcow2",
         str(paths["disk"])])
    paths["log"].write_text("", encoding="utf-8")
    run(qemu_command(image, host, hosts, state, kvm, memory))


def console_tail(state: Path, name: str, lines: int = 30) -> str:
    try:
        text = vm_paths(state, name)["log"].read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.splitlines()[-lines:])


def ssh_command(key: Path, port: int, remote: str, timeout: int = 5) -> list[str]:
    return ["ssh", "-i", str(key), "-p", str(port), *SSH_OPTS,
            "-o", f"ConnectTimeout={timeout}", "root@127.0.0.1", remote]


def ssh_ready(key: Path, port: int) -> bool:
    proc = subprocess.run(ssh_command(key, port, "python3 -c 'import json' && echo ok"),
                          capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=30)
    return proc.returncode == 0 and proc.stdout.strip() == "ok"


def wait_for_ssh(key: Path, hosts: list[Host], state: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = {h.name: h for h in hosts}
    while pending:
        for name, host in list(pending.items()):
            if not read_pid(vm_paths(state, name)["pid"], state):
                raise VmlabError(f"{name}: QEMU exited during boot. Console tail:\n"
                                 f"{console_tail(state, name)}")
            try:
                if ssh_ready(key, host.ssh_port):
                    log(f"{name} reachable over SSH on 127.0.0.1:{host.ssh_port}")
                    del pending[name]
            except subprocess.TimeoutExpired:
                pass
        if pending and time.monotonic() > deadline:
            name = sorted(pending)[0]
            raise VmlabError(f"timeout after {timeout:.0f} s waiting for SSH on "
                             f"{', '.join(sorted(pending))}. Console tail of {name}:\n"
                             f"{console_tail(state, name)}")
        if pending:
            time.sleep(2)


# --------------------------------------------------------------------------- state files
def host_vars(host: Host, key: Path) -> dict[str, Any]:
    return {
        "ansible_host": "127.0.0.1", "ansible_port": host.ssh_port, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": " ".join(SSH_OPTS),
        "ansible_python_interpreter": "/usr/bin/python3",
        "node_ip": host.node_ip, "vmlab_forwards": dict(host.forwards),
    }


def inventory(hosts: list[Host], key: Path, extra_vars: dict[str, Any]) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {"k3s_servers": {"hosts": {}},
                                         "k3s_agents": {"hosts": {}}}
    for host in hosts:
        groups[host.vm_role_group]["hosts"][host.name] = host_vars(host, key)
    cluster: dict[str, Any] = {"children": groups}
    top: dict[str, Any] = {"children": {"k3s_cluster": cluster}}
    if extra_vars:
        top["vars"] = extra_vars
    return {"all": top}


def molecule_vars(hosts: list[Host], extra_vars: dict[str, Any]) -> dict[str, Any]:
    """Extra inventory source for molecule's inventory dir: what molecule cannot carry."""
    data: dict[str, Any] = {"hosts": {h.name: {"node_ip": h.node_ip, "vmlab_forwards": dict(h.forwards)}
                                      for h in hosts}}
    if extra_vars:
        data["vars"] = extra_vars
    return {"all": data}


def instances(hosts: list[Host], key: Path) -> list[dict[str, Any]]:
    """Molecule's instance config: a real list of mappings (not a rendered string)."""
    return [{"instance": h.name, "address": "127.0.0.1", "user": "root",
             "port": h.ssh_port, "identity_file": str(key), "become_method": "sudo",
             "node_ip": h.node_ip, "vmlab_role": h.role} for h in hosts]


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def to_yaml(data: Any) -> str:
    """Block YAML with PyYAML when present (venv, ansible's python), else JSON (also YAML)."""
    header = "---\n# Generated by tests/vmlab/vmlab.py: do not edit.\n"
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        return header + json.dumps(data, indent=2) + "\n"
    return header + str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=200))


def save_state(state: Path, hosts: list[Host], meta: dict[str, Any]) -> None:
    data = {"hosts": [dataclasses.asdict(h) for h in hosts], **meta}
    write_atomic(state / "vmlab.json", json.dumps(data, indent=2) + "\n")


def load_state(state: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((state / "vmlab.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {"hosts": []}


# --------------------------------------------------------------------------- up / down
@dataclasses.dataclass
class UpOptions:
    state: Path
    hosts: list[Host]
    memory: int = int(os.environ.get("VMLAB_MEMORY", "2048"))
    timeout: float = float(os.environ.get("VMLAB_BOOT_TIMEOUT", "420"))
    mirror_root: Path | None = None
    instance_config: Path | None = None
    molecule_inventory: Path | None = None
    hosts_file: Path | None = None


def start_mirror(opts: UpOptions) -> dict[str, Any]:
    if opts.mirror_root is None:
        return {}
    info = mirror.start(opts.mirror_root, opts.state / "mirror.pid", bind="127.0.0.1", port=0)
    log(f"artifact mirror {info['root']} on {info['url']} (VMs: {info['vm_url']})")
    return {"vmlab_mirror_url": info["vm_url"]}


def write_outputs(opts: UpOptions, key: Path, extra: dict[str, Any]) -> None:
    inv = to_yaml(inventory(opts.hosts, key, extra))
    write_atomic(opts.state / "inventory.yml", inv)
    write_atomic(opts.state / "instances.json", json.dumps(instances(opts.hosts, key), indent=2))
    if opts.instance_config:
        write_atomic(opts.instance_config, to_yaml(instances(opts.hosts, key)))
    if opts.molecule_inventory:
        write_atomic(opts.molecule_inventory, to_yaml(molecule_vars(opts.hosts, extra)))
    if opts.hosts_file:
        write_atomic(opts.hosts_file, inv)


def up(opts: UpOptions) -> dict[str, Any]:
    """Boot all hosts; on any failure stop what was started and re-raise."""
    state = opts.state.resolve()
    opts.state = state
    state.mkdir(parents=True, exist_ok=True)
    running = [r["name"] for r in status(state) if r["running"]]
    if running:   # checked before the try below: a second `up` must not stop the first's VMs
        raise VmlabError(f"{', '.join(running)} already running in {state}: run `down` first")
    image = ensure_image()
    kvm = kvm_usable()
    assign_addresses(opts.hosts, state)
    assign_ports(opts.hosts)
    meta = {"accel": "kvm" if kvm else "tcg", "mcast": f"{MCAST_GROUP}:{mcast_port(state)}",
            "image": str(image.directory), "memory": opts.memory}
    save_state(state, opts.hosts, meta)
    started = time.monotonic()
    try:
        extra = start_mirror(opts)
        if extra:
            meta["mirror_vm_url"] = extra["vmlab_mirror_url"]
        for host in opts.hosts:
            start_vm(image, host, opts.hosts, state, kvm, opts.memory)
        log(f"booting {len(opts.hosts)} VM(s) with {meta['accel']}, segment {SEGMENT} "
            f"on mcast {meta['mcast']}")
        wait_for_ssh(image.key, opts.hosts, state, opts.timeout)
    except BaseException:
        down(state)
        raise
    meta["boot_seconds"] = round(time.monotonic() - started, 1)
    save_state(state, opts.hosts, meta)
    write_outputs(opts, image.key, extra)
    log(f"{len(opts.hosts)} VM(s) up in {meta['boot_seconds']} s; inventory {state}/inventory.yml")
    return meta


def stop_pid(pid: int, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def down(state: Path) -> int:
    """Stop VMs and the mirror of a state dir, remove overlays. Idempotent. Returns VMs stopped."""
    state = state.resolve()
    if not state.is_dir():
        return 0
    stopped = 0
    for pidfile in sorted(state.glob("*.pid")):
        if pidfile.name == "mirror.pid":
            continue
        pid = read_pid(pidfile, state)
        if pid:
            stop_pid(pid)
            stopped += 1
        pidfile.unlink(missing_ok=True)
    mirror.stop(state / "mirror.pid")
    for disk in state.glob("*.qcow2"):
        disk.unlink(missing_ok=True)
    for generated in ("inventory.yml", "instances.json", "vmlab.json"):
        (state / generated).unlink(missing_ok=True)
    return stopped


def status(state: Path) -> list[dict[str, Any]]:
    state = state.resolve()
    data = load_state(state)
    rows = []
    for host in data.get("hosts", []):
        pid = read_pid(vm_paths(state, host["name"])["pid"], state)
        rows.append({"name": host["name"], "role": host["role"], "node_ip": host["node_ip"],
                     "ssh": f"127.0.0.1:{host['ssh_port']}", "pid": pid,
                     "forwards": host.get("forwards", {}),
                     "running": bool(pid)})
    return rows


# --------------------------------------------------------------------------- CLI
def lab_state() -> Path:
    return Path(os.environ.get("VMLAB_LAB_STATE") or cache_dir() / "lab")


def cmd_image(args: argparse.Namespace) -> int:
    image = ensure_image(force=args.rebuild)
    print(json.dumps({"directory": str(image.directory), "disk": str(image.disk),
                      "kernel": str(image.kernel), "initrd": str(image.initrd),
                      "key": str(image.key)}, indent=2))
    return 0


def parse_hosts(args: argparse.Namespace) -> list[Host]:
    if args.spec:
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text(encoding="utf-8")
        return hosts_from_spec(json.loads(text))
    return hosts_from_counts(args.name, args.servers, args.agents)


def cmd_up(args: argparse.Namespace) -> int:
    opts = UpOptions(state=Path(args.state), hosts=parse_hosts(args),
                     mirror_root=Path(args.mirror_root) if args.mirror_root else None,
                     instance_config=Path(args.instance_config) if args.instance_config else None,
                     molecule_inventory=(Path(args.molecule_inventory)
                                         if args.molecule_inventory else None))
    if args.memory:
        opts.memory = args.memory
    if args.timeout:
        opts.timeout = args.timeout
    print(json.dumps(up(opts), indent=2))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = down(Path(args.state))
    log(f"stopped {stopped} VM(s) in {args.state}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = status(Path(args.state))
    print(json.dumps(rows, indent=2))
    return 0


# --------------------------------------------------------------------------- lab pre-flight
UPSTREAM_K3S = "https://github.com/k3s-io/k3s/releases/download"
LAB_CLUSTER_VARS = REPO_ROOT / "inventories" / "lab" / "group_vars" / "all" / "cluster.yml"
K3S_STANDIN_BUILDER = REPO_ROOT / "tests" / "standins" / "k3s" / "build_mirror.py"
PROBE_TIMEOUT = float(os.environ.get("LAB_PROBE_TIMEOUT", "8"))
OFFLINE_HELP = (
    "Without internet the lab needs one of:\n"
    "  - a mirror holding the release: LAB_MIRROR=1 serves LAB_MIRROR_ROOT={root} to the VMs as\n"
    "    cluster_k3s_download_base_url; copy the release's k3s and sha256sum-amd64.txt there:\n"
    "      mkdir -p {root}/{version} && cp k3s sha256sum-amd64.txt {root}/{version}/\n"
    "    then: make lab LAB_MIRROR=1\n"
    "  - an air-gapped bundle on this machine: cluster_k3s_airgap_dir in {vars} (docs/airgap.md)\n"
    "  - a try-out against the K3S TEST STAND-IN (not K3S: tests/standins/k3s, the cluster stage only):\n"
    "      make lab LAB_STANDIN=1\n"
    "A real K3S offline also needs its images (cluster_k3s_airgap_images) and the platform's charts and\n"
    "images (platform_chart_archives_dir, a registry mirror in cluster_registries): docs/lab.md."
)


def lab_cluster_settings(path: Path = LAB_CLUSTER_VARS) -> dict[str, str]:
    """Top-level scalar cluster_k3s_* values of the lab's cluster.yml over the shared base's
    (group_vars/all/_common/cluster.yml, when there) (raw, untemplated)."""
    found: dict[str, str] = {}
    base = path.parent / "_common" / path.name
    text = (base.read_text(encoding="utf-8") + "\n" if base.is_file() else "") + path.read_text(encoding="utf-8")
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("cluster_k3s_version", "cluster_k3s_download_base_url", "cluster_k3s_airgap_dir"):
            value = value.split(" #", 1)[0].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[key] = value
    return found


def effective_base_url(raw: str, mirror_on: bool) -> str | None:
    """The URL the VMs will download K3S from; None when it is the lab's mirror."""
    if "vmlab_mirror_url" in raw:
        if mirror_on:
            return None
        default = raw.split("default(", 1)[1] if "default(" in raw else ""
        quoted = [part for part in default.split("'")[1::2] if part] or [UPSTREAM_K3S]
        return quoted[0]
    if "{{" in raw:
        raise VmlabError(f"cluster_k3s_download_base_url in {LAB_CLUSTER_VARS} is a template this check "
                         f"cannot follow ({raw}); LAB_SKIP_CHECK=1 skips the check")
    return raw or UPSTREAM_K3S


def release_problem(directory: Path) -> str:
    """'' when directory holds k3s and a sha256sum-amd64.txt that lists it, else what is missing."""
    checksums = directory / "sha256sum-amd64.txt"
    if not (directory / "k3s").is_file():
        return f"{directory}/k3s is missing"
    if not checksums.is_file():
        return f"{checksums} is missing"
    names = [line.split()[-1] for line in checksums.read_text(encoding="utf-8").splitlines() if line.strip()]
    return "" if "k3s" in names else f"{checksums} does not list k3s"


def probe(url: str, timeout: float) -> str:
    """'' when url answers 2xx to a GET (the checksum file is small), else the error."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as response:
            return "" if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def lab_preflight(settings: dict[str, str], mirror_root: Path | None, standin: bool,
                  timeout: float = PROBE_TIMEOUT) -> list[str]:
    """Check, before any VM boots, that the lab VMs will find K3S; return what to print.

    Raises VmlabError (naming the inventory variables and the lab settings) when they will not.
    With `standin`, fills the mirror with the K3S test stand-in first.
    """
    version = settings.get("cluster_k3s_version", "")
    if not version or "{{" in version:
        raise VmlabError(f"cluster_k3s_version in {LAB_CLUSTER_VARS} is {version!r}: expected a release "
                         "such as v1.34.1+k3s1")
    root = mirror_root or cache_dir() / "mirror"
    help_text = OFFLINE_HELP.format(root=root, version=version, vars=LAB_CLUSTER_VARS.relative_to(REPO_ROOT))
    airgap = settings.get("cluster_k3s_airgap_dir", "")
    if airgap:
        problem = release_problem(Path(airgap))
        if problem:
            raise VmlabError(f"cluster_k3s_airgap_dir ({airgap}) cannot serve K3S {version}: {problem}.\n"
                             + help_text)
        return [f"lab: K3S {version} from the air-gapped bundle cluster_k3s_airgap_dir={airgap}"]
    if standin:
        if mirror_root is None:
            raise VmlabError("LAB_STANDIN=1 needs the lab's mirror (LAB_MIRROR=1)")
        log(f"lab: filling {mirror_root} with the K3S test stand-in as {version}")
        run([sys.executable, str(K3S_STANDIN_BUILDER), "--root", str(mirror_root), "--version", version,
             "--kubectl", str(Path(sys.executable).parent / "kubectl")])
    url = effective_base_url(settings.get("cluster_k3s_download_base_url", ""), mirror_root is not None)
    if url is None:
        assert mirror_root is not None
        problem = release_problem(mirror_root / version)
        if problem:
            raise VmlabError(f"LAB_MIRROR=1 serves LAB_MIRROR_ROOT={mirror_root} as cluster_k3s_download_base_url, "
                             f"but it holds no K3S {version}: {problem}.\n" + help_text)
        if standin:
            return [f"lab: TRY-OUT: the mirror serves the K3S TEST STAND-IN as {version} "
                    "(tests/standins/k3s: K3S's file layout, token and join rules, no containers). "
                    "This is not a Kubernetes cluster."]
        return [f"lab: K3S {version} from the lab mirror LAB_MIRROR_ROOT={mirror_root}"]
    if mirror_root is not None:
        raise VmlabError(f"LAB_MIRROR=1 is set but cluster_k3s_download_base_url ({url}) does not use "
                         f"vmlab_mirror_url: the VMs would not use the mirror. Edit {LAB_CLUSTER_VARS}.")
    checksum_url = f"{url.rstrip('/')}/{urllib.parse.quote(version, safe='')}/sha256sum-amd64.txt"
    problem = probe(checksum_url, timeout)
    if problem:
        raise VmlabError(f"K3S {version} is not reachable from this machine (the VMs download through it): "
                         f"{checksum_url}: {problem}. cluster_k3s_download_base_url is {url}.\n" + help_text)
    return [f"lab: K3S {version} from {url}"]


def lab_mirror_root() -> Path | None:
    """The directory the lab's mirror serves; the stand-in gets its own, so a later LAB_MIRROR=1
    never serves the stand-in as if it were K3S."""
    if os.environ.get("LAB_STANDIN") == "1":
        return Path(os.environ.get("LAB_MIRROR_ROOT") or cache_dir() / "standin-mirror")
    if os.environ.get("LAB_MIRROR") == "1":
        return Path(os.environ.get("LAB_MIRROR_ROOT") or cache_dir() / "mirror")
    return None


def cmd_lab_check(_args: argparse.Namespace) -> int:
    if os.environ.get("LAB_SKIP_CHECK") == "1":
        log("lab: LAB_SKIP_CHECK=1: not checking where K3S comes from")
        return 0
    started = time.monotonic()
    lines = lab_preflight(lab_cluster_settings(), lab_mirror_root(), os.environ.get("LAB_STANDIN") == "1")
    print("\n".join(lines + [f"lab: pre-flight passed in {time.monotonic() - started:.1f} s"]))
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    state = lab_state()
    hosts_file = Path(args.hosts_file)
    mirror_root = lab_mirror_root()
    down(state)
    opts = UpOptions(state=state, hosts=hosts_from_counts("lab", args.servers, args.agents),
                     mirror_root=mirror_root, hosts_file=hosts_file)
    meta = up(opts)
    print(f"lab: {len(opts.hosts)} VMs up ({meta['accel']}, {meta['boot_seconds']} s); "
          f"inventory written to {hosts_file}")
    if mirror_root:
        print(f"lab: artifact mirror serving {mirror_root} to the VMs at {meta.get('mirror_vm_url')} "
              f"(vmlab_mirror_url in {hosts_file})")
    print("lab: next: ansible-playbook site.yml -i inventories/lab   "
          "(remove the VMs with: make lab-down)")
    return 0


LAB_GENERATED_SECRETS = (REPO_ROOT / "inventories" / "lab" / ".secrets",   # the password lookups' files
                         REPO_ROOT / "inventories" / "lab" / ".token",      # older layout
                         REPO_ROOT / ".kube" / "lab.yaml")                  # the lab's admin kubeconfig


def remove_lab_secrets(paths: Sequence[Path] = LAB_GENERATED_SECRETS) -> list[Path]:
    """Remove the lab's generated secrets (token, Argo CD password) and kubeconfig; return what was there."""
    removed = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def cmd_lab_down(args: argparse.Namespace) -> int:
    stopped = down(lab_state())
    Path(args.hosts_file).unlink(missing_ok=True)
    removed = remove_lab_secrets()
    log(f"lab: stopped {stopped} VM(s)"
        + (f"; removed {', '.join(str(p.relative_to(REPO_ROOT)) for p in removed)}" if removed else ""))
    return 0


def inventory_host_vars(inventory_dir: Path, host: str) -> dict[str, Any]:
    """Raw (untemplated) variables of a host from `ansible-inventory`; {} when unavailable."""
    try:
        proc = subprocess.run(["ansible-inventory", "-i", str(inventory_dir), "--host", host],
                              capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL, timeout=60)
        return dict(json.loads(proc.stdout)) if proc.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def lab_info_lines(rows: list[dict[str, Any]], hostvars: dict[str, Any], key: Path) -> list[str]:
    servers = [r for r in rows if r["role"] == "server" and r["running"]]
    if not servers:
        return ["lab: no lab VM is running (make lab)"]
    first = servers[0]
    fwd = first.get("forwards", {})
    kubeconfig = REPO_ROOT / ".kube" / f"{hostvars.get('cluster_name', 'lab')}.yaml"
    argocd = hostvars.get("platform_argocd_hostname", "argocd.lab.dictamesh.test")
    lines = [f"lab: kubeconfig: {kubeconfig}"
             + ("" if kubeconfig.exists() else " (not written: site.yml did not get that far)")]
    if "6443" in fwd:
        lines.append(f"lab:   from this machine: kubectl --kubeconfig {kubeconfig} "
                     f"--server https://127.0.0.1:{fwd['6443']} get nodes")
    if "443" in fwd:
        lines.append(f"lab: Argo CD: https://{argocd}/ (ingress on {first['node_ip']}); "
                     f"from this machine: curl -k --resolve {argocd}:{fwd['443']}:127.0.0.1 "
                     f"https://{argocd}:{fwd['443']}/")
    for row in rows:
        port = row["ssh"].rsplit(":", 1)[1]
        lines.append(f"lab: ssh {row['name']} ({row['node_ip']}): ssh -i {key} -p {port} "
                     "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1")
    return lines


def cmd_lab_info(args: argparse.Namespace) -> int:
    rows = status(lab_state())
    first = next((r["name"] for r in rows if r["role"] == "server"), "")
    hostvars = inventory_host_vars(Path(args.inventory), first) if first else {}
    print("\n".join(lab_info_lines(rows, hostvars, cache_dir() / "id_ed25519")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vmlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    image = sub.add_parser("image", help="build or reuse the cached base image")
    image.add_argument("--rebuild", action="store_true")
    image.set_defaults(func=cmd_image)
    upp = sub.add_parser("up", help="boot VMs")
    upp.add_argument("--state", required=True)
    upp.add_argument("--name", default="vm", help="host name prefix (with --servers/--agents)")
    upp.add_argument("--servers", type=int, default=1)
    upp.add_argument("--agents", type=int, default=0)
    upp.add_argument("--spec", help="JSON file ('-' = stdin) of molecule-style platforms")
    upp.add_argument("--memory", type=int, help="MiB per VM (default $VMLAB_MEMORY or 2048)")
    upp.add_argument("--timeout", type=float, help="seconds to wait for SSH (default 420)")
    upp.add_argument("--mirror-root", help="also serve this dir as the artifact mirror")
    upp.add_argument("--instance-config", help="write molecule's instance config here")
    upp.add_argument("--molecule-inventory", help="write node_ip etc. as an inventory file here")
    upp.set_defaults(func=cmd_up)
    for name, func, helptext in (("down", cmd_down, "stop VMs, remove overlays"),
                                 ("status", cmd_status, "show VMs")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--state", required=True)
        p.set_defaults(func=func)
    default_hosts = str(REPO_ROOT / "inventories" / "lab" / "hosts.yml")
    lab = sub.add_parser("lab", help="image + 1 server + 2 agents + inventories/lab/hosts.yml")
    lab.add_argument("--servers", type=int, default=1)
    lab.add_argument("--agents", type=int, default=2)
    lab.add_argument("--hosts-file", default=default_hosts)
    lab.set_defaults(func=cmd_lab)
    info = sub.add_parser("lab-info", help="where the lab's kubeconfig, Argo CD and VMs are")
    info.add_argument("--inventory", default=str(REPO_ROOT / "inventories" / "lab"))
    info.set_defaults(func=cmd_lab_info)
    check = sub.add_parser("lab-check", help="before booting: will the lab VMs find K3S? (seconds)")
    check.set_defaults(func=cmd_lab_check)
    labd = sub.add_parser("lab-down", help="stop the lab VMs; remove the generated hosts file, secrets, kubeconfig")
    labd.add_argument("--hosts-file", default=default_hosts)
    labd.set_defaults(func=cmd_lab_down)
    return parser


def exit_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so `up` stops the VMs it already started."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, exit_on_signal)
    try:
        return int(args.func(args))
    except VmlabError as exc:
        print(f"vmlab: ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
