"""Runtime part of the K3S stand-in (NOT K3S; never ships in roles/ or plugins/).

What a running K3S node leaves behind that `systemctl stop k3s` does not remove, so that an
uninstall is tested against the same leftovers (upstream: k3s-io/k3s install.sh, create_killall,
which is what k3s-killall.sh cleans; see tests/standins/FIDELITY.md, section "processes, mounts
and network left on a node (uninstall)"):

* containerd shims, one per pod, running from the extracted data dir
  `<data-dir>/data/<hash>/bin/containerd-shim-runc-v2 -namespace k8s.io -id <id> -address
  /run/k3s/containerd/containerd.sock` (the command line k3s-killall.sh's getshims() greps for).
  Each shim daemonizes (its starter exits), is a child subreaper as containerd-shim is, and
  runs the pod's containers as its children: their command lines do NOT mention the data dir
  (`/pause`, `nginx: master process` with a `sleep` child), so only a process-tree kill gets them.
  The shims survive `systemctl stop k3s`: the unit has KillMode=process (install.sh's unit and
  roles/k3s_install's), so systemd stops only the main process.
* mounts that those containers keep busy: a tmpfs for each pod's rootfs under
  /run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs (real: overlay) and a
  tmpfs for the service-account token under
  /var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~projected/kube-api-access-<x>; each
  container's working directory is inside one, so a plain umount fails with EBUSY until the
  container processes are gone;
* a CNI network namespace per pod, /run/netns/cni-<uuid> (`ip netns add`), with a veth pair
  whose host end is enslaved to cni0;
* the links cni0 (a bridge, as upstream's) and flannel.1 (vxlan VNI 1, port 8472 as flannel's
  default; a dummy link where the kernel has no vxlan);
* KUBE-, CNI- and FLANNEL- chains and rules in the filter and nat tables (iptables, and a
  KUBE- chain in ip6tables), hooked from INPUT, FORWARD and POSTROUTING.

It only runs on a real node: as root, started by systemd (INVOCATION_ID set), without
K3S_STANDIN_ROOT (the unit tests' fake root); K3S_STANDIN_RUNTIME=0 turns it off. It starts
K3S_STANDIN_RUNTIME_DELAY seconds (default 5) after `k3s server`/`k3s agent` started, in a
thread of that process, so a start that fails at once leaves nothing behind. A restart finds
its shims running and adds nothing (as containerd reconnects to running shims).
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

from . import core

DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
TASK_DIR = "/run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io"
CONTAINERD_SOCKET = "/run/k3s/containerd/containerd.sock"
PODS_DIR = "/var/lib/kubelet/pods"
SHIM_NAME = "containerd-shim-runc-v2"
CONTAINER_ENV = "K3S_STANDIN_CONTAINER"  # marks the container processes for tests
POD_CIDR = "10.42.0.0/16"

# The shim the stand-in writes into <data-dir>/data/<hash>/bin/ (our own code, not containerd's):
# daemonize, become a child subreaper, start the pod's containers from the bundle's config.json
# (cwd, argv, executable), then wait for ever, reaping orphans.
SHIM_SOURCE = r'''#!/usr/bin/python3
"""containerd-shim stand-in written by the K3S stand-in (tests only)."""
import ctypes, json, os, subprocess, sys, time

def main(argv):
    ident = argv[argv.index("-id") + 1]
    if os.fork():
        os._exit(0)
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    bundle = os.path.join(%(task_dir)r, ident)
    with open(os.path.join(bundle, "config.json"), encoding="utf-8") as handle:
        containers = json.load(handle)["containers"]
    for container in containers:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", %(marker)r: ident}
        subprocess.Popen(container["args"], executable=container["executable"], cwd=container["cwd"],
                         env=env, close_fds=True)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(30)

main(sys.argv)
''' % {"task_dir": TASK_DIR, "marker": CONTAINER_ENV}


def enabled() -> bool:
    return (os.environ.get("K3S_STANDIN_RUNTIME", "1") != "0" and not os.environ.get("K3S_STANDIN_ROOT")
            and os.geteuid() == 0 and bool(os.environ.get("INVOCATION_ID")))


def data_dir(config: dict) -> str:
    return str(config.get("data-dir") or DEFAULT_DATA_DIR)


def shim_dir(data: str, binary: bytes) -> str:
    """<data-dir>/data/<sha256 of the k3s binary>/bin, as K3S extracts its bundled binaries."""
    return os.path.join(data, "data", hashlib.sha256(binary).hexdigest(), "bin")


def shim_command(path: str, ident: str) -> list:
    return [path, "-namespace", "k8s.io", "-id", ident, "-address", CONTAINERD_SOCKET]


def running_shims(data: str, proc: str = "/proc") -> list:
    """PIDs whose command line runs a shim from <data>/data/*/bin/ (k3s-killall.sh's getshims)."""
    found = []
    prefix = data.rstrip("/") + "/data/"
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                args = handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if any(a.startswith(prefix) and a.endswith("/bin/" + SHIM_NAME) for a in args):
            found.append(int(entry))
    return found


def pod_plan(seed: str) -> list:
    """Two pods: one with a pause container, one with pause + an app whose child does the work.

    Names are derived from `seed` so that a plan can be checked in tests."""
    pods = []
    for index, app in enumerate((False, True)):
        digest = hashlib.sha256(("%s-%d" % (seed, index)).encode()).hexdigest()
        ident, uid = digest[:64], str(uuid.UUID(digest[:32]))
        rootfs = os.path.join(TASK_DIR, ident, "rootfs")
        token = os.path.join(PODS_DIR, uid, "volumes", "kubernetes.io~projected", "kube-api-access-" + digest[32:37])
        containers = [{"args": ["/pause", "infinity"], "executable": "/bin/sleep", "cwd": rootfs}]
        if app:
            containers.append({"args": ["nginx: master process", "-c", "sleep infinity & wait"],
                               "executable": "/bin/sh", "cwd": token})
        pods.append({"id": ident, "uid": uid, "netns": "cni-" + str(uuid.UUID(digest[32:64])),
                     "veth": "veth" + digest[:8], "mounts": [rootfs, token], "containers": containers})
    return pods


IPTABLES_RULES = """*filter
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
:CNI-FORWARD - [0:0]
:FLANNEL-FWD - [0:0]
-A INPUT -m comment --comment "kubernetes firewall for dropping marked packets" -j KUBE-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s %(cidr)s -m comment --comment "flanneld forward" -j ACCEPT
-A CNI-FORWARD -d %(cidr)s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-POSTROUTING - [0:0]
:KUBE-SERVICES - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:FLANNEL-POSTRTG - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -s %(cidr)s -d %(cidr)s -m comment --comment "flanneld masq" -j RETURN
COMMIT
""" % {"cidr": POD_CIDR}

IP6TABLES_RULES = """*filter
:KUBE-FIREWALL - [0:0]
-A INPUT -m comment --comment "kubernetes firewall for dropping marked packets" -j KUBE-FIREWALL
COMMIT
"""


def run(*argv: str, data: str = None, quiet: bool = False) -> bool:
    """Run a command; log and return False when it fails (the runtime never stops K3S)."""
    try:
        result = subprocess.run(list(argv), input=data, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        core.log("warning", "stand-in runtime: %s: %s" % (argv[0], exc))
        return False
    if result.returncode != 0 and not quiet:
        core.log("warning", "stand-in runtime: %s: %s" % (" ".join(argv), result.stderr.strip()))
    return result.returncode == 0


def mounted(path: str) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        return any(line.split(" ")[1] == path for line in handle)


def link_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/sys/class/net", name))


def setup_network(pods: list) -> None:
    if not link_exists("cni0"):
        run("ip", "link", "add", "cni0", "type", "bridge")
        run("ip", "link", "set", "cni0", "up")
    vxlan = ("ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "nolearning")
    if not link_exists("flannel.1") and not run(*vxlan):
        run("ip", "link", "add", "flannel.1", "type", "dummy")
    for pod in pods:
        if not os.path.exists(os.path.join("/run/netns", pod["netns"])):
            run("ip", "netns", "add", pod["netns"])
        if not link_exists(pod["veth"]):
            run("ip", "link", "add", pod["veth"], "type", "veth", "peer", "name", "eth0", "netns", pod["netns"])
            run("ip", "link", "set", pod["veth"], "master", "cni0", "up")
    for tool, rules in (("iptables", IPTABLES_RULES), ("ip6tables", IP6TABLES_RULES)):
        if not run(tool, "-w", "-n", "-L", "KUBE-FIREWALL", quiet=True):  # not there yet
            run(tool + "-restore", "-w", "--noflush", data=rules)


def start_pods(data: str, pods: list, binary: bytes) -> None:
    bindir = shim_dir(data, binary)
    os.makedirs(bindir, exist_ok=True)
    shim = os.path.join(bindir, SHIM_NAME)
    if not os.path.exists(shim):
        core.write_private(shim, SHIM_SOURCE, 0o755)
    for pod in pods:
        for path in pod["mounts"]:
            os.makedirs(path, exist_ok=True)
            if not mounted(path):
                run("mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", path)
        with open(os.path.join(TASK_DIR, pod["id"], "config.json"), "w", encoding="utf-8") as handle:
            json.dump({"containers": pod["containers"]}, handle)
        # The shim daemonizes: its starter exits at once and is waited for here.
        subprocess.run(shim_command(shim, pod["id"]), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, check=False, timeout=60)


def start(config: dict) -> None:
    data = data_dir(config)
    if running_shims(data):
        core.log("info", "stand-in runtime: shims already running, nothing to start")
        return
    with open(sys.argv[0], "rb") as handle:
        binary = handle.read()
    pods = pod_plan(socket.gethostname() + ":" + data)
    setup_network(pods)
    start_pods(data, pods, binary)
    core.log("info", "stand-in runtime: started %d pod shims" % len(pods))


def _delayed(config: dict, delay: float) -> None:
    time.sleep(delay)
    try:
        start(config)
    except Exception as exc:  # noqa: BLE001 (never stop K3S: the nodes scenario checks the leftovers exist)
        core.log("warning", "stand-in runtime: %s" % exc)


def before_start(command: str, config: dict):
    """Extension hook (core.main): start the runtime a little after `k3s server|agent` started."""
    if command in ("server", "agent") and enabled():
        delay = core.env_float("K3S_STANDIN_RUNTIME_DELAY", 5)
        threading.Thread(target=_delayed, args=(config, delay), daemon=True, name="runtime").start()
    return None
