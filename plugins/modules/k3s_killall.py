#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k3s_killall
short_description: Stop what K3S leaves running on a node and clean its mounts and network
version_added: 0.1.0
description:
  - Does on the node what upstream's C(k3s-killall.sh) does (written by K3S's C(install.sh), function
    C(create_killall)), after the K3S unit was stopped. The unit has C(KillMode=process), so stopping it
    leaves the containerd shims and the containers running.
  - Kills with C(SIGKILL) every process whose command line runs a shim from
    C(<data_dir>/data/<hash>/bin/containerd-shim*), and all their descendants (the containers, whose
    command lines do not mention K3S), children first, and waits until they are gone.
  - Force-unmounts (C(umount -f)), deepest first, every mount under C(/run/k3s), C(/var/lib/kubelet/pods),
    C(/var/lib/kubelet/plugins), O(data_dir) and the C(/run/netns/cni-*) namespaces, then removes the
    mount points. Fails naming the mount when one stays busy.
  - Deletes the C(cni-*) network namespaces, the interfaces enslaved to C(cni0), and C(cni0), C(flannel.1),
    C(flannel-v6.1), C(kube-ipvs0), C(flannel-wg), C(flannel-wg-v6).
  - Removes every iptables and ip6tables line that mentions C(KUBE-), C(CNI-) or C(flannel) (any case), as
    C(iptables-save | grep -v ... | iptables-restore) does; other rules stay. Skipped for a tool that is not
    installed.
  - Changes nothing, and reports no change, on a node where none of this is left.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  data_dir:
    description: K3S's data directory (C(data-dir)).
    type: path
    default: /var/lib/rancher/k3s
  timeout:
    description: Seconds to wait for the killed processes to exit.
    type: int
    default: 30
attributes:
  check_mode:
    description: Reports what would be killed, unmounted and deleted, and changes nothing.
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
notes:
  - Stop the K3S unit first; a running K3S starts new shims.
"""

EXAMPLES = r"""
- name: Stop the K3S unit first
  ansible.builtin.systemd_service:
    name: k3s
    state: stopped

- name: Kill the shims and containers, unmount, clean the network
  dictamesh.k3s_gitops.k3s_killall:
"""

RETURN = r"""
killed:
  description: The processes killed (shims and their descendants), with their command lines.
  returned: always
  type: list
  elements: dict
unmounted:
  description: The mount points unmounted and removed.
  returned: always
  type: list
  elements: str
netns:
  description: The network namespaces deleted.
  returned: always
  type: list
  elements: str
links:
  description: The network interfaces deleted.
  returned: always
  type: list
  elements: str
rules:
  description: Per tool (C(iptables), C(ip6tables)), the lines removed from its C(-save) output.
  returned: always
  type: dict
"""

import os
import re
import shutil
import signal
import time

from ansible.module_utils.basic import AnsibleModule

MOUNT_PREFIXES = ("/run/k3s", "/var/lib/kubelet/pods", "/var/lib/kubelet/plugins")
NETNS_DIR = "/run/netns"
SYS_NET = "/sys/class/net"
LINKS = ("cni0", "flannel.1", "flannel-v6.1", "kube-ipvs0", "flannel-wg", "flannel-wg-v6")
RULE_PATTERN = re.compile(r"KUBE-|CNI-|flannel", re.IGNORECASE)


def read_processes(proc="/proc"):
    """{pid: {"ppid": int, "args": str, "state": str}} for the processes visible now."""
    table = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat"), "rb") as handle:
                stat = handle.read().decode("utf-8", "replace")
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                args = handle.read().decode("utf-8", "replace")
        except (IOError, OSError):
            continue  # gone meanwhile
        fields = stat[stat.rfind(")") + 2:].split()  # comm may hold spaces and parentheses
        table[int(entry)] = {"state": fields[0], "ppid": int(fields[1]), "args": args.replace("\0", " ").strip()}
    return table


def shim_pattern(data_dir):
    return re.compile(re.escape(data_dir.rstrip("/")) + r"/data/[^/\s]+/bin/containerd-shim")


def shims(table, data_dir):
    pattern = shim_pattern(data_dir)
    return sorted(pid for pid, info in table.items() if pattern.search(info["args"]))


def process_trees(table, roots):
    """The roots and all their descendants, deepest first (children are killed before parents)."""
    children = {}
    for pid, info in table.items():
        children.setdefault(info["ppid"], []).append(pid)
    order, seen = [], set()

    def visit(pid):
        if pid in seen:
            return
        seen.add(pid)
        for child in sorted(children.get(pid, [])):
            visit(child)
        order.append(pid)

    for root in roots:
        visit(root)
    return order


def unescape_mount(path):
    """/proc/self/mounts writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_to_remove(mounts_text, data_dir):
    prefixes = MOUNT_PREFIXES + (data_dir.rstrip("/"),)
    found = []
    for line in mounts_text.splitlines():
        fields = line.split(" ")
        if len(fields) < 2:
            continue
        path = unescape_mount(fields[1])
        under = any(path == p or path.startswith(p + "/") for p in prefixes)
        if under or path.startswith(NETNS_DIR + "/cni-"):
            found.append(path)
    return sorted(found, reverse=True)


def links_to_delete(ip_link_text):
    """Names from `ip -o link show`: the ports of cni0 first, then K3S's own interfaces."""
    ports, present = [], []
    for line in ip_link_text.splitlines():
        match = re.match(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:", line)
        if not match:
            continue
        name = match.group(1)
        if re.search(r"\smaster cni0(\s|$)", line):
            ports.append(name)
        elif name in LINKS:
            present.append(name)
    return ports + sorted(present, key=LINKS.index)


def filter_rules(save_text):
    """(kept text, removed lines) of an iptables-save dump."""
    kept, removed = [], []
    for line in save_text.splitlines():
        (removed if RULE_PATTERN.search(line) else kept).append(line)
    return "\n".join(kept) + "\n", removed


def alive(pid, proc="/proc"):
    """True while the process exists and is not a zombie (a zombie holds no mount)."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")


def remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except (IOError, OSError):
            pass


class KillAll(object):
    def __init__(self, module):
        self.module = module
        self.data_dir = module.params["data_dir"]
        self.check = module.check_mode
        self.result = {"changed": False, "killed": [], "unmounted": [], "netns": [], "links": [], "rules": {}}

    def command(self, argv, data=None):
        rc, out, err = self.module.run_command(argv, data=data, binary_data=data is not None)
        if rc != 0:
            self.module.fail_json(msg="%s failed (rc %d): %s" % (" ".join(argv), rc, err.strip()), **self.result)
        return out

    def kill(self):
        table = read_processes()
        pids = process_trees(table, shims(table, self.data_dir))
        pids = [pid for pid in pids if pid != os.getpid() and table[pid]["state"] not in ("Z", "X")]
        self.result["killed"] = [{"pid": pid, "args": table[pid]["args"]} for pid in pids]
        if not pids or self.check:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # already gone
        deadline = time.time() + self.module.params["timeout"]
        while any(alive(pid) for pid in pids):
            if time.time() > deadline:
                left = [pid for pid in pids if alive(pid)]
                self.module.fail_json(msg="processes %s still running %d s after SIGKILL"
                                      % (left, self.module.params["timeout"]), **self.result)
            time.sleep(0.2)

    def mounts(self):
        with open("/proc/self/mounts") as handle:
            return mounts_to_remove(handle.read(), self.data_dir)

    def unmount(self):
        paths = self.mounts()
        self.result["unmounted"] = sorted(set(paths), reverse=True)
        if self.check:
            return
        for path in paths:
            # A path can be listed more than once (stacked mounts, or a shared /run/netns peer that
            # one umount removes with it): unmount only while it is still mounted.
            if path not in self.mounts():
                continue
            rc, _out, err = self.module.run_command(["umount", "-f", path])
            if rc != 0:
                self.module.fail_json(msg="umount -f %s failed: %s (a process outside the containerd shims' "
                                      "process trees still uses it)" % (path, err.strip()), **self.result)
        for path in paths:
            remove_path(path)

    def netns(self):
        names = sorted(n for n in os.listdir(NETNS_DIR) if n.startswith("cni-")) if os.path.isdir(NETNS_DIR) else []
        self.result["netns"] = names
        if not self.check:
            for name in names:
                self.command([self.module.get_bin_path("ip", required=True), "netns", "delete", name])

    def links(self):
        ip = self.module.get_bin_path("ip", required=True)
        rc, out, err = self.module.run_command([ip, "-o", "link", "show"])
        if rc != 0:
            self.module.fail_json(msg="ip -o link show failed: %s" % err.strip(), **self.result)
        names = links_to_delete(out)
        self.result["links"] = names
        if self.check:
            return
        for name in names:
            self.delete_link(ip, name)

    def delete_link(self, ip, name):
        # A cni0 port goes away with its namespace, which the kernel tears down asynchronously after
        # the last process and mount are gone: it can vanish between the listing and the delete.
        if not os.path.exists(os.path.join(SYS_NET, name)):
            return
        rc, _out, err = self.module.run_command([ip, "link", "delete", name])
        if rc != 0 and os.path.exists(os.path.join(SYS_NET, name)):
            self.module.fail_json(msg="%s link delete %s failed (rc %d): %s" % (ip, name, rc, err.strip()),
                                  **self.result)

    def rules(self):
        for tool in ("iptables", "ip6tables"):
            save = self.module.get_bin_path(tool + "-save")
            restore = self.module.get_bin_path(tool + "-restore")
            if not save or not restore:
                continue
            kept, removed = filter_rules(self.command([save]))
            if not removed:
                continue
            self.result["rules"][tool] = removed
            if not self.check:
                self.command([restore], data=kept)

    def run(self):
        self.kill()
        self.unmount()
        self.netns()
        self.links()
        self.rules()
        r = self.result
        r["changed"] = bool(r["killed"] or r["unmounted"] or r["netns"] or r["links"] or r["rules"])
        return r


def main():
    module = AnsibleModule(
        argument_spec=dict(
            data_dir=dict(type="path", default="/var/lib/rancher/k3s"),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**KillAll(module).run())


if __name__ == "__main__":
    main()
