"""Shared reads for the node-change checks: the kept ansible-playbook outputs and the cluster."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import testinfra.host

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
K3S = "/usr/local/bin/k3s"
# Planted by remove_node.yml before any removal: reset and remove_node must keep it.
UNRELATED_RULE = "molecule-nodes unrelated rule"

# One round trip: what K3S (here its stand-in's runtime module) leaves on a node that
# k3s-killall.sh cleans (k3s-io/k3s install.sh, create_killall). Container processes are found by
# the stand-in's environment marker: their command lines do not mention K3S.
LEFTOVERS = r"""
# leftovers-probe (this probe's own command line is skipped)
import json, os, subprocess
def text(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    args = text("/proc/%s/cmdline" % pid).replace("\0", " ").strip()
    stat = text("/proc/%s/stat" % pid)
    if not args or "leftovers-probe" in args or stat[stat.rfind(")") + 2:][:1] == "Z":
        continue
    marked = "K3S_STANDIN_CONTAINER=" in text("/proc/%s/environ" % pid)
    if marked or "/var/lib/rancher/k3s/" in args or "containerd-shim" in args:
        procs[pid] = {"args": args, "container": marked, "cwd": os.path.realpath("/proc/%s/cwd" % pid)}
mounts = [l.split(" ")[1] for l in text("/proc/self/mounts").splitlines()
          if l.split(" ")[1].startswith(("/run/k3s", "/var/lib/kubelet", "/var/lib/rancher/k3s", "/run/netns/cni-"))]
def run(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
print(json.dumps({
    "processes": procs, "mounts": mounts,
    "netns": sorted(n for n in os.listdir("/run/netns") if n.startswith("cni-")) if os.path.isdir("/run/netns") else [],
    "links": sorted(os.listdir("/sys/class/net")),
    "cni0_ports": sorted(n for n in os.listdir("/sys/class/net")
                         if os.path.realpath("/sys/class/net/%s/master" % n).endswith("/cni0")),
    "iptables": run("iptables-save").splitlines(), "ip6tables": run("ip6tables-save").splitlines(),
}))
"""


def run_output(name: str) -> dict[str, Any]:
    """The JSON (ansible.posix.json callback) of one run kept by run_playbook.yml."""
    return json.loads((EPHEMERAL / f"{name}.json").read_text(encoding="utf-8"))


def changed(name: str) -> dict[str, int]:
    return {host: stats["changed"] for host, stats in run_output(name)["stats"].items()}


def ready_nodes(server: testinfra.host.Host) -> dict[str, bool]:
    items = json.loads(server.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    return {i["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in i["status"]["conditions"]) for i in items}


def leftovers(host: testinfra.host.Host) -> dict[str, Any]:
    return json.loads(host.check_output("python3 -c %s", LEFTOVERS))


def k3s_rules(lines: list[str]) -> list[str]:
    return [line for line in lines if any(k in line.upper() for k in ("KUBE-", "CNI-", "FLANNEL"))]


def k3s_gone(host: testinfra.host.Host) -> None:
    assert not host.file(K3S).exists
    for unit in ("k3s", "k3s-agent"):
        assert not host.file(f"/etc/systemd/system/{unit}.service").exists, unit
        assert not host.service(unit).is_running, unit
    for path in ("/etc/rancher/k3s", "/var/lib/rancher/k3s", "/etc/rancher/node"):
        assert not host.file(path).exists, path
    assert "/var/lib/rancher/k3s/data/" not in host.check_output("ps -eww -o args")
    left = leftovers(host)
    assert left["processes"] == {}, "shims or containers still running"
    assert left["mounts"] == [], "mounts under K3S's directories"
    assert left["netns"] == [], "CNI network namespaces"
    assert {"cni0", "flannel.1"} & set(left["links"]) == set(), left["links"]
    assert k3s_rules(left["iptables"]) == [] and k3s_rules(left["ip6tables"]) == []
    for tool in ("iptables", "ip6tables"):
        assert any(UNRELATED_RULE in line for line in left[tool]), f"{tool}: the unrelated rule was removed"
