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
import hashlib
import json
import os
import shutil
import sys
import time
import urllib.error
import uuid

from . import core
from . import s3

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
    if command == "server":
        start_schedule(config, directory)
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
                        "etcd-snapshot-retention", "output", "token", "server", "node-name", "log",
                        "etcd-s3-endpoint", "etcd-s3-endpoint-ca", "etcd-s3-bucket", "etcd-s3-region",
                        "etcd-s3-folder", "etcd-s3-access-key", "etcd-s3-secret-key", "etcd-s3-timeout")


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


def s3_metadata(daemon) -> dict:
    """User metadata K3S puts on each uploaded object (pkg/etcd/s3/s3.go uploadSnapshot)."""
    return {"k3s-cluster-id": str(daemon.cluster.data.get("cluster_id", "")), "k3s-node-name": daemon.node_name,
            "k3s-token-hash": hashlib.sha256(daemon.secret.encode()).hexdigest()}


def s3_client(cfg: dict):
    """The S3 client, or (None, message) as K3S logs a failed GetClient."""
    try:
        return s3.Client(cfg), ""
    except (s3.S3Error, OSError, ValueError) as exc:
        return None, str(exc)


def s3_items(client, node: str) -> list:  # pylint: disable=unused-argument
    return [{"metadata": {"name": "s3-" + o["name"]},
             "spec": {"snapshotName": o["name"], "location": o["location"], "nodeName": "s3",
                      "s3": s3.public(client.cfg)},
             "status": {"size": str(o["size"]), "readyToUse": True,
                        "creationTime": snapshot_time(o["name"], o["modified"])}}
            for o in client.snapshots()]


def snapshot_time(name: str, fallback: str) -> str:
    """Creation time from the <unix time> suffix of the name, else the object's time (ListSnapshots)."""
    try:
        stamp = int(name.rsplit("-", 1)[-1])
    except ValueError:
        return fallback[:19] + "Z" if fallback else ""
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def save_snapshot(daemon, target: str, prefix: str, cfg, retention: int) -> dict:
    """pkg/etcd/snapshot.go snapshot(): local file, local retention (scheduled only), upload, S3 retention."""
    os.makedirs(target, mode=0o700, exist_ok=True)
    while True:
        name = "%s-%s-%d" % (prefix, daemon.node_name, int(time.time()))
        if not os.path.exists(os.path.join(target, name)):
            break
        time.sleep(0.2)
    path = os.path.join(target, name)
    core.log("info", "Saving etcd snapshot to %s" % path)
    core.write_private(path, json.dumps(
        {"standin_snapshot": 1, "version": core.VERSION, "datastore": daemon.cluster.data}))
    created, deleted = [name], []
    if retention > 0:
        files = [f for f in snapshot_files(target) if os.path.basename(f).startswith(prefix + "-")]
        for old in files[:-retention]:
            os.unlink(old)
            deleted.append(os.path.basename(old))
    if cfg:
        client, problem = s3_client(cfg)
        if client is None:
            core.log("warning", "Unable to initialize S3 client: %s" % problem, escape=True)
        else:
            core.log("info", "Saving etcd snapshot %s to S3" % name)
            try:
                client.upload(path, s3_metadata(daemon))
                created.append(name)
                core.log("info", "S3 upload complete for %s" % name)
            except s3.S3Error as exc:
                core.log("error", "Error received during snapshot upload to S3: %s" % exc, escape=True)
            if retention > 0:
                try:
                    deleted += client.retention(prefix, retention)
                except s3.S3Error as exc:
                    core.log("warning", "Failed to apply s3 snapshot retention policy: %s" % exc, escape=True)
    return {"created": created, "deleted": deleted}


def db_snapshot(daemon, request: dict):
    """Server side of POST /db/snapshot (k3s-io/k3s pkg/etcd/snapshot_handler.go): (code, answer).
    request["s3"]: the S3 settings the CLI read from its flags and config.yaml (as the CLI sends them)."""
    if daemon.cluster.data.get("datastore") != "etcd":
        return 500, {"message": "etcd datastore disabled"}
    flags = {"dir": request["dir"]} if request.get("dir") else {}
    target = snapshot_dir(daemon.data_dir, flags)
    names = request.get("name") or []
    operation = request.get("operation")
    cfg = request.get("s3")
    if operation == "standin-scheduled":
        # stand-in only: K3S's cron job calls Snapshot() inside the server; the stand-in's schedule
        # thread (start_schedule) asks its own server, which uses its own options
        cfg = s3.settings(daemon.config)
        retention = int(daemon.config.get("etcd-snapshot-retention") or 5)
        return 200, save_snapshot(daemon, snapshot_dir(daemon.data_dir, {"etcd-snapshot-dir": daemon.config.get(
            "etcd-snapshot-dir")} if daemon.config.get("etcd-snapshot-dir") else {}),
            str(daemon.config.get("etcd-snapshot-name") or "etcd-snapshot"), cfg, retention)
    if operation == "save":
        # the CLI's save prunes nothing (snapshot.go: "the prune step is generally disabled when
        # snapshotting from the CLI"); the scheduled one applies etcd-snapshot-retention
        return 200, save_snapshot(daemon, target, names[0] if names else "on-demand", cfg, 0)
    if operation == "list":
        items = snapshot_items(snapshot_files(target), daemon.node_name)
        if cfg:
            client, problem = s3_client(cfg)
            if client is None:
                return 500, {"message": "failed to initialize S3 client: %s" % problem}
            items += s3_items(client, daemon.node_name)
        return 200, {"apiVersion": "k3s.cattle.io/v1", "kind": "ETCDSnapshotFileList", "items": items}
    if operation == "delete":
        deleted = []
        for name in names:
            path = os.path.join(target, os.path.basename(name))
            if os.path.isfile(path):
                os.unlink(path)
                deleted.append(name)
        if cfg:
            client, problem = s3_client(cfg)
            if client is None:
                return 500, {"message": "failed to initialize S3 client: %s" % problem}
            for name in names:
                if client.delete(os.path.basename(name)) and name not in deleted:
                    deleted.append(name)
        return 200, {"deleted": deleted}
    if operation == "prune":
        keep = int(request.get("retention") if request.get("retention") is not None else 5)
        prefix = (names[0] if names else "on-demand") + "-"
        files = [f for f in snapshot_files(target) if os.path.basename(f).startswith(prefix)]
        removed = files[:-keep] if keep > 0 else files
        for path in removed:
            os.unlink(path)
        deleted = [os.path.basename(f) for f in removed]
        if cfg:
            client, problem = s3_client(cfg)
            if client is None:
                return 500, {"message": "failed to initialize S3 client: %s" % problem}
            deleted += client.retention(prefix[:-1], keep)
        return 200, {"deleted": deleted}
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


def cli_options(flags: dict) -> dict:
    """config.yaml with the command line over it (the CLI reads the same config file as the server)."""
    path = flags.get("config") or os.environ.get("K3S_CONFIG_FILE") or core.rooted("/etc/rancher/k3s/config.yaml")
    options = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            options = core.parse_config(handle.read())
    options.update(flags)
    return options


def snapshot_command(args: list) -> int:
    words, flags = snapshot_flags(args)
    directory = data_dir(flags)
    verb = words[0] if words else "save"
    request: dict = {}
    cfg = s3.settings(cli_options(flags))
    if cfg:
        request["s3"] = cfg
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
    cfg = s3.settings(config)
    if restore and cfg:
        # pkg/etcd/etcd.go Reset: with etcd-s3 on, the restore path names an object in the bucket
        # (<folder>/<name>), downloaded into the snapshot dir first
        core.log("info", "Retrieving etcd snapshot %s from S3" % restore)
        try:
            client = s3.Client(cfg)
        except (s3.S3Error, OSError, ValueError) as exc:
            raise core.StandinError("failed to initialize S3 client: %s" % exc)
        try:
            restore = client.download(os.path.basename(str(restore)), os.path.join(db, "snapshots"))
        except (s3.S3Error, OSError) as exc:
            raise core.StandinError("failed to download snapshot from S3: %s" % exc)
        core.log("info", "S3 download complete for %s" % restore)
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


# --------------------------------------------------------------------------- scheduled snapshots
#
# k3s-io/k3s pkg/cli/cmds/server.go: etcd-snapshot-schedule-cron (default "0 */12 * * *"),
# etcd-snapshot-retention (5), etcd-snapshot-name (etcd-snapshot), etcd-disable-snapshots; the
# schedule is a robfig/cron v3 spec (standard parser: 5 fields minute hour day-of-month month
# day-of-week, or a descriptor @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly/@every <d>).
# Each tick runs Snapshot() in the server (pkg/etcd/snapshot.go): <name>-<node>-<unix time>, local
# retention on that name, upload and S3 retention when etcd-s3 is on.

CRON_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
CRON_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
MONTHS = dict(zip(("jan feb mar apr may jun jul aug sep oct nov dec").split(), range(1, 13)))
DAYS = dict(zip(("sun mon tue wed thu fri sat").split(), range(7)))


def cron_field(text: str, low: int, high: int, names: dict) -> set:
    values = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError("bad step %r" % step_text)
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        else:
            bounds = [names.get(b.lower(), b) for b in part.split("-", 1)]
            if not all(str(b).isdigit() for b in bounds):
                raise ValueError("bad value %r" % part)
            start = int(bounds[0])
            end = int(bounds[1]) if len(bounds) == 2 else (high if step > 1 else start)
        if start < low or end > high or start > end:
            raise ValueError("%r out of range %d-%d" % (part, low, high))
        values.update(range(start, end + 1, step))
    return values


def parse_cron(spec: str):
    """A matcher (datetime -> bool) or an interval in seconds (@every); ValueError for a bad spec."""
    spec = str(spec).strip()
    if spec.startswith("@every "):
        text, seconds = spec[7:].strip(), 0.0
        units = {"h": 3600, "m": 60, "s": 1}
        number = ""
        for char in text:
            if char.isdigit() or char == ".":
                number += char
            elif char in units and number:
                seconds += float(number) * units[char]
                number = ""
            else:
                raise ValueError("bad duration %r" % text)
        if number or seconds <= 0:
            raise ValueError("bad duration %r" % text)
        return seconds
    fields = CRON_DESCRIPTORS.get(spec, spec).split()
    if len(fields) != 5:
        raise ValueError("expected exactly 5 fields, found %d: %s" % (len(fields), spec))
    sets = [cron_field(f, lo, hi, MONTHS if i == 3 else DAYS if i == 4 else {})
            for i, (f, (lo, hi)) in enumerate(zip(fields, CRON_FIELDS))]
    dom_star, dow_star = fields[2].startswith(("*", "?")), fields[4].startswith(("*", "?"))

    def matches(moment) -> bool:
        dow = (moment.isoweekday() % 7)
        day_ok = moment.day in sets[2]
        week_ok = dow in sets[4] or (dow == 0 and 7 in sets[4])
        days = (day_ok and week_ok) if (dom_star or dow_star) else (day_ok or week_ok)
        return moment.minute in sets[0] and moment.hour in sets[1] and moment.month in sets[3] and days
    return matches


def start_schedule(config: dict, directory: str) -> None:
    """The server's snapshot schedule (a thread of this process); a bad spec stops the start."""
    if s3.truthy(config.get("etcd-disable-snapshots")):
        return
    spec = config.get("etcd-snapshot-schedule-cron") or "0 */12 * * *"
    try:
        rule = parse_cron(spec)
    except ValueError as exc:
        raise core.StandinError("failed to parse etcd-snapshot-schedule-cron %r: %s" % (spec, exc))
    port = int(os.environ.get("K3S_STANDIN_PORT") or config.get("https-listen-port") or 6443)
    flags = {"server": "https://127.0.0.1:%d" % port}
    if config.get("token-file"):
        flags["token"] = core.read_token(config)

    def tick() -> None:
        try:
            answer = snapshot_request(directory, flags, {"operation": "standin-scheduled"})
            core.log("info", "Scheduled snapshot saved: %s, pruned: %s" % (
                ",".join(answer.get("created") or []), ",".join(answer.get("deleted") or []) or "none"))
        except core.StandinError as exc:
            if "etcd datastore disabled" not in str(exc):  # K3S schedules nothing without etcd
                core.log("error", "Failed to take scheduled etcd snapshot: %s" % exc, escape=True)

    def loop() -> None:
        if isinstance(rule, float):
            while True:
                time.sleep(rule)
                tick()
        last = None
        while True:
            now = datetime.datetime.now().replace(second=0, microsecond=0)  # system time, as robfig/cron
            if now != last and rule(now):
                last = now
                tick()
            time.sleep(max(1.0, 60 - datetime.datetime.now().second + 0.5))

    import threading  # pylint: disable=import-outside-toplevel
    threading.Thread(target=loop, daemon=True, name="etcd-snapshot-schedule").start()


COMMANDS = {"etcd-snapshot": etcd_snapshot}
