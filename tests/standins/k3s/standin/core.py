"""K3S stand-in for tests: NOT K3S. It never ships in roles/ or plugins/.

The core of the `standin` package (server, agent, join rules, nodes); build_mirror.py bundles
the package into one executable zipapp. Platform and day-2 calls live in their own modules
(see EXTENSION_MODULES).

It is installed as /usr/local/bin/k3s through the user's own path (artifact mirror +
sha256sum-<arch>.txt) and enforces the parts of K3S's contract that the cluster roles
depend on (docs.k3s.io):

* reads /etc/rancher/k3s/config.yaml (flags override it); unknown keys are warned about and
  skipped, as K3S does;
* `k3s server`: on an empty data dir, `cluster-init: true` founds an embedded-etcd cluster,
  `server: URL` joins an existing one, neither starts a single-server (sqlite) datastore;
  on an existing data dir (server/db) the node restarts as a member and ignores cluster-init;
  a different token than the one the datastore was created with is fatal;
* joining (servers and agents) needs the cluster token, either the full
  `K10<sha256 of the CA bundle>::server:<secret>` form (the CA hash is checked) or the bare
  secret; a server cannot join a sqlite (non-etcd) server; each etcd server has a member name
  <node-name>-<8 hex> (server/db/etcd/name, new for an empty data dir) and a joining server is
  refused while a member of its node name exists under another member name ("duplicate node name
  found", k3s-io/k3s pkg/etcd/etcd.go); deleting that Node (day2.py) removes the member;
* serves HTTPS (self-signed CA) on 6443: /ping, /cacerts (supervisor) and /version
  unauthenticated; the Kubernetes API (kubeapi.py through apiserver.py: Nodes, the platform
  controllers' objects, ...) only with a client certificate of the cluster CA, e.g. the admin one
  of k3s.yaml (K3S disables anonymous auth: k3s-io/k3s#3576);
* writes /etc/rancher/k3s/k3s.yaml (0600 unless write-kubeconfig-mode), server/token,
  server/node-token (0600), server/db/, server/manifests/, server/tls/, agent/images/;
* `k3s agent` registers a node and keeps it Ready with heartbeats;
* servers share node state by polling each other over the network;
* `k3s kubectl ...` runs a real kubectl (bundled, see apiserver.py) against that API; `k3s --version`;
* sends READY=1 over $NOTIFY_SOCKET (Type=notify units) once serving / registered.

Stand-in only: every start is appended to <data-dir>/standin-starts.log, and nodes carry
`k3s.standin/*` annotations (cluster id, join sequence and time) so tests can check join
order and that nothing restarted needlessly.

Test knobs (environment): K3S_STANDIN_ROOT (prefix for /etc and /var paths),
K3S_STANDIN_PORT (default https-listen-port), K3S_STANDIN_HEARTBEAT (s),
K3S_STANDIN_NODE_GRACE (s a node stays Ready without heartbeat), K3S_STANDIN_JOIN_TIMEOUT (s).
"""

import base64
import copy
import datetime
import hashlib
import http.server
import importlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

from . import kubeapi

VERSION = "__K3S_STANDIN_VERSION__"
if VERSION.startswith("__"):
    VERSION = os.environ.get("K3S_STANDIN_VERSION", "v1.34.9+k3s1")
COMMIT = hashlib.sha1(VERSION.encode()).hexdigest()[:8]

SERVER_KEYS = {
    "advertise-address", "advertise-port", "agent-token", "agent-token-file", "bind-address",
    "cluster-cidr", "cluster-dns", "cluster-domain", "cluster-init", "cluster-reset",
    "cluster-reset-restore-path", "config", "data-dir", "datastore-endpoint", "debug",
    "default-local-storage-path", "disable", "disable-apiserver", "disable-cloud-controller",
    "disable-controller-manager", "disable-etcd", "disable-helm-controller",
    "disable-kube-proxy", "disable-network-policy", "disable-scheduler", "egress-selector-mode",
    "embedded-registry", "etcd-arg", "etcd-expose-metrics", "etcd-snapshot-compress",
    "etcd-snapshot-dir", "etcd-snapshot-retention", "etcd-snapshot-schedule-cron",
    "flannel-backend", "flannel-ipv6-masq", "flannel-iface", "helm-job-image", "https-listen-port",
    "kube-apiserver-arg", "kube-controller-manager-arg", "kube-proxy-arg", "kube-scheduler-arg",
    "kubelet-arg", "node-external-ip", "node-ip", "node-label", "node-name", "node-taint",
    "prefer-bundled-bin", "private-registry", "protect-kernel-defaults", "secrets-encryption",
    "selinux", "server", "service-cidr", "service-node-port-range", "supervisor-metrics",
    "system-default-registry", "tls-san", "tls-san-security", "token", "token-file",
    "write-kubeconfig", "write-kubeconfig-group", "write-kubeconfig-mode", "with-node-id",
    "disable-agent", "kube-cloud-controller-manager-arg", "airgap-extra-registry",
    # etcd snapshots on S3 and their schedule (standin/s3.py, standin/day2.py)
    "etcd-disable-snapshots", "etcd-snapshot-name", "etcd-s3", "etcd-s3-endpoint", "etcd-s3-endpoint-ca",
    "etcd-s3-skip-ssl-verify", "etcd-s3-insecure", "etcd-s3-bucket", "etcd-s3-region", "etcd-s3-folder",
    "etcd-s3-access-key", "etcd-s3-secret-key", "etcd-s3-timeout",
}
AGENT_KEYS = {
    "config", "data-dir", "debug", "flannel-iface", "kubelet-arg", "kube-proxy-arg",
    "node-external-ip", "node-ip", "node-label", "node-name", "node-taint",
    "prefer-bundled-bin", "private-registry", "protect-kernel-defaults", "selinux", "server",
    "token", "token-file", "with-node-id", "lb-server-port", "airgap-extra-registry",
    "image-credential-provider-bin-dir", "image-credential-provider-config",
}
BOOL_FLAGS = {
    "cluster-init", "cluster-reset", "debug", "disable-agent", "disable-network-policy",
    "disable-helm-controller", "disable-kube-proxy", "embedded-registry", "secrets-encryption",
    "selinux", "protect-kernel-defaults", "prefer-bundled-bin", "with-node-id",
    "disable-cloud-controller", "etcd-expose-metrics", "flannel-ipv6-masq",
    "etcd-disable-snapshots", "etcd-snapshot-compress", "etcd-s3", "etcd-s3-skip-ssl-verify", "etcd-s3-insecure",
}
LIST_KEYS = {"disable", "tls-san", "node-label", "node-taint", "kubelet-arg",
             "kube-apiserver-arg", "kube-proxy-arg", "etcd-arg", "node-external-ip"}


# k3s-io/k3s pkg/etcd/etcd.go nameFile: the etcd member name of this server.
MEMBER_NAME_FILE = "server/db/etcd/name"


class StandinError(Exception):
    """A fatal error, printed like K3S's `level=fatal` lines."""


def log(level: str, msg: str, escape: bool = False) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # escape: as logrus' TextFormatter does (inner quotes escaped); off by default, where tests read
    # kubectl's messages through these lines
    text = json.dumps(msg, ensure_ascii=False) if escape else '"%s"' % msg
    sys.stderr.write('time="%s" level=%s msg=%s\n' % (stamp, level, text))
    sys.stderr.flush()


def rooted(path: str) -> str:
    return os.environ.get("K3S_STANDIN_ROOT", "") + path


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# --------------------------------------------------------------------------- config


def _scalar(text: str):
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(part) for part in inner.split(",")] if inner else []
    if text == "{}":
        return {}
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text in ("null", "~", ""):
        return None
    return text


def parse_config(text: str) -> dict:
    """Parse the flat YAML subset K3S config files use (keys, scalars, lists)."""
    data: dict = {}
    key = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped == "---":
            continue
        if stripped.startswith("- ") or stripped == "-":
            if key is None:
                raise StandinError("config line %d: list item without a key" % number)
            if data[key] is None:
                data[key] = []
            if not isinstance(data[key], list):
                raise StandinError("config line %d: list item under scalar key %s" % (number, key))
            data[key].append(_scalar(stripped[1:]))
            continue
        if line[0] in " \t":
            raise StandinError("config line %d: nested mappings are not valid here" % number)
        name, sep, value = line.partition(":")
        if not sep:
            raise StandinError("config line %d: expected 'key: value'" % number)
        key = str(_scalar(name))
        data[key] = _scalar(value) if value.strip() else None
    return data


def parse_flags(args: list) -> dict:
    flags: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            raise StandinError("unexpected argument %r" % arg)
        name = arg.lstrip("-")
        value = None
        if "=" in name:
            name, value = name.split("=", 1)
        name = {"c": "config", "d": "data-dir", "t": "token", "s": "server"}.get(name, name)
        if value is None:
            if name in BOOL_FLAGS:
                value = True
            else:
                i += 1
                if i >= len(args):
                    raise StandinError("flag needs an argument: --%s" % name)
                value = args[i]
        if name in LIST_KEYS:
            flags.setdefault(name, []).extend(str(value).split(","))
        else:
            flags[name] = value
        i += 1
    return flags


def load_config(command: str, flags: dict) -> dict:
    path = flags.get("config") or os.environ.get("K3S_CONFIG_FILE") or rooted("/etc/rancher/k3s/config.yaml")
    config: dict = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            config = parse_config(handle.read())
    known = SERVER_KEYS if command == "server" else AGENT_KEYS
    for key in sorted(config):
        if key not in known:
            log("warning", "Unknown flag --%s found in config.yaml, skipping" % key)
            del config[key]
    for key, value in flags.items():
        if key in LIST_KEYS and isinstance(config.get(key), list):
            config[key] = config[key] + value
        else:
            config[key] = value
    for key in LIST_KEYS:
        if key in config and not isinstance(config[key], list):
            config[key] = [] if config[key] is None else [config[key]]
    if os.environ.get("K3S_TOKEN") and "token" not in config:
        config["token"] = os.environ["K3S_TOKEN"]
    if os.environ.get("K3S_URL") and "server" not in config:
        config["server"] = os.environ["K3S_URL"]
    return config


def read_token(config: dict):
    """The token from token-file (preferred) or token; None when neither is set."""
    if config.get("token-file"):
        path = rooted(str(config["token-file"]))
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise StandinError("failed to read token file %s: %s" % (config["token-file"], exc))
        if not token:
            raise StandinError("token file %s is empty" % config["token-file"])
        return token
    if config.get("token") not in (None, ""):
        return str(config["token"])
    return None


TOKEN_RE = re.compile(r"^K10([0-9a-f]{64})::([a-z]+):(.+)$")


def split_token(token: str):
    """Return (ca_hash or None, secret) for a full K10 token or a bare secret."""
    match = TOKEN_RE.match(token)
    if match:
        return match.group(1), match.group(3)
    if token.startswith("K10"):
        raise StandinError("failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>")
    return None, token


# --------------------------------------------------------------------------- TLS


def openssl(*args: str) -> None:
    result = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StandinError("openssl %s failed: %s" % (args[0], result.stderr.strip()))


def write_private(path: str, content: str, mode: int = 0o600) -> None:
    """Write content atomically with mode, unless it is already there unchanged."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            if handle.read() == content:
                os.chmod(path, mode)
                return
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def make_ca(tls: str) -> None:
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", tls + "/server-ca.key")
    os.chmod(tls + "/server-ca.key", 0o600)
    openssl("req", "-x509", "-new", "-key", tls + "/server-ca.key", "-days", "3650",
            "-subj", "/CN=k3s-server-ca@%d" % int(time.time()), "-out", tls + "/server-ca.crt")


def sign(tls: str, name: str, subject: str, extensions: str) -> None:
    key, csr, crt = (tls + "/%s.%s" % (name, ext) for ext in ("key", "csr", "crt"))
    if not os.path.exists(key):
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
        os.chmod(key, 0o600)
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    with tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False) as ext:
        ext.write(extensions + "\n")
    try:
        openssl("x509", "-req", "-in", csr, "-CA", tls + "/server-ca.crt", "-CAkey",
                tls + "/server-ca.key", "-CAcreateserial", "-days", "3650", "-out", crt,
                "-extfile", ext.name)
    finally:
        os.unlink(ext.name)
        os.unlink(csr)


def serving_sans(config: dict, node_ip: str) -> list:
    sans = ["DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "IP:127.0.0.1", "IP:" + node_ip]
    for san in config.get("tls-san") or []:
        san = str(san)
        sans.append(("IP:" if re.match(r"^[0-9.]+$|:", san) else "DNS:") + san)
    return list(dict.fromkeys(sans))


def ca_hash(pem: bytes) -> str:
    return hashlib.sha256(pem).hexdigest()


# --------------------------------------------------------------------------- state


# What a kubelet (re)registering writes into its Node (status.nodeInfo.kubeletVersion, addresses) and
# the etcd member it runs: one object in etcd, so a restart at a new version is seen through every
# server (kubernetes/kubernetes pkg/kubelet/kubelet_node_status.go). `status_at` orders the writes.
STATUS_FIELDS = ("ip", "url", "version", "member", "etcd")


class Cluster:
    """The datastore: cluster id, secret, datastore kind and the node table."""

    def __init__(self, path: str, data: dict):
        self.path = path
        self.data = data
        self.lock = threading.Lock()

    @classmethod
    def load(cls, path: str) -> "Cluster":
        with open(path, encoding="utf-8") as handle:
            return cls(path, json.load(handle))

    def save(self) -> None:
        write_private(self.path, json.dumps(self.data, indent=1, sort_keys=True))

    def nodes(self) -> dict:
        return self.data.setdefault("nodes", {})

    def register(self, node: dict) -> dict:
        with self.lock:
            nodes = self.nodes()
            old = nodes.get(node["name"])
            if old and old.get("role") == node["role"]:
                old.update({k: node[k] for k in STATUS_FIELDS if k in node})
                old["last_seen"] = old["status_at"] = time.time()
                entry = old
            else:
                seq = max([n.get("join_seq", 0) for n in nodes.values()] + [0]) + 1
                entry = dict(node, join_seq=seq, joined_at=time.time(), last_seen=time.time())
                nodes[node["name"]] = entry
            self.save()
            return dict(entry)

    def touch(self, name: str) -> bool:
        with self.lock:
            node = self.nodes().get(name)
            if node is None:
                return False
            node["last_seen"] = time.time()
            self.save()
            return True

    def merge(self, other: dict) -> None:
        if other.get("cluster_id") != self.data.get("cluster_id"):
            return
        with self.lock:
            nodes = self.nodes()
            removed = self.data.setdefault("removed", {})
            for name, joined in other.get("removed", {}).items():
                removed[name] = max(joined, removed.get(name, 0))
            for name, node in other.get("nodes", {}).items():
                if node.get("joined_at", 0) <= removed.get(name, -1):
                    continue
                mine = nodes.get(name)
                if mine is None or node.get("joined_at", 0) > mine.get("joined_at", 0):
                    nodes[name] = node
                elif node.get("joined_at") == mine.get("joined_at"):
                    mine["last_seen"] = max(mine.get("last_seen", 0), node.get("last_seen", 0))
                    if node.get("status_at", 0) > mine.get("status_at", 0):  # re-registered on a peer
                        mine.update({k: node[k] for k in STATUS_FIELDS if k in node})
                        mine["status_at"] = node["status_at"]
                    if node.get("spec_at", 0) > mine.get("spec_at", 0):  # a cordon written on a peer
                        mine["unschedulable"] = node.get("unschedulable", False)
                        mine["spec_at"] = node["spec_at"]
            self.drop_removed()
            self.save()

    def drop_removed(self) -> None:
        nodes = self.nodes()
        for name, joined in self.data.get("removed", {}).items():
            if name in nodes and nodes[name].get("joined_at", 0) <= joined:
                del nodes[name]

    def forget(self, name: str) -> bool:
        """Tombstone node `name` (its Node was deleted); False when there is no such entry."""
        with self.lock:
            entry = self.nodes().get(name)
            if entry is None:
                return False
            self.data.setdefault("removed", {})[name] = entry.get("joined_at", 0)
            self.drop_removed()
            self.save()
            return True

    def set_unschedulable(self, name: str, value: bool) -> None:
        """A Node's spec.unschedulable written through the API (cordon), shared with the peers as
        the Node object is in etcd."""
        with self.lock:
            entry = self.nodes().get(name)
            if entry is not None:
                entry["unschedulable"] = value
                entry["spec_at"] = time.time()
                self.save()

    def members(self) -> list:
        return [n["url"] for n in self.nodes().values() if n.get("role") == "server" and n.get("url")]

    def etcd_members(self) -> list:
        """The etcd members: servers of an etcd datastore that were not reset away (url empty)."""
        if self.data.get("datastore") != "etcd":
            return []
        return [n for n in self.nodes().values() if n.get("role") == "server" and n.get("etcd") and n.get("url")]

    def remove_member(self, name: str):
        """Remove the etcd member of node `name` (K3S: Node deletion -> member controller -> RemovePeer).
        The node entry goes too, with a tombstone so that merging a peer's older state does not bring
        it back; a node that joins again later gets a new entry. None when `name` is no member."""
        with self.lock:
            entry = self.nodes().get(name)
            if entry is None or entry not in self.etcd_members():
                return None
            self.data.setdefault("removed", {})[name] = entry.get("joined_at", 0)
            self.drop_removed()
            self.save()
            return entry


def node_object(node: dict, cluster_id: str, grace: float) -> dict:
    ready = time.time() - node.get("last_seen", 0) <= grace
    labels = {
        "kubernetes.io/hostname": node["name"],
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": node.get("arch", "amd64"),
        "node.kubernetes.io/instance-type": "k3s",
    }
    if node.get("role") == "server":
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
        if node.get("etcd"):
            labels["node-role.kubernetes.io/etcd"] = "true"
    joined = datetime.datetime.fromtimestamp(node.get("joined_at", 0), datetime.timezone.utc)
    annotations = {
        "k3s.standin/cluster-id": cluster_id,
        "k3s.standin/join-seq": str(node.get("join_seq", 0)),
        "k3s.standin/joined-at": "%.3f" % node.get("joined_at", 0),
        "k3s.standin/mode": node.get("mode", ""),
        "k3s.standin/joined-via": node.get("via", ""),
    }
    metadata = {"name": node["name"], "labels": labels, "creationTimestamp": joined.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "annotations": annotations}
    if node.get("etcd") and node.get("member") and node.get("url"):
        # k3s-io/k3s pkg/etcd/metadata_controller.go: the etcd member name and address on the Node;
        # pkg/etcd/member_controller.go (wrangler OnRemove): a finalizer, so that deleting the Node
        # first removes the etcd member (rancher/wrangler pkg/generic/remove.go).
        annotations["etcd.k3s.cattle.io/node-name"] = node["member"]
        annotations["etcd.k3s.cattle.io/node-address"] = node.get("ip", "")
        metadata["finalizers"] = ["wrangler.cattle.io/managed-etcd-controller"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": node.get("ip", "")},
                          {"type": "Hostname", "address": node["name"]}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown",
                            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                            "lastHeartbeatTime": datetime.datetime.fromtimestamp(
                                node.get("last_seen", 0), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}],
            # kubelet pkg/kubelet/nodestatus/setters.go (MachineInfo, VersionInfo): every field of
            # NodeSystemInfo is a string the kubelet always sets (clients' models require them);
            # kubeProxyVersion is "" since DisableNodeKubeProxyVersion (on by default from 1.33).
            "nodeInfo": dict(dict.fromkeys(SYSTEM_INFO_FIELDS, ""), **(node.get("system") or {}),
                             kubeletVersion=node.get("version", VERSION), kubeProxyVersion="",
                             architecture=node.get("arch", "amd64"), operatingSystem="linux"),
        },
    }


# --------------------------------------------------------------------------- HTTP


def http_json(url: str, context: ssl.SSLContext, body=None, headers=None, timeout: float = 10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()


def unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def ca_context(ca_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=ca_pem)
    return context


class Handler(kubeapi.BaseHandler):
    """K3S's own paths (supervisor, /db/snapshot, the stand-in's /standin/*); every other request
    goes to the Kubernetes API (kubeapi.py, wired by apiserver.py), as on K3S's port 6443."""
    server_version = "k3s-standin"
    daemon = None  # set by Daemon

    def api(self):
        return self.daemon.apiserver.api

    def log_message(self, fmt, *args):  # quiet: K3S does not log every request
        if os.environ.get("K3S_STANDIN_DEBUG"):
            log("debug", fmt % args)

    def reply(self, code: int, body, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else (
            json.dumps(body).encode() if content_type == "application/json" else str(body).encode())
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def status(self, code: int, message: str) -> None:
        self.reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "message": message, "code": code})

    def authenticated(self) -> bool:
        return bool(self.connection.getpeercert())

    def do_GET(self):  # noqa: N802 (http.server API)
        daemon = self.daemon
        path = self.path.split("?", 1)[0]
        if path == "/ping":
            return self.reply(200, "pong", "text/plain")
        if path == "/cacerts":
            return self.reply(200, daemon.ca_pem.encode(), "text/plain")
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": VERSION.split(".")[1], "gitVersion": VERSION,
                                    "gitCommit": COMMIT, "platform": "linux/amd64"})
        if path == "/standin/state":
            if self.headers.get("X-Standin-Secret") != daemon.secret:
                return self.status(401, "Unauthorized")
            return self.reply(200, daemon.cluster.data)
        if not self.authenticated():  # K3S runs the apiserver with anonymous auth off (k3s-io/k3s#3576)
            return self.status(401, "Unauthorized")
        if path in ("/readyz", "/livez", "/healthz") and not daemon.ready:
            return self.reply(503, "not ready", "text/plain")
        return self.api().handle(self)

    def do_POST(self):  # noqa: N802 (http.server API)
        daemon = self.daemon
        if not self.path.startswith(("/standin/", "/db/")):
            return self._dispatch()
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.status(400, "invalid JSON")
        if self.path == "/standin/join":
            code, answer = daemon.handle_join(body)
            return self.reply(code, answer)
        if self.path == "/standin/heartbeat":
            if body.get("secret") != daemon.secret:
                return self.status(401, "Unauthorized")
            if not daemon.cluster.touch(body.get("name", "")):
                return self.status(404, "node not registered")
            return self.reply(200, {"members": daemon.cluster.members()})
        if self.path == "/standin/removed":  # a peer's change (tombstones, a restart's registration): take it now
            if self.headers.get("X-Standin-Secret") != daemon.secret:
                return self.status(401, "Unauthorized")
            daemon.cluster.merge(body)
            daemon.apiserver.apply_peer_change(set(body.get("nodes") or {}))
            return self.reply(200, {})
        if self.path == "/db/snapshot":
            # k3s-io/k3s pkg/etcd/etcd.go handler(): /db/snapshot needs the role k3s:server, which
            # the etcd-snapshot CLI gets with basic auth "server:<token secret>" (pkg/clientaccess).
            if not self.server_basic_auth():
                return self.status(401, "Unauthorized")
            for module in extensions():
                if hasattr(module, "db_snapshot"):
                    code, answer = module.db_snapshot(daemon, body)
                    return self.reply(code, answer)
            return self.status(404, "the server could not find the requested resource")
        return self.status(404, "the server could not find the requested resource")

    do_PUT = do_PATCH = do_DELETE = kubeapi.BaseHandler._dispatch  # noqa: N815 (http.server API)

    def server_basic_auth(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == "server" and password == self.daemon.secret


class ServerDaemon:
    """`k3s server`."""

    def __init__(self, config: dict):
        self.config = config
        self.data_dir = rooted(str(config.get("data-dir") or "/var/lib/rancher/k3s"))
        self.port = int(os.environ.get("K3S_STANDIN_PORT") or config.get("https-listen-port") or 6443)
        self.node_name = str(config.get("node-name") or socket.gethostname()).lower()
        self.node_ip = str(config.get("node-ip") or default_ip())
        self.url = "https://%s:%d" % (self.node_ip, self.port)
        self.grace = env_float("K3S_STANDIN_NODE_GRACE", 40)
        self.heartbeat = env_float("K3S_STANDIN_HEARTBEAT", 5)
        self.ready = False
        self.cluster = None
        self.secret = ""
        self.ca_pem = ""
        self.mode = ""
        self.member = ""
        self.stop = threading.Event()
        self.apiserver = None

    # -- paths
    def p(self, rel: str) -> str:
        return os.path.join(self.data_dir, rel)

    def prepare_dirs(self) -> None:
        for rel, mode in (("server", 0o700), ("server/tls", 0o700), ("server/manifests", 0o755),
                          ("agent", 0o755), ("agent/images", 0o755)):
            os.makedirs(self.p(rel), exist_ok=True)
            os.chmod(self.p(rel), mode)
        os.makedirs(rooted("/etc/rancher/k3s"), exist_ok=True)

    # -- bootstrap
    def bootstrap(self) -> None:
        token = read_token(self.config)
        db = self.p("server/db")
        state = os.path.join(db, "state.json")
        if os.path.exists(state):
            self.restart_member(state, token)
        elif self.config.get("server"):
            self.join(str(self.config["server"]), token)
        else:
            self.init(token, etcd=bool(self.config.get("cluster-init")))
        self.write_files()

    def restart_member(self, state: str, token) -> None:
        self.cluster = Cluster.load(state)
        self.secret = self.cluster.data["secret"]
        if token is not None and split_token(token)[1] != self.secret:
            raise StandinError("starting kubernetes: preparing server: bootstrap data already found and encrypted with different token")
        self.mode = "restart"
        with open(self.p("server/tls/server-ca.crt"), encoding="utf-8") as handle:
            self.ca_pem = handle.read()
        if self.cluster.data.get("datastore") == "etcd":
            try:
                with open(self.p(MEMBER_NAME_FILE), encoding="utf-8") as handle:
                    self.member = handle.read().strip()
            except OSError:
                self.member = self.cluster.nodes().get(self.node_name, {}).get("member") or self.new_member_name()
        self.cluster.register(self.own_node(self.cluster.nodes().get(self.node_name, {}).get("mode", "restart")))

    def init(self, token, etcd: bool) -> None:
        db = self.p("server/db")
        os.makedirs(db, mode=0o700, exist_ok=True)
        tls = self.p("server/tls")
        make_ca(tls)
        with open(tls + "/server-ca.crt", encoding="utf-8") as handle:
            self.ca_pem = handle.read()
        if token is not None:
            expected, self.secret = split_token(token)
            if expected and expected != ca_hash(self.ca_pem.encode()):
                raise StandinError("token CA hash does not match the Cluster CA certificate hash")
        else:
            self.secret = uuid.uuid4().hex
        self.mode = "cluster-init" if etcd else "sqlite"
        if etcd:
            self.new_member_name()
        self.cluster = Cluster(os.path.join(db, "state.json"), {
            "cluster_id": uuid.uuid4().hex, "secret": self.secret,
            "datastore": "etcd" if etcd else "sqlite", "nodes": {}})
        self.cluster.register(self.own_node(self.mode))
        log("info", "Cluster %s initialised (%s datastore)" % (self.cluster.data["cluster_id"], self.cluster.data["datastore"]))

    def join(self, server: str, token) -> None:
        if token is None:
            raise StandinError("--token is required to join a cluster (token or token-file)")
        # k3s-io/k3s pkg/etcd/etcd.go setName: an empty data dir gets a new member name
        # <node name>-<8 hex>; it is only kept (server/db/etcd/name) once the join succeeded.
        member = "%s-%s" % (self.node_name, uuid.uuid4().hex[:8])
        answer = join_cluster(server, token, {
            "role": "server", "name": self.node_name, "ip": self.node_ip, "url": self.url,
            "version": VERSION, "etcd": True, "mode": "join", "member": member})
        db = self.p("server/db")
        os.makedirs(db, mode=0o700, exist_ok=True)
        self.member = member
        self.write_member_name()
        tls = self.p("server/tls")
        self.ca_pem = answer["ca_crt"]
        write_private(tls + "/server-ca.crt", answer["ca_crt"], 0o644)
        write_private(tls + "/server-ca.key", answer["ca_key"])
        self.secret = split_token(token)[1]
        self.mode = "join"
        self.cluster = Cluster(os.path.join(db, "state.json"), answer["state"])
        self.cluster.save()
        log("info", "Joined cluster %s via %s" % (self.cluster.data["cluster_id"], server))

    def own_node(self, mode: str) -> dict:
        node = {"role": "server", "name": self.node_name, "ip": self.node_ip, "url": self.url,
                "version": VERSION, "etcd": self.cluster.data.get("datastore") == "etcd" if self.cluster else True,
                "mode": mode, "arch": arch(), "system": system_info()}
        if self.member:
            node["member"] = self.member
        return node

    def new_member_name(self) -> str:
        self.member = "%s-%s" % (self.node_name, uuid.uuid4().hex[:8])
        self.write_member_name()
        return self.member

    def write_member_name(self) -> None:
        os.makedirs(os.path.dirname(self.p(MEMBER_NAME_FILE)), mode=0o700, exist_ok=True)
        write_private(self.p(MEMBER_NAME_FILE), self.member)

    def remove_member(self, name: str):
        """`kubectl delete node NAME` of an etcd member: remove it here, then tell the other members
        at once (etcd's member list is one consistent list; the stand-in's is merged by polling)."""
        removed = self.cluster.remove_member(name)
        if removed is not None:
            log("info", "Removing etcd member from cluster due to node delete (name=%s address=%s)"
                % (removed.get("member", name), removed.get("ip", "")))
            self._tell_peers_removed()
        return removed

    def tell_peers(self, body: dict) -> None:
        """Hand a change of the node table to the other servers now (they merge it as a polled state):
        upstream it is one write to etcd, which every server reads."""
        context = ca_context(self.ca_pem)
        for url in self.cluster.members():
            if url == self.url:
                continue
            try:
                http_json(url + "/standin/removed", context, body=body,
                          headers={"X-Standin-Secret": self.secret}, timeout=5)
            except (OSError, ValueError, urllib.error.URLError):
                pass

    def forget_node(self, name: str) -> None:
        """A Node deleted through the API (apiserver.py): drop the entry here and on the peers (a
        running kubelet does not register again; its next start does, as a new entry)."""
        if self.cluster.forget(name):
            self._tell_peers_removed()

    def _tell_peers_removed(self) -> None:
        self.tell_peers({"cluster_id": self.cluster.data["cluster_id"], "removed": self.cluster.data["removed"],
                         "nodes": {}})

    def write_files(self) -> None:
        tls = self.p("server/tls")
        ext = "subjectAltName=" + ",".join(serving_sans(self.config, self.node_ip))
        sign(tls, "serving-kube-apiserver", "/CN=kube-apiserver", ext + "\nextendedKeyUsage=serverAuth")
        if not os.path.exists(tls + "/client-admin.crt"):
            sign(tls, "client-admin", "/O=system:masters/CN=system:admin", "extendedKeyUsage=clientAuth")
        full = "K10%s::server:%s\n" % (ca_hash(self.ca_pem.encode()), self.secret)
        write_private(self.p("server/token"), full)
        write_private(self.p("server/node-token"), full)
        self.write_kubeconfig()

    def write_kubeconfig(self) -> None:
        tls = self.p("server/tls")

        def b64(name: str) -> str:
            with open(os.path.join(tls, name), "rb") as handle:
                return base64.b64encode(handle.read()).decode()

        text = KUBECONFIG % {"ca": b64("server-ca.crt"), "port": self.port,
                             "crt": b64("client-admin.crt"), "key": b64("client-admin.key")}
        mode = int(str(self.config.get("write-kubeconfig-mode") or "0600"), 8)
        target = rooted(str(self.config.get("write-kubeconfig") or "/etc/rancher/k3s/k3s.yaml"))
        write_private(target, text, mode)

    # -- serving
    def handle_join(self, body: dict):
        try:
            _ca_hash, secret = split_token(str(body.get("token", "")))
        except StandinError as exc:
            return 400, {"message": str(exc)}
        if secret != self.secret:
            return 401, {"message": "Unauthorized: token does not match the cluster token"}
        role = body.get("role")
        if role == "server" and self.cluster.data.get("datastore") != "etcd":
            return 400, {"message": "this server is not a member of an etcd cluster: "
                                    "start the first server with cluster-init to add servers"}
        if role not in ("server", "agent") or not body.get("name"):
            return 400, {"message": "bad join request"}
        if role == "server":
            duplicate = duplicate_member(self.cluster.etcd_members(), str(body["name"]), str(body.get("member", "")))
            if duplicate:
                return 409, {"message": DUPLICATE_NAME, "member": duplicate}
        node = {k: body[k] for k in ("role", "name", "ip", "url", "version", "etcd", "mode", "arch", "member", "system")
                if k in body}
        node["via"] = self.node_name
        self.cluster.register(node)
        answer = {"state": self.cluster.data, "members": self.cluster.members(), "ca_crt": self.ca_pem}
        if role == "server":
            with open(self.p("server/tls/server-ca.key"), encoding="utf-8") as handle:
                answer["ca_key"] = handle.read()
        return 200, answer

    def sync_loop(self) -> None:
        context = ca_context(self.ca_pem)
        while not self.stop.wait(self.heartbeat):
            self.cluster.touch(self.node_name)
            for url in self.cluster.members():
                if url == self.url:
                    continue
                try:
                    other = http_json(url + "/standin/state", context, headers={"X-Standin-Secret": self.secret}, timeout=5)
                    self.cluster.merge(other)
                except (OSError, ValueError, urllib.error.URLError):
                    pass

    def serve(self) -> None:
        tls = self.p("server/tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls + "/serving-kube-apiserver.crt", tls + "/serving-kube-apiserver.key")
        context.load_verify_locations(tls + "/server-ca.crt")
        context.verify_mode = ssl.CERT_OPTIONAL
        context.set_alpn_protocols(["http/1.1"])  # no HTTP/2: Go clients fall back to HTTP/1.1
        from . import apiserver  # pylint: disable=import-outside-toplevel
        self.apiserver = apiserver.ApiServer(self)
        self.apiserver.step()  # the Nodes exist before READY=1
        handler = type("BoundHandler", (Handler,), {"daemon": self})
        httpd = http.server.ThreadingHTTPServer(("0.0.0.0", self.port), handler)
        httpd.daemon_threads = True
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=self.sync_loop, daemon=True).start()
        if self.mode == "restart":  # the kubelet's Node status (version, address) written at start
            with self.cluster.lock:
                own = copy.deepcopy(self.cluster.nodes().get(self.node_name))
            if own is not None:
                self.tell_peers({"cluster_id": self.cluster.data["cluster_id"], "nodes": {self.node_name: own}})
        self.apiserver.start()
        self.ready = True
        append_start_log(self.data_dir, "server", self.mode, self.cluster.data["cluster_id"])
        log("info", "k3s is up and running (stand-in %s, %s)" % (VERSION, self.mode))
        sd_notify("READY=1")
        install_signals(httpd, self.stop)
        httpd.serve_forever()

    def run(self) -> int:
        self.prepare_dirs()
        self.bootstrap()
        self.serve()
        return 0


KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: %(ca)s
    server: https://127.0.0.1:%(port)d
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: %(crt)s
    client-key-data: %(key)s
"""


# k3s-io/k3s pkg/etcd/etcd.go (*ETCD).join, v1.34: the joining server refuses a cluster that has a
# member of its node name under another member name (an old member of a rebuilt server).
DUPLICATE_NAME = "duplicate node name found, please use a unique name for this node"


def duplicate_member(members: list, node_name: str, member_name: str) -> str:
    """The member name that clashes with a server joining as `node_name` (member `member_name`), or ''.
    As upstream: the member's node name is its name up to the last hyphen (names are <node>-<8 hex>)."""
    for entry in members:
        member = str(entry.get("member") or entry.get("name", ""))
        cut = member.rfind("-")
        member_node = member[:cut] if cut > 1 else member
        if member != member_name and member_node == node_name:
            return member
    return ""


def join_cluster(server: str, token: str, node: dict) -> dict:
    """Fetch /cacerts, check the token's CA hash, then ask the server to let us in."""
    expected, _secret = split_token(token)
    deadline = time.time() + env_float("K3S_STANDIN_JOIN_TIMEOUT", 120)
    server = server.rstrip("/")
    while True:
        try:
            ca_pem = http_json(server + "/cacerts", unverified_context(), timeout=5)
            break
        except (OSError, urllib.error.URLError) as exc:
            if time.time() > deadline:
                raise StandinError("failed to get CA certs from %s: %s" % (server, exc))
            log("info", "Waiting to retrieve cluster CA from %s: %s" % (server, exc))
            time.sleep(2)
    if expected and expected != ca_hash(ca_pem.encode()):
        raise StandinError("failed to validate token: token CA hash does not match the Cluster CA certificate hash")
    try:
        return http_json(server + "/standin/join", ca_context(ca_pem), body=dict(node, token=token))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message")
        except ValueError:
            message = exc.reason
        if message == DUPLICATE_NAME:  # logged by K3S as fatal: "etcd cluster join failed: <err>"
            raise StandinError("etcd cluster join failed: %s" % message)
        raise StandinError("failed to join %s: %s %s" % (server, exc.code, message))


class AgentDaemon:
    """`k3s agent`: register a node with a server and keep it Ready."""

    def __init__(self, config: dict):
        self.config = config
        self.data_dir = rooted(str(config.get("data-dir") or "/var/lib/rancher/k3s"))
        self.node_name = str(config.get("node-name") or socket.gethostname()).lower()
        self.node_ip = str(config.get("node-ip") or default_ip())
        self.heartbeat = env_float("K3S_STANDIN_HEARTBEAT", 5)
        self.stop = threading.Event()

    def run(self) -> int:
        server = self.config.get("server")
        if not server:
            raise StandinError("--server is required")
        token = read_token(self.config)
        if token is None:
            raise StandinError("--token is required")
        for rel in ("agent", "agent/images"):
            os.makedirs(os.path.join(self.data_dir, rel), exist_ok=True)
        answer = join_cluster(str(server), token, {
            "role": "agent", "name": self.node_name, "ip": self.node_ip, "version": VERSION,
            "mode": "agent", "arch": arch(), "system": system_info()})
        cluster_id = answer["state"]["cluster_id"]
        write_private(os.path.join(self.data_dir, "agent/standin-agent.json"),
                      json.dumps({"cluster_id": cluster_id, "server": server}))
        append_start_log(self.data_dir, "agent", "agent", cluster_id)
        log("info", "Node %s registered with %s" % (self.node_name, server))
        sd_notify("READY=1")
        secret = split_token(token)[1]
        context = ca_context(answer["ca_crt"])
        members = [str(server).rstrip("/")] + answer.get("members", [])
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        while not self.stop.wait(self.heartbeat):
            for url in list(dict.fromkeys(members)):
                try:
                    reply = http_json(url + "/standin/heartbeat", context,
                                      body={"name": self.node_name, "secret": secret}, timeout=5)
                    members = [str(server).rstrip("/")] + reply.get("members", [])
                    break
                except (OSError, ValueError, urllib.error.URLError):
                    continue
        return 0


# --------------------------------------------------------------------------- helpers


def default_ip() -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


# The containerd K3S embeds (k3s-io/k3s go.mod replace of github.com/containerd/containerd/v2, a
# -k3s fork); one value for every stand-in version: nothing reads more than the "containerd://" scheme.
CONTAINERD_VERSION = "2.1.5-k3s1"
SYSTEM_INFO_FIELDS = ("bootID", "containerRuntimeVersion", "kernelVersion", "machineID", "osImage", "systemUUID")


def system_info() -> dict:
    """This machine's part of the Node's status.nodeInfo, read where the kubelet reads it."""
    def first_line(path: str) -> str:
        try:
            with open(rooted(path), encoding="utf-8") as handle:
                return handle.readline().strip()
        except OSError:
            return ""
    pretty = ""
    try:
        with open(rooted("/etc/os-release"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"bootID": first_line("/proc/sys/kernel/random/boot_id"), "machineID": first_line("/etc/machine-id"),
            "systemUUID": first_line("/sys/class/dmi/id/product_uuid"), "kernelVersion": os.uname().release,
            "osImage": pretty, "containerRuntimeVersion": "containerd://%s" % CONTAINERD_VERSION}


def arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def append_start_log(data_dir: str, role: str, mode: str, cluster_id: str) -> None:
    with open(os.path.join(data_dir, "standin-starts.log"), "a", encoding="utf-8") as handle:
        handle.write("%.3f %s %s %s %s\n" % (time.time(), role, mode, cluster_id, VERSION))


def sd_notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def install_signals(httpd, stop: threading.Event) -> None:
    def handler(*_):
        stop.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# --------------------------------------------------------------------------- extensions

# Optional modules of the stand-in package, each answering its own part of K3S's surface:
#   COMMANDS: dict                             top-level subcommands, name -> callable(args) -> int
#   before_start(command, config) -> int|None  (optional) before `server`/`agent` start: raise
#                                              StandinError to fail, or an exit code to stop there
EXTENSION_MODULES = ("platform", "day2", "runtime")  # runtime last: day2 may stop the start


def extensions() -> list:
    found = []
    for name in EXTENSION_MODULES:
        try:
            found.append(importlib.import_module("standin." + name))
        except ModuleNotFoundError as exc:
            if exc.name != "standin." + name:
                raise
    return found


# --------------------------------------------------------------------------- main


def main(argv: list) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: k3s [--version] server|agent|kubectl ... (K3S stand-in for tests)")
        return 0
    if argv[0] in ("--version", "-v", "version"):
        print("k3s version %s (%s)\ngo version go1.24.6" % (VERSION, COMMIT))
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "kubectl":  # a real kubectl, as K3S's embedded one (apiserver.run_kubectl)
            from . import apiserver  # pylint: disable=import-outside-toplevel
            return apiserver.run_kubectl(rest)
        if command in ("server", "agent"):
            config = load_config(command, parse_flags(rest))
            for module in extensions():  # e.g. day2: fault injection, --cluster-reset (exits)
                code = getattr(module, "before_start", lambda *_: None)(command, config)
                if code is not None:
                    return code
            daemon = ServerDaemon(config) if command == "server" else AgentDaemon(config)
            return daemon.run()
        for module in extensions():
            if command in getattr(module, "COMMANDS", {}):
                return module.COMMANDS[command](rest)
        raise StandinError("the K3S stand-in does not implement '%s'" % command)
    except StandinError as exc:
        log("fatal", str(exc))
        return 1
