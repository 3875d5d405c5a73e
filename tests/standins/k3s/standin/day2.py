"""Day-2 part of the K3S stand-in (NOT K3S; never ships in roles/ or plugins/).

What the day-2 playbooks use of K3S (docs.k3s.io: etcd-snapshot, backup-restore, upgrades):

* `k3s etcd-snapshot save [--name N] [--dir D]`, `ls|list [-o json]`, `delete NAME...`,
  `prune [--name N] --snapshot-retention K`: requests to the running local server (POST
  /db/snapshot, authenticated with the token of <data-dir>/server/token), which writes
  `<dir>/<N>-<node-name>-<unix time>` (default dir <data-dir>/server/db/snapshots, default name
  `on-demand`) or deletes; the CLI logs `Snapshot <name> saved.` / `deleted.` on stderr (logrus),
  nothing on stdout except `ls`. No server running: fatal "failed to get CA certs"; a server on
  sqlite: fatal "see server log for details: etcd datastore disabled". Stand-in only: a snapshot
  file holds the datastore (state.json).
* `k3s server --cluster-reset [--cluster-reset-restore-path P]`: restores the snapshot P into
  server/db (the token must be the one the snapshot was taken with), resets the membership to
  this server alone and exits, telling the operator to restart without --cluster-reset and to
  wipe server/db on the other servers before they rejoin.
* node versions: each node reports the version of the binary it was started with
  (kubeletVersion; see core.py); `k3s --version`.
* kubectl (cordon, drain, delete node, ...) is a real kubectl against the server's API
  (apiserver.py); deleting an etcd member's Node removes the member first.

Stand-in only (for tests): fault injection: while <data-dir>/standin-fail-start exists, and is
empty or holds the running version, `k3s server` / `k3s agent` fail at start (a node broken
mid-upgrade).
"""

import base64
import datetime
import json
import os
import shutil
import sys
import time
import urllib.error
import uuid

from . import core

DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"


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


# --------------------------------------------------------------------------- hooks for core


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


# --------------------------------------------------------------------------- etcd-snapshot
#
# k3s-io/k3s v1.34 pkg/cli/etcdsnapshot/etcd_snapshot.go: every etcd-snapshot subcommand is a
# request to the running server: the token (--token, else <data-dir>/server/token), the server
# (--server, default https://127.0.0.1:6443), GET /cacerts (its hash checked against a K10 token),
# then POST /db/snapshot {operation, name, dir, retention} with basic auth server:<secret>
# (pkg/clientaccess). The server takes the snapshot (pkg/etcd/snapshot.go: <name>-<node>-<unix time>
# in <data-dir>/server/db/snapshots) and answers {created|deleted: [names]}; the CLI logs
# "Snapshot <name> saved." / "deleted." through logrus, i.e. on stderr; only `ls` prints on stdout.
# A server without etcd answers "etcd datastore disabled"; the CLI then fails with
# "Error: see server log for details: <message>" (pkg/cli/etcdsnapshot wrapServerError).

SNAPSHOT_VALUE_FLAGS = ("data-dir", "name", "dir", "etcd-snapshot-dir", "snapshot-retention",
                        "etcd-snapshot-retention", "output", "token", "server", "node-name", "log", "etcd-s3-bucket")


def snapshot_flags(args: list):
    words, flags = [], {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name, sep, value = arg.lstrip("-").partition("=")
            name = {"d": "data-dir", "o": "output", "t": "token", "s": "server"}.get(name, name)
            if not sep and name in SNAPSHOT_VALUE_FLAGS:
                i += 1
                if i >= len(args):
                    raise core.StandinError("flag needs an argument: --%s" % name)
                value = args[i]
            elif not sep:
                value = "true"
            flags[name] = value
        else:
            words.append(arg)
        i += 1
    return words, flags


def snapshot_dir(directory: str, flags: dict) -> str:
    configured = flags.get("etcd-snapshot-dir") or flags.get("dir")
    return core.rooted(configured) if configured else os.path.join(directory, "server", "db", "snapshots")


def snapshot_files(target: str) -> list:
    if not os.path.isdir(target):
        return []
    files = [os.path.join(target, n) for n in sorted(os.listdir(target)) if not n.startswith(".")]
    return sorted((f for f in files if os.path.isfile(f)), key=os.path.getmtime)


def snapshot_items(files: list, node: str) -> list:
    return [{"metadata": {"name": os.path.basename(f)},
             "spec": {"snapshotName": os.path.basename(f), "location": "file://" + f, "nodeName": node},
             "status": {"size": str(os.path.getsize(f)), "readyToUse": True,
                        "creationTime": datetime.datetime.fromtimestamp(
                            os.path.getmtime(f), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
            for f in files]


def db_snapshot(daemon, request: dict):
    """Server side of POST /db/snapshot (k3s-io/k3s pkg/etcd/snapshot_handler.go): (code, answer)."""
    if daemon.cluster.data.get("datastore") != "etcd":
        return 500, {"message": "etcd datastore disabled"}
    flags = {"dir": request["dir"]} if request.get("dir") else {}
    target = snapshot_dir(daemon.data_dir, flags)
    names = request.get("name") or []
    operation = request.get("operation")
    if operation == "save":
        os.makedirs(target, mode=0o700, exist_ok=True)
        while True:
            name = "%s-%s-%d" % (names[0] if names else "on-demand", daemon.node_name, int(time.time()))
            if not os.path.exists(os.path.join(target, name)):
                break
            time.sleep(0.2)
        core.log("info", "Saving etcd snapshot to %s" % os.path.join(target, name))
        core.write_private(os.path.join(target, name), json.dumps(
            {"standin_snapshot": 1, "version": core.VERSION, "datastore": daemon.cluster.data}))
        return 200, {"created": [name]}
    if operation == "list":
        return 200, {"apiVersion": "k3s.cattle.io/v1", "kind": "ETCDSnapshotFileList",
                     "items": snapshot_items(snapshot_files(target), daemon.node_name)}
    if operation == "delete":
        deleted = []
        for name in names:
            path = os.path.join(target, os.path.basename(name))
            if os.path.isfile(path):
                os.unlink(path)
                deleted.append(name)
        return 200, {"deleted": deleted}
    if operation == "prune":
        keep = int(request.get("retention") if request.get("retention") is not None else 5)
        prefix = (names[0] if names else "on-demand") + "-"
        files = [f for f in snapshot_files(target) if os.path.basename(f).startswith(prefix)]
        removed = files[:-keep] if keep > 0 else files
        for path in removed:
            os.unlink(path)
        return 200, {"deleted": [os.path.basename(f) for f in removed]}
    return 400, {"message": "invalid snapshot operation"}


def snapshot_request(directory: str, flags: dict, request: dict):
    """The CLI's request to the server (see above); StandinError with upstream's messages."""
    token = flags.get("token") or os.environ.get("K3S_TOKEN")
    if not token:
        path = os.path.join(directory, "server", "token")
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().rstrip("\n")
        except OSError as exc:
            raise core.StandinError("Error: open %s: %s" % (path, (exc.strerror or "").lower()))
    server = (flags.get("server") or os.environ.get("K3S_URL")
              or "https://127.0.0.1:%s" % (os.environ.get("K3S_STANDIN_PORT") or 6443)).rstrip("/")
    expected, secret = core.split_token(token)
    try:
        ca_pem = core.http_json(server + "/cacerts", core.unverified_context(), timeout=5)
    except urllib.error.HTTPError as exc:
        raise core.StandinError('Error: failed to get CA certs: %s/cacerts: %s %s' % (server, exc.code, exc.reason))
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        refused = isinstance(reason, ConnectionRefusedError)
        raise core.StandinError('Error: failed to get CA certs: Get "%s/cacerts": %s' % (
            server, "dial tcp %s: connect: connection refused" % server.split("://", 1)[-1] if refused else reason))
    if expected and expected != core.ca_hash(ca_pem.encode()):
        raise core.StandinError("Error: token CA hash does not match the Cluster CA certificate hash")
    auth = base64.b64encode(("server:" + secret).encode()).decode()
    try:
        return core.http_json(server + "/db/snapshot", core.ca_context(ca_pem), body=request,
                              headers={"Authorization": "Basic " + auth}, timeout=120)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message") or exc.reason
        except ValueError:
            message = exc.reason
        raise core.StandinError("Error: see server log for details: %s" % message)
    except (OSError, urllib.error.URLError) as exc:
        raise core.StandinError("Error: %s" % exc)


def snapshot_list_text(answer: dict, output: str) -> str:
    items = sorted(answer.get("items") or [], key=lambda i: (i["status"]["creationTime"], i["spec"]["snapshotName"]))
    if output == "json":
        return json.dumps(dict(answer, items=items), indent=4) + "\n"
    if output not in ("", "table"):
        raise core.StandinError("Error: invalid output format: %s" % output)
    rows = [("Name", "Location", "Size", "Created")] + [
        (i["spec"]["snapshotName"], i["spec"]["location"], i["status"]["size"], i["status"]["creationTime"])
        for i in items]
    widths = [max(len(str(r[c])) for r in rows) for c in range(4)]
    return "".join(" ".join(str(r[c]).ljust(widths[c]) for c in range(4)).rstrip() + "\n" for r in rows)


def etcd_snapshot(args: list) -> int:
    try:
        return snapshot_command(args)
    except core.StandinError as exc:
        core.log("fatal", str(exc), escape=True)
        return 1


def snapshot_command(args: list) -> int:
    words, flags = snapshot_flags(args)
    directory = data_dir(flags)
    verb = words[0] if words else "save"
    request: dict = {}
    if flags.get("etcd-snapshot-dir") or flags.get("dir"):
        request["dir"] = snapshot_dir(directory, flags)
    if verb == "save":
        if len(words) > 1:
            raise core.StandinError("Error: this command does not take any arguments")
        request.update(operation="save", name=[flags.get("name") or "on-demand"])
        for name in snapshot_request(directory, flags, request).get("created") or []:
            core.log("info", "Snapshot %s saved." % name, escape=True)
    elif verb in ("ls", "list", "l"):
        request.update(operation="list")
        sys.stdout.write(snapshot_list_text(snapshot_request(directory, flags, request), flags.get("output", "")))
    elif verb in ("delete", "rm"):
        if len(words) < 2:
            raise core.StandinError("Error: no snapshots given for removal")
        request.update(operation="delete", name=words[1:])
        deleted = snapshot_request(directory, flags, request).get("deleted") or []
        for name in deleted:
            core.log("info", "Snapshot %s deleted." % name, escape=True)
        for name in words[1:]:
            if name not in deleted:
                core.log("warning", "Snapshot %s not found." % name, escape=True)
    elif verb == "prune":
        retention = flags.get("snapshot-retention") or flags.get("etcd-snapshot-retention") or "5"
        request.update(operation="prune", name=[flags.get("name") or "on-demand"], retention=int(retention))
        for name in snapshot_request(directory, flags, request).get("deleted") or []:
            core.log("info", "Snapshot %s deleted." % name, escape=True)
    else:
        raise core.StandinError("the K3S stand-in does not implement 'etcd-snapshot %s'" % verb)
    return 0


# --------------------------------------------------------------------------- cluster-reset


def load_datastore(directory: str) -> dict:
    state = os.path.join(directory, "server", "db", "state.json")
    if not os.path.exists(state):
        raise core.StandinError("etcd database not found in %s" % os.path.dirname(state))
    with open(state, encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("datastore") != "etcd":
        raise core.StandinError("etcd datastore disabled: this server uses sqlite (snapshots need embedded etcd)")
    return data


def node_name(directory: str) -> str:  # pylint: disable=unused-argument
    path = os.environ.get("K3S_CONFIG_FILE") or core.rooted("/etc/rancher/k3s/config.yaml")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            name = core.parse_config(handle.read()).get("node-name")
        if name:
            return str(name).lower()
    return os.uname().nodename.lower()


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
    # k3s-io/k3s pkg/etcd/etcd.go Reset: setName(true), a new member name for the new cluster
    member = "%s-%s" % (me, uuid.uuid4().hex[:8])
    os.makedirs(os.path.join(db, "etcd"), mode=0o700, exist_ok=True)
    core.write_private(os.path.join(directory, core.MEMBER_NAME_FILE), member)
    if me in data.get("nodes", {}):
        data["nodes"][me]["member"] = member
    data["reset_at"] = time.time()
    core.write_private(os.path.join(db, "state.json"), json.dumps(data, indent=1, sort_keys=True))
    core.log("info", "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. "
                     "Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes")
    return 0


COMMANDS = {"etcd-snapshot": etcd_snapshot}
