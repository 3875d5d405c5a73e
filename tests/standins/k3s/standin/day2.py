"""Day-2 part of the K3S stand-in (NOT K3S; never ships in roles/ or plugins/).

What the day-2 playbooks use of K3S (docs.k3s.io: etcd-snapshot, backup-restore, upgrades):

* `k3s etcd-snapshot save [--name N] [--etcd-snapshot-dir D]`: an on-demand snapshot file
  `<dir>/<N>-<node-name>-<unix time>` (default dir <data-dir>/server/db/snapshots, default name
  `on-demand`); only on a server with an embedded-etcd datastore (sqlite: refused, as K3S does);
  `ls|list [-o json]`, `delete NAME...`, `prune --snapshot-retention N [--name N]` (keeps the
  newest N of that name prefix). Stand-in only: a snapshot file holds the datastore (state.json).
* `k3s server --cluster-reset [--cluster-reset-restore-path P]`: restores the snapshot P into
  server/db (the token must be the one the snapshot was taken with), resets the membership to
  this server alone and exits, telling the operator to restart without --cluster-reset and to
  wipe server/db on the other servers before they rejoin.
* `k3s kubectl delete node NODE`: the Node object is gone until the node's kubelet (agent or
  server) sends a heartbeat again; `k3s kubectl cordon|uncordon NODE`, `k3s kubectl drain NODE --ignore-daemonsets
  --delete-emptydir-data [--force] [--timeout=D] [--grace-period=N]` (K3S always runs
  DaemonSet pods (svclb) and emptyDir pods (metrics-server): without those two flags drain fails
  like kubectl does). Node objects get `spec.unschedulable` while cordoned.
* node versions: each node reports the version of the binary it was started with
  (kubeletVersion; see core.py); `k3s --version`.

Stand-in only (for tests):
* every cordon/uncordon/drain is appended with its time to the `events` list of
  <data-dir>/server/standin-day2.json on the host that ran kubectl (the playbooks run them all
  from the first server), so tests can check order and timing;
* fault injection: while <data-dir>/standin-fail-start exists, and is empty or holds the
  running version, `k3s server` / `k3s agent` fail at start (a node broken mid-upgrade);
  a node name listed in <data-dir>/server/standin-drain-fail makes its drain fail (a
  PodDisruptionBudget that never allows the eviction).
"""

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import sys
import time

from . import core

DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
DRAIN_FLAGS = ("ignore-daemonsets", "delete-emptydir-data", "force", "disable-eviction")
DRAIN_VALUE_FLAGS = ("timeout", "grace-period", "pod-selector", "skip-wait-for-delete-timeout")


# --------------------------------------------------------------------------- paths and state


def data_dir(flags=None) -> str:
    """The data dir from --data-dir, config.yaml or the default (rooted for tests)."""
    flags = flags or {}
    configured = flags.get("data-dir")
    if not configured:
        path = os.environ.get("K3S_CONFIG_FILE") or core.rooted("/etc/rancher/k3s/config.yaml")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                configured = core.parse_config(handle.read()).get("data-dir")
    return core.rooted(str(configured or DEFAULT_DATA_DIR))


@contextlib.contextmanager
def day2_state(directory: str):
    """Locked read-modify-write of <data-dir>/server/standin-day2.json."""
    path = os.path.join(directory, "server", "standin-day2.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            state = {}
        state.setdefault("cordoned", {})
        state.setdefault("events", [])
        yield state
        core.write_private(path, json.dumps(state, indent=1, sort_keys=True), 0o644)


def read_day2_state(directory: str) -> dict:
    try:
        with open(os.path.join(directory, "server", "standin-day2.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"cordoned": {}, "events": []}


# --------------------------------------------------------------------------- hooks for core


def decorate_node(node: dict):
    """Add spec.unschedulable (and the taint kubectl cordon adds) to a Node object; None for a
    node deleted with kubectl that has not sent a heartbeat since (a running kubelet, or a
    reinstalled node, registers its Node again, as with Kubernetes)."""
    name = node["metadata"]["name"]
    state = read_day2_state(data_dir())
    deleted = state.get("deleted", {}).get(name)
    if deleted is not None:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        beat = ready[0].get("lastHeartbeatTime", "") if ready else ""
        if beat <= deleted:
            return None
    if state.get("cordoned", {}).get(name):
        node.setdefault("spec", {})["unschedulable"] = True
        node["spec"]["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    return node


def before_start(command: str, config: dict):
    """Called before `k3s server|agent` starts: fault injection, then --cluster-reset."""
    directory = core.rooted(str(config.get("data-dir") or DEFAULT_DATA_DIR))
    marker = os.path.join(directory, "standin-fail-start")
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as handle:
            wanted = handle.read().strip()
        if not wanted or wanted == core.VERSION:
            raise core.StandinError("stand-in fault injection: %s start of %s failed (%s exists)"
                                    % (command, core.VERSION, marker))
    if command == "server" and config.get("cluster-reset"):
        return cluster_reset(config, directory)
    return None


# --------------------------------------------------------------------------- kubectl


def parse_kubectl(args: list):
    """Split kubectl arguments into words and --flags (value flags as name -> value)."""
    words, flags = [], {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            if not sep and name in DRAIN_VALUE_FLAGS:
                i += 1
                value = args[i] if i < len(args) else ""
            flags[name] = value if (sep or name in DRAIN_VALUE_FLAGS) else True
        else:
            words.append(arg)
        i += 1
    return words, flags


def existing_node(name: str) -> dict:
    """The Node object as kubectl sees it: NotFound also for a node deleted with kubectl."""
    not_found = core.StandinError('Error from server (NotFound): nodes "%s" not found' % name)
    try:
        node = decorate_node(core.api_get("/api/v1/nodes/%s" % name))
    except core.StandinError as exc:
        if "(404)" in str(exc):
            raise not_found
        raise
    if node is None:
        raise not_found
    return node


def record(state: dict, action: str, node: str, **extra) -> None:
    state["events"].append(dict(extra, action=action, node=node, time=round(time.time(), 3)))


def cordon(name: str, on: bool) -> str:
    existing_node(name)
    with day2_state(data_dir()) as state:
        was = bool(state["cordoned"].get(name))
        if on:
            state["cordoned"][name] = True
        else:
            state["cordoned"].pop(name, None)
        record(state, "cordon" if on else "uncordon", name, changed=was != on)
    verb = "cordoned" if on else "uncordoned"
    return "node/%s %s%s\n" % (name, "already " if was == on else "", verb)


def drain(name: str, flags: dict) -> str:
    existing_node(name)
    directory = data_dir()
    unknown = sorted(set(flags) - set(DRAIN_FLAGS) - set(DRAIN_VALUE_FLAGS) - {"request-timeout"})
    if unknown:
        raise core.StandinError("error: unknown flag: --%s" % unknown[0])
    with day2_state(directory) as state:
        was = bool(state["cordoned"].get(name))
        state["cordoned"][name] = True
        record(state, "cordon", name, changed=not was, via="drain")
    lines = ["node/%s %scordoned" % (name, "already " if was else "")]
    if not flags.get("ignore-daemonsets"):
        raise core.StandinError(
            "error: unable to drain node %r due to error: cannot delete DaemonSet-managed Pods (use "
            "--ignore-daemonsets to ignore): kube-system/svclb-traefik-%s, continuing command..." % (name, name[:5]))
    if not flags.get("delete-emptydir-data"):
        raise core.StandinError(
            "error: unable to drain node %r due to error: cannot delete Pods with local storage (use "
            "--delete-emptydir-data to override): kube-system/metrics-server-5985cbc9d7-x2v4q" % name)
    blocked = os.path.join(directory, "server", "standin-drain-fail")
    if os.path.exists(blocked):
        with open(blocked, encoding="utf-8") as handle:
            if name in handle.read().split():
                with day2_state(directory) as state:
                    record(state, "drain-failed", name)
                raise core.StandinError(
                    "error when evicting pods/\"app-0\" -n \"default\" (will retry after 5s): Cannot evict pod as it "
                    "would violate the pod's disruption budget.\nerror: unable to drain node %r: global timeout "
                    "reached: %s" % (name, flags.get("timeout") or "0s"))
    with day2_state(directory) as state:
        record(state, "drain", name, flags=sorted(flags))
    lines.append("evicting pod kube-system/coredns-ccb96694c-5b2vh")
    lines.append("node/%s drained" % name)
    return "\n".join(lines) + "\n"


def delete_node(name: str) -> str:
    existing_node(name)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with day2_state(data_dir()) as state:
        state.setdefault("deleted", {})[name] = stamp
        state["cordoned"].pop(name, None)
        record(state, "delete", name)
    return 'node "%s" deleted\n' % name


def handle_kubectl(args: list):
    """cordon / uncordon / drain / delete node; None for calls that are not day-2 ones."""
    words, flags = parse_kubectl(args)
    if words[:2] in (["delete", "node"], ["delete", "nodes"], ["delete", "no"]) and len(words) == 3:
        sys.stdout.write(delete_node(words[2]))
        return 0
    if len(words) == 2 and words[0] == "delete" and words[1].startswith(("node/", "nodes/")):
        sys.stdout.write(delete_node(words[1].split("/", 1)[1]))
        return 0
    if not words or words[0] not in ("cordon", "uncordon", "drain"):
        return None
    if len(words) != 2:
        raise core.StandinError("error: %s needs exactly one node name" % words[0])
    name = words[1].split("/", 1)[1] if words[1].startswith(("node/", "nodes/")) else words[1]
    if words[0] == "drain":
        sys.stdout.write(drain(name, flags))
    else:
        sys.stdout.write(cordon(name, words[0] == "cordon"))
    return 0


# --------------------------------------------------------------------------- etcd-snapshot


def snapshot_flags(args: list):
    words, flags = [], {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name, sep, value = arg.lstrip("-").partition("=")
            name = {"d": "data-dir", "o": "output"}.get(name, name)
            if not sep and name in ("etcd-snapshot-compress", "snapshot-compress", "debug"):
                value = "true"
            elif not sep:
                i += 1
                if i >= len(args):
                    raise core.StandinError("flag needs an argument: --%s" % name)
                value = args[i]
            flags[name] = value
        else:
            words.append(arg)
        i += 1
    return words, flags


def load_datastore(directory: str) -> dict:
    state = os.path.join(directory, "server", "db", "state.json")
    if not os.path.exists(state):
        raise core.StandinError("etcd database not found in %s" % os.path.dirname(state))
    with open(state, encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("datastore") != "etcd":
        raise core.StandinError("etcd datastore disabled: this server uses sqlite (snapshots need embedded etcd)")
    return data


def snapshot_dir(directory: str, flags: dict) -> str:
    configured = flags.get("etcd-snapshot-dir") or flags.get("dir")
    return core.rooted(configured) if configured else os.path.join(directory, "server", "db", "snapshots")


def node_name(directory: str) -> str:
    path = os.environ.get("K3S_CONFIG_FILE") or core.rooted("/etc/rancher/k3s/config.yaml")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            name = core.parse_config(handle.read()).get("node-name")
        if name:
            return str(name).lower()
    return os.uname().nodename.lower()


def snapshot_save(directory: str, flags: dict) -> str:
    data = load_datastore(directory)
    target = snapshot_dir(directory, flags)
    os.makedirs(target, mode=0o700, exist_ok=True)
    name = "%s-%s-%d" % (flags.get("name") or "on-demand", node_name(directory), int(time.time()))
    path = os.path.join(target, name)
    if os.path.exists(path):
        time.sleep(1)
        return snapshot_save(directory, flags)
    core.write_private(path, json.dumps({"standin_snapshot": 1, "version": core.VERSION, "datastore": data}))
    return "Snapshot %s saved.\n" % name


def snapshot_files(target: str) -> list:
    if not os.path.isdir(target):
        return []
    files = [os.path.join(target, n) for n in sorted(os.listdir(target)) if not n.startswith(".")]
    return sorted((f for f in files if os.path.isfile(f)), key=os.path.getmtime)


def snapshot_list(directory: str, flags: dict) -> str:
    files = snapshot_files(snapshot_dir(directory, flags))
    if flags.get("output") == "json":
        items = [{"metadata": {"name": os.path.basename(f)},
                  "spec": {"snapshotName": os.path.basename(f), "location": "file://" + f,
                           "nodeName": node_name(directory)},
                  "status": {"size": str(os.path.getsize(f)),
                             "creationTime": datetime.datetime.fromtimestamp(
                                 os.path.getmtime(f), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
                 for f in files]
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2) + "\n"
    lines = ["%-50s %-90s %-8s %s" % ("Name", "Location", "Size", "Created")]
    for f in files:
        created = datetime.datetime.fromtimestamp(os.path.getmtime(f), datetime.timezone.utc)
        row = (os.path.basename(f), "file://" + f, os.path.getsize(f), created.strftime("%Y-%m-%dT%H:%M:%SZ"))
        lines.append("%-50s %-90s %-8d %s" % row)
    return "\n".join(lines) + "\n"


def snapshot_delete(directory: str, flags: dict, names: list) -> str:
    if not names:
        raise core.StandinError("no snapshots given for removal")
    target = snapshot_dir(directory, flags)
    out = []
    for name in names:
        path = os.path.join(target, os.path.basename(name))
        if not os.path.isfile(path):
            raise core.StandinError("snapshot %s not found" % name)
        os.unlink(path)
        out.append("Snapshot %s deleted." % name)
    return "\n".join(out) + "\n"


def snapshot_prune(directory: str, flags: dict) -> str:
    keep = int(flags.get("snapshot-retention") or flags.get("etcd-snapshot-retention") or 5)
    prefix = (flags.get("name") or "on-demand") + "-"
    files = [f for f in snapshot_files(snapshot_dir(directory, flags)) if os.path.basename(f).startswith(prefix)]
    removed = files[:-keep] if keep > 0 else files
    for path in removed:
        os.unlink(path)
    return "".join("Removing local snapshot %s\n" % p for p in removed)


def etcd_snapshot(args: list) -> int:
    words, flags = snapshot_flags(args)
    directory = data_dir(flags)
    verb = words[0] if words else "save"
    if verb == "save":
        text = snapshot_save(directory, flags)
    elif verb in ("ls", "list"):
        text = snapshot_list(directory, flags)
    elif verb in ("delete", "rm"):
        text = snapshot_delete(directory, flags, words[1:])
    elif verb == "prune":
        text = snapshot_prune(directory, flags)
    else:
        raise core.StandinError("the K3S stand-in does not implement 'etcd-snapshot %s'" % verb)
    sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------- cluster-reset


def cluster_reset(config: dict, directory: str) -> int:
    """`k3s server --cluster-reset [--cluster-reset-restore-path P]`: restore, reset membership, exit."""
    db = os.path.join(directory, "server", "db")
    token = core.read_token(config)
    restore = config.get("cluster-reset-restore-path")
    if restore:
        path = restore if os.path.isabs(str(restore)) else os.path.join(db, "snapshots", str(restore))
        path = core.rooted(path) if not os.path.exists(path) else path
        try:
            with open(path, encoding="utf-8") as handle:
                snapshot = json.load(handle)
        except (OSError, ValueError) as exc:
            raise core.StandinError("failed to restore etcd snapshot %s: %s" % (restore, exc))
        data = snapshot["datastore"]
        if token is None or core.split_token(token)[1] != data["secret"]:
            raise core.StandinError("starting kubernetes: preparing server: failed to decrypt bootstrap data: "
                                    "the token differs from the one the snapshot was taken with")
        old = "%s-old-%d" % (db, int(time.time()))
        if os.path.isdir(db):  # K3S moves the old datastore aside too (db/etcd-old-<time>)
            shutil.move(db, old)
        os.makedirs(db, mode=0o700)
        if os.path.isdir(os.path.join(old, "snapshots")):
            shutil.copytree(os.path.join(old, "snapshots"), os.path.join(db, "snapshots"))
    else:
        data = load_datastore(directory)
    if data.get("datastore") != "etcd":
        raise core.StandinError("--cluster-reset is only valid with an embedded etcd datastore")
    me = node_name(directory)
    servers = [n for n, node in data.get("nodes", {}).items() if node.get("role") == "server" and n != me]
    for name in servers:  # etcd members other than this one are gone; their Node objects stay
        data["nodes"][name]["url"] = ""
    data["reset_at"] = time.time()
    core.write_private(os.path.join(db, "state.json"), json.dumps(data, indent=1, sort_keys=True))
    core.log("info", "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. "
                     "Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes")
    return 0


COMMANDS = {"etcd-snapshot": etcd_snapshot}
