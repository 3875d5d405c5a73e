"""Argo CD API stand-in: the endpoints the dictamesh.k3s_gitops modules use.

Every request and response body is validated against the Argo CD 3.6.0 swagger
(see contract.py). Reproduced behaviours (docs/architecture.md "Argo CD REST
facts"; upstream files in tests/standins/FIDELITY.md): operation lifecycle
driven by a fake controller thread, health transitions, 403/404 rules, 400 for
spec-differs-without-upsert and operation-in-progress, rollback to a history
entry (refused under automated sync), 409 for a stale project resourceVersion,
415 for a wrong Content-Type, login rate limiting, sync windows, the NDJSON/SSE
stream, ``items: null``, credential stripping, ``--rootpath`` and optional TLS.

Test-only endpoints live under ``/_standin/`` (no auth, no validation).
"""

from __future__ import annotations

import copy
import datetime
import fnmatch
import hashlib
import json
import re
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from .contract import Contract, ContractError

GRPC_HTTP = {3: 400, 5: 404, 6: 409, 7: 403, 9: 400, 10: 409, 13: 500, 14: 503, 16: 401}
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_REPO_FIELDS = ("password", "sshPrivateKey", "tlsClientCertKey", "tlsClientCertData", "githubAppPrivateKey",
                      "bearerToken", "gcpServiceAccountKey", "azureServicePrincipalClientSecret")
LOGIN_WINDOW = 300.0
LOGIN_MAX_FAILURES = 5
FINALIZER = "resources-finalizer.argocd.argoproj.io"
COMMIT_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def bcrypt_matches(password: str, hashed: str) -> bool:
    """bcrypt check (argocd-server: util/password, bcrypt.CompareHashAndPassword) through libxcrypt."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # pylint: disable=deprecated-module
    return secrets.compare_digest(crypt.crypt(password, hashed) or "", hashed)


def parse_rfc3339(text: str) -> int:
    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp())


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return GRPC_HTTP.get(self.code, 500)

    def body(self) -> Dict[str, Any]:
        return {"error": self.message, "code": self.code, "message": self.message}


PERMISSION_DENIED = (7, "permission denied")


def set_or_drop(meta: Dict[str, Any], key: str, value: Any) -> None:
    if value:
        meta[key] = copy.deepcopy(value)
    else:
        meta.pop(key, None)


# ------------------------------------------------------------------ cron
def _cron_field(expr: str, value: int, low: int, high: int) -> bool:
    for part in expr.split(","):
        step = 1
        if "/" in part:
            part, step_s = part.split("/", 1)
            step = int(step_s)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = end = int(part)
        if start <= value <= end and (value - start) % step == 0:
            return True
    return False


def cron_matches(schedule: str, when: datetime.datetime) -> bool:
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError("cron schedule needs 5 fields: %r" % schedule)
    minute, hour, dom, month, dow = fields
    return (_cron_field(minute, when.minute, 0, 59) and _cron_field(hour, when.hour, 0, 23)
            and _cron_field(dom, when.day, 1, 31) and _cron_field(month, when.month, 1, 12)
            and _cron_field(dow, (when.weekday() + 1) % 7, 0, 6))


def parse_duration(text: str) -> datetime.timedelta:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text or "")
    if not text or not match:
        raise ValueError("invalid duration %r" % text)
    h, m, s = (int(x or 0) for x in match.groups())
    return datetime.timedelta(hours=h, minutes=m, seconds=s)


def window_active(window: Dict[str, Any], when: datetime.datetime) -> bool:
    length = parse_duration(window["duration"])
    start = when.replace(second=0, microsecond=0)
    minutes = int(length.total_seconds() // 60)
    for back in range(0, max(minutes, 1)):
        if cron_matches(window["schedule"], start - datetime.timedelta(minutes=back)):
            return True
    return False


def window_applies(window: Dict[str, Any], app: Dict[str, Any]) -> bool:
    name = app["metadata"]["name"]
    namespace = (app["spec"].get("destination") or {}).get("namespace", "")
    server = (app["spec"].get("destination") or {}).get("server", "")
    return (any(fnmatch.fnmatch(name, p) for p in window.get("applications") or [])
            or any(fnmatch.fnmatch(namespace, p) for p in window.get("namespaces") or [])
            or any(fnmatch.fnmatch(server, p) for p in window.get("clusters") or []))


def resolve_revision(config: Dict[str, Any], revision: str) -> str:
    """The commit a revision resolves to: ``config["commits"]`` first; a full commit SHA stays itself
    (upstream resolveRevision skips the lookup for one); any other name hashes to a stable fake SHA."""
    mapped = (config.get("commits") or {}).get(revision)
    if mapped:
        return mapped
    if COMMIT_SHA_RE.match(revision):
        return revision
    return hashlib.sha1(revision.encode()).hexdigest()


# ------------------------------------------------------------------ state
class Store:
    """All objects plus the fake controller's knobs; guarded by ``cond``."""

    def __init__(self, users: Dict[str, str], static_tokens: Optional[List[str]] = None) -> None:
        self.cond = threading.Condition()
        self.version = 100
        self.apps: Dict[str, Dict[str, Any]] = {}
        self.history: Dict[str, List[Tuple[float, Dict[str, Any]]]] = {}
        self.repos: Dict[str, Dict[str, Any]] = {}
        self.projects: Dict[str, Dict[str, Any]] = {}
        self.users = dict(users)
        self.tokens: Dict[str, str] = {t: "admin" for t in (static_tokens or [])}
        self.token_issued: Dict[str, int] = {}  # token -> iat (JWT NumericDate: whole seconds)
        # argocd-secret as argocd-server reads it: user -> {"hash": bcrypt, "mtime": epoch seconds}
        self.accounts: Dict[str, Dict[str, Any]] = {}
        self.login_failures: Dict[str, List[float]] = {}
        self.requests: List[Dict[str, Any]] = []
        self.violations: List[str] = []
        self.timeline: List[Dict[str, Any]] = []
        self.faults: List[Dict[str, Any]] = []
        self.config: Dict[str, Any] = {
            "pickup_delay": 0.05,      # sync recorded -> controller starts the operation
            "op_duration": 0.2,        # Running -> Succeeded/Failed
            "reconcile_delay": 0.05,   # finished -> comparison (Synced, health Progressing)
            "health_delay": 0.2,       # Progressing -> Healthy/Degraded
            "delete_delay": 0.1,       # cascade delete with finalizer
            "cache_lag": 0.0,          # reads (GET, first stream event) lag behind writes
            "fail_sync": {},           # app -> {"phase": "Failed"|"Error", "message", "resource_message"}
            "degrade": [],             # apps turning Degraded after a sync
            "sync_window_blocked": [],  # app names always blocked (in addition to project windows)
            "stream": True,            # False: the stream endpoint answers 404
            "date_skew": 0.0,          # seconds the API's Date header runs ahead of the controller's clock
        }
        self.projects["default"] = self._meta({"metadata": {"name": "default"}, "spec": {
            "sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}, new=True)

    # helpers (call with cond held)
    def bump(self) -> str:
        self.version += 1
        return str(self.version)

    def _meta(self, obj: Dict[str, Any], new: bool = False) -> Dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if new:
            meta.setdefault("namespace", "argocd")
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
        else:
            meta["generation"] = int(meta.get("generation") or 1) + 1
        meta["resourceVersion"] = self.bump()
        return obj

    def touch_app(self, name: str) -> None:
        app = self.apps.get(name)
        if app is not None:
            app["metadata"]["resourceVersion"] = self.bump()
        self.history.setdefault(name, []).append((time.monotonic(), copy.deepcopy(app)))
        self.history[name] = self.history[name][-50:]
        self.cond.notify_all()

    def read_app(self, name: str, lag: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """The app as a lagging cache would show it (None when missing)."""
        lag = self.config["cache_lag"] if lag is None else lag
        if lag <= 0:
            return copy.deepcopy(self.apps.get(name))
        cutoff = time.monotonic() - lag
        seen = [snap for (t, snap) in self.history.get(name, []) if t <= cutoff]
        if seen:
            return copy.deepcopy(seen[-1])
        return None if self.history.get(name) else copy.deepcopy(self.apps.get(name))

    def mark(self, event: str, **data: Any) -> None:
        self.timeline.append(dict(event=event, time=time.time(), **data))


# ------------------------------------------------------------------ controller
class Controller(threading.Thread):
    """Fake application controller: runs requested operations and health."""

    def __init__(self, store: Store) -> None:
        super().__init__(daemon=True, name="argocd-standin-controller")
        self.store = store
        self.stopped = threading.Event()
        self.jobs: List[Tuple[float, Any]] = []

    def schedule(self, delay: float, fn: Any) -> None:
        self.jobs.append((time.monotonic() + delay, fn))

    def run(self) -> None:
        while not self.stopped.is_set():
            with self.store.cond:
                self.store.cond.wait(0.01)
                due = [j for j in self.jobs if j[0] <= time.monotonic()]
                self.jobs = [j for j in self.jobs if j[0] > time.monotonic()]
                for _due_at, fn in sorted(due, key=lambda j: j[0]):
                    fn()

    # jobs (run with cond held)
    def start_operation(self, name: str) -> None:
        app = self.store.apps.get(name)
        if not app or not app.get("operation"):
            return
        state = {"operation": copy.deepcopy(app["operation"]), "phase": "Running",
                 "message": "one or more tasks are running", "startedAt": now_rfc3339()}
        app.setdefault("status", {})["operationState"] = state
        self.store.touch_app(name)
        started = state["startedAt"]
        self.schedule(self.store.config["op_duration"], lambda: self.finish_operation(name, started))

    def finish_operation(self, name: str, started: str, terminated: bool = False) -> None:
        app = self.store.apps.get(name)
        if not app:
            return
        state = (app.get("status") or {}).get("operationState") or {}
        if state.get("startedAt") != started or state.get("finishedAt"):
            return
        sync_op = state["operation"].get("sync") or {}
        revision = sync_op.get("revision") or app["spec"].get("source", {}).get("targetRevision") or "HEAD"
        revision = resolve_revision(self.store.config, revision)
        failure = self.store.config["fail_sync"].get(name)
        dry = bool(sync_op.get("dryRun"))
        was_synced = (app["status"].get("sync") or {}).get("status") == "Synced"
        results = []
        for res in app["status"].get("resources") or []:
            verb = "unchanged" if was_synced else "configured"
            results.append({"group": res.get("group", ""), "version": res.get("version", "v1"), "kind": res["kind"],
                            "namespace": res.get("namespace", ""), "name": res["name"], "status": "Synced",
                            "message": "%s/%s %s%s" % (res["kind"].lower(), res["name"], verb,
                                                       " (dry run)" if dry else ""),
                            "syncPhase": "Sync"})
        if terminated:
            state.update(phase="Failed", message="Operation terminated")
        elif failure:
            state.update(phase=failure.get("phase", "Failed"), message=failure.get("message", "one or more objects failed to apply"))
            if results:
                results[0].update(status="SyncFailed", message=failure.get("resource_message", "admission webhook denied the request"))
        else:
            state.update(phase="Succeeded", message="successfully synced (all tasks run)")
        state["finishedAt"] = now_rfc3339()
        state["syncResult"] = {"revision": revision, "resources": results}
        app["operation"] = None
        app.pop("operation")
        if state["phase"] == "Succeeded" and not dry:
            history = app["status"].setdefault("history", [])
            history.append({"id": len(history), "revision": revision, "deployedAt": state["finishedAt"],
                            "deployStartedAt": state["startedAt"], "source": copy.deepcopy(app["spec"].get("source", {}))})
        self.store.touch_app(name)
        self.store.mark("operation_finished", app=name, phase=state["phase"])
        ok = state["phase"] == "Succeeded" and not dry
        self.schedule(self.store.config["reconcile_delay"], lambda: self.reconcile(name, revision, ok))

    def reconcile(self, name: str, revision: str, synced: bool) -> None:
        app = self.store.apps.get(name)
        if not app:
            return
        status = app["status"]
        status["reconciledAt"] = now_rfc3339()
        if synced:
            status["sync"] = {"status": "Synced", "revision": revision,
                              "comparedTo": {"source": copy.deepcopy(app["spec"].get("source", {})),
                                             "destination": copy.deepcopy(app["spec"].get("destination", {}))}}
            status["health"] = {"status": "Progressing", "lastTransitionTime": now_rfc3339()}
            for res in status.get("resources") or []:
                res["status"] = "Synced"
                res["health"] = {"status": "Progressing"}
            self.schedule(self.store.config["health_delay"], lambda: self.settle_health(name))
        self.store.touch_app(name)

    def settle_health(self, name: str) -> None:
        app = self.store.apps.get(name)
        if not app:
            return
        degraded = name in self.store.config["degrade"]
        health = "Degraded" if degraded else "Healthy"
        app["status"]["health"] = {"status": health, "lastTransitionTime": now_rfc3339()}
        for i, res in enumerate(app["status"].get("resources") or []):
            res["health"] = {"status": "Degraded", "message": "Back-off restarting failed container"} \
                if degraded and i == 0 else {"status": "Healthy"}
        app["status"]["reconciledAt"] = now_rfc3339()
        self.store.touch_app(name)
        if not degraded and app["status"]["sync"].get("status") == "Synced":
            self.store.mark("synced_healthy", app=name)

    def finish_delete(self, name: str) -> None:
        if name in self.store.apps:
            del self.store.apps[name]
            self.store.touch_app(name)


# ------------------------------------------------------------------ API logic
class Api:
    def __init__(self, store: Store, controller: Controller) -> None:
        self.store = store
        self.ctl = controller

    # session -------------------------------------------------------
    def login(self, body: Dict[str, Any]) -> Dict[str, Any]:
        user, password = body.get("username", ""), body.get("password", "")
        now = time.monotonic()
        failures = [t for t in self.store.login_failures.get(user, []) if now - t < LOGIN_WINDOW]
        self.store.login_failures[user] = failures
        if len(failures) >= LOGIN_MAX_FAILURES:
            self.store.mark("login_refused_rate_limit", user=user)
            raise ApiError(16, "Invalid username or password")
        if not self.password_matches(user, password):
            failures.append(now)
            raise ApiError(16, "Invalid username or password")
        token = "standin.%s" % secrets.token_urlsafe(24)
        self.store.tokens[token] = user
        self.store.token_issued[token] = int(time.time())
        return {"token": token}

    def password_matches(self, user: str, password: str) -> bool:
        account = self.store.accounts.get(user)
        if account and account.get("hash"):
            return bcrypt_matches(password, account["hash"])
        return user in self.store.users and secrets.compare_digest(self.store.users[user], password)

    # applications --------------------------------------------------
    def app_or_error(self, name: str, project: Optional[str], lag: Optional[float] = None) -> Dict[str, Any]:
        app = self.store.read_app(name, lag)
        if app is None:
            if project:
                raise ApiError(5, 'applications.argoproj.io "%s" not found' % name)
            raise ApiError(*PERMISSION_DENIED)
        if project and (app["spec"].get("project") or "default") != project:
            # getAppEnforceRBAC: the app exists in another project -> 404 "doesn't exist in that project"
            raise ApiError(5, 'applications.argoproj.io "%s" not found' % name)
        return app

    def validate_app(self, app: Dict[str, Any]) -> None:
        name = app.get("metadata", {}).get("name", "")
        if not NAME_RE.match(name or ""):
            raise ApiError(3, "invalid application name %r" % name)
        spec = app.get("spec") or {}
        project = self.store.projects.get(spec.get("project", ""))
        if project is None:
            raise ApiError(3, "application references project %s which does not exist" % spec.get("project"))
        source = spec.get("source") or {}
        if not source.get("repoURL") and not spec.get("sources"):
            raise ApiError(3, "application spec for %s is invalid: InvalidSpecError: spec.source.repoURL and "
                              "spec.source.path either spec.source.chart are required" % name)
        dest = spec.get("destination") or {}
        if not dest.get("server") and not dest.get("name"):
            raise ApiError(3, "application spec for %s is invalid: InvalidSpecError: Destination server missing "
                              "from app spec" % name)
        pspec = project["spec"]
        if source.get("repoURL") and not any(fnmatch.fnmatch(source["repoURL"], p) for p in pspec.get("sourceRepos") or []):
            raise ApiError(3, "application spec for %s is invalid: InvalidSpecError: application repo %s is not "
                              "permitted in project '%s'" % (name, source["repoURL"], spec["project"]))
        if not any(fnmatch.fnmatch(dest.get("server", dest.get("name", "")), d.get("server") or d.get("name") or "")
                   and fnmatch.fnmatch(dest.get("namespace", ""), d.get("namespace") or "")
                   for d in pspec.get("destinations") or []):
            raise ApiError(3, "application spec for %s is invalid: InvalidSpecError: application destination "
                              "server '%s' and namespace '%s' do not match any of the allowed destinations in "
                              "project '%s'" % (name, dest.get("server"), dest.get("namespace"), spec["project"]))

    def create_app(self, body: Dict[str, Any], query: Dict[str, str]) -> Dict[str, Any]:
        upsert = query.get("upsert") == "true"
        self.validate_app(body)
        name = body["metadata"]["name"]
        existing = self.store.apps.get(name)
        meta_keys = ("labels", "annotations", "finalizers")
        if existing is not None:
            same = existing["spec"] == body["spec"] and all(
                (existing["metadata"].get(k) or None) == (body["metadata"].get(k) or None) for k in meta_keys)
            if same:
                return copy.deepcopy(existing)
            if not upsert:
                raise ApiError(3, "existing application spec is different, use upsert flag to force update")
            existing["spec"] = copy.deepcopy(body["spec"])
            for key in meta_keys:
                set_or_drop(existing["metadata"], key, body["metadata"].get(key))
            self.store._meta(existing)
            self.store.touch_app(name)
            return copy.deepcopy(existing)
        app = {"metadata": {k: copy.deepcopy(v) for k, v in body["metadata"].items()
                            if k in ("name", "namespace", "labels", "annotations", "finalizers")},
               "spec": copy.deepcopy(body["spec"])}
        dest_ns = (app["spec"].get("destination") or {}).get("namespace", "default")
        app["status"] = {
            "sync": {"status": "OutOfSync", "revision": "0000000"},
            "health": {"status": "Missing"},
            "reconciledAt": now_rfc3339(),
            "resources": [
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": dest_ns, "name": name,
                 "status": "OutOfSync", "health": {"status": "Missing"}},
                {"group": "", "version": "v1", "kind": "Service", "namespace": dest_ns, "name": name,
                 "status": "OutOfSync", "health": {"status": "Missing"}},
            ],
        }
        self.store._meta(app, new=True)
        self.store.apps[name] = app
        self.store.touch_app(name)
        return copy.deepcopy(app)

    def update_app(self, name: str, body: Dict[str, Any], query: Dict[str, str]) -> Dict[str, Any]:
        if body.get("metadata", {}).get("name") != name:
            raise ApiError(3, "application name in the path and the body differ")
        existing = self.app_or_error(name, query.get("project"), lag=0)
        self.validate_app(body)
        app = self.store.apps[name]
        app["spec"] = copy.deepcopy(body["spec"])
        for key in ("labels", "annotations", "finalizers"):
            set_or_drop(app["metadata"], key, body["metadata"].get(key))
        if existing["spec"] != app["spec"]:
            app["status"]["sync"] = {"status": "OutOfSync", "revision": existing["status"]["sync"].get("revision", "")}
        self.store._meta(app)
        self.store.touch_app(name)
        return copy.deepcopy(app)

    def delete_app(self, name: str, query: Dict[str, str]) -> Dict[str, Any]:
        self.app_or_error(name, query.get("project"), lag=0)
        app = self.store.apps[name]
        cascade = query.get("cascade", "true") != "false"
        self.store.mark("app_delete", app=name, cascade=cascade, propagationPolicy=query.get("propagationPolicy"))
        finalizers = app["metadata"].get("finalizers") or []
        if cascade and FINALIZER in finalizers:
            app["metadata"]["deletionTimestamp"] = now_rfc3339()
            self.store.touch_app(name)
            self.ctl.schedule(self.store.config["delete_delay"], lambda: self.ctl.finish_delete(name))
        else:
            del self.store.apps[name]
            self.store.touch_app(name)
        return {}

    def sync_blocked(self, app: Dict[str, Any]) -> bool:
        name = app["metadata"]["name"]
        if name in self.store.config["sync_window_blocked"]:
            return True
        windows = (self.store.projects.get(app["spec"]["project"]) or {}).get("spec", {}).get("syncWindows") or []
        now = datetime.datetime.now(datetime.timezone.utc)
        matching = [w for w in windows if window_applies(w, app)]
        active = [w for w in matching if window_active(w, now)]
        if any(w["kind"] == "deny" and not w.get("manualSync") for w in active):
            return True
        allows = [w for w in matching if w["kind"] == "allow"]
        if allows and not any(w in active for w in allows) and not any(w.get("manualSync") for w in allows):
            return True
        return False

    def sync(self, name: str, body: Dict[str, Any], user: str) -> Dict[str, Any]:
        if body.get("name") not in (None, name):
            raise ApiError(3, "application name in the path and the body differ")
        self.app_or_error(name, body.get("project"))
        app = self.store.apps[name]
        if self.operation_in_progress(app):
            raise ApiError(9, "another operation is already in progress")
        if app["metadata"].get("deletionTimestamp"):
            raise ApiError(9, "application is being deleted")
        if self.sync_blocked(app):
            raise ApiError(7, "cannot sync: blocked by sync window")
        sync_op: Dict[str, Any] = {}
        for key in ("revision", "prune", "dryRun", "resources", "manifests"):
            if body.get(key) not in (None, [], False, ""):
                sync_op[key] = copy.deepcopy(body[key])
        if body.get("strategy"):
            sync_op["syncStrategy"] = copy.deepcopy(body["strategy"])
        if (body.get("syncOptions") or {}).get("items"):
            sync_op["syncOptions"] = list(body["syncOptions"]["items"])
        operation: Dict[str, Any] = {"sync": sync_op, "initiatedBy": {"username": user}}
        if body.get("infos"):
            operation["info"] = copy.deepcopy(body["infos"])  # Server.Sync: Info: syncReq.Infos
        if body.get("retryStrategy"):
            operation["retry"] = copy.deepcopy(body["retryStrategy"])
        self.set_app_operation(app, operation)
        self.store.touch_app(name)
        self.store.mark("sync_requested", app=name)
        self.ctl.schedule(self.store.config["pickup_delay"], lambda: self.ctl.start_operation(name))
        return copy.deepcopy(app)

    @staticmethod
    def set_app_operation(app: Dict[str, Any], operation: Dict[str, Any]) -> None:
        """util/argo SetAppOperation: record the operation and clear the previous operationState."""
        app["operation"] = operation
        app.setdefault("status", {}).pop("operationState", None)

    @staticmethod
    def operation_in_progress(app: Dict[str, Any]) -> bool:
        state = (app.get("status") or {}).get("operationState") or {}
        return bool(app.get("operation")) or (state.get("phase") in ("Running", "Terminating")
                                              and not state.get("finishedAt"))

    @staticmethod
    def automated_sync_enabled(app: Dict[str, Any]) -> bool:
        """SyncPolicy.IsAutomatedSyncEnabled: ``automated`` set and ``enabled`` not false."""
        automated = (app["spec"].get("syncPolicy") or {}).get("automated")
        if automated is None:
            return False
        return not isinstance(automated, dict) or automated.get("enabled", True) is not False

    def rollback(self, name: str, body: Dict[str, Any], user: str) -> Dict[str, Any]:
        """Server.Rollback (Argo CD 3.6): a sync to a history entry's revision and source, apply strategy.

        Checked in upstream order: the application (403/404 rules), being deleted, automated sync
        enabled, the history id, a history entry without source; then SetAppOperation refuses while
        another operation is in progress. The spec's sync options are carried over.
        """
        if body.get("name") not in (None, name):
            raise ApiError(3, "application name in the path and the body differ")
        self.app_or_error(name, body.get("project"), lag=0)
        app = self.store.apps[name]
        if app["metadata"].get("deletionTimestamp"):
            raise ApiError(9, "application is deleting")
        if self.automated_sync_enabled(app):
            raise ApiError(9, "rollback cannot be initiated when auto-sync is enabled")
        wanted = int(body.get("id") or 0)
        history = (app.get("status") or {}).get("history") or []
        entry = next((h for h in history if int(h.get("id") or 0) == wanted), None)
        if entry is None:
            raise ApiError(3, "application %s does not have deployment with id %d" % (name, wanted))
        if not entry.get("source") and not entry.get("sources"):
            raise ApiError(9, "cannot rollback to revision deployed with Argo CD v0.11 or lower. "
                              "sync to revision instead.")
        if self.operation_in_progress(app):
            raise ApiError(9, "another operation is already in progress")
        sync_op: Dict[str, Any] = {"syncStrategy": {"apply": {}}}
        for key in ("revision", "revisions", "source", "sources"):
            if entry.get(key):
                sync_op[key] = copy.deepcopy(entry[key])
        if body.get("prune"):
            sync_op["prune"] = True
        if body.get("dryRun"):
            sync_op["dryRun"] = True
        options = (app["spec"].get("syncPolicy") or {}).get("syncOptions")
        if options:
            sync_op["syncOptions"] = list(options)
        self.set_app_operation(app, {"sync": sync_op, "initiatedBy": {"username": user}})
        self.store.touch_app(name)
        self.store.mark("rollback_requested", app=name, id=wanted)
        self.ctl.schedule(self.store.config["pickup_delay"], lambda: self.ctl.start_operation(name))
        return copy.deepcopy(app)

    def terminate(self, name: str, query: Dict[str, str]) -> Dict[str, Any]:
        self.app_or_error(name, query.get("project"), lag=0)
        app = self.store.apps[name]
        state = (app.get("status") or {}).get("operationState")
        # Server.TerminateOperation: 400 unless the operation is requested AND picked up by the controller
        # (a just-requested one has no operationState yet: SetAppOperation cleared it)
        if not app.get("operation") or not state:
            raise ApiError(3, "Unable to terminate operation. No operation is in progress")
        state["phase"] = "Terminating"
        started = state.get("startedAt")
        self.ctl.schedule(0.05, lambda: self.ctl.finish_operation(name, started, terminated=True))
        self.store.touch_app(name)
        self.store.mark("operation_terminated", app=name)
        return {}

    # repositories --------------------------------------------------
    @staticmethod
    def sanitized(repo: Dict[str, Any]) -> Dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in repo.items() if k not in SECRET_REPO_FIELDS}
        out["connectionState"] = {"status": "Successful", "message": "", "attemptedAt": now_rfc3339()}
        return out

    def create_repo(self, body: Dict[str, Any], query: Dict[str, str]) -> Dict[str, Any]:
        url = body.get("repo")
        if not url:
            raise ApiError(3, "repo is required")
        if body.get("type") == "helm" and not body.get("name"):
            raise ApiError(3, "name is required for a helm repository")
        if body.get("sshPrivateKey") and url.startswith("http"):
            raise ApiError(3, "sshPrivateKey given for an https repository")
        stored = {k: copy.deepcopy(v) for k, v in body.items() if k != "connectionState"}
        stored.setdefault("type", "git")
        existing = self.store.repos.get(url)
        if existing is not None and existing != stored and query.get("upsert") != "true":
            raise ApiError(3, "existing repository spec is different; use upsert flag to force update")
        self.store.repos[url] = stored
        self.store.mark("repo_written", repo=url, fields=sorted(stored))
        return copy.deepcopy(body)  # the real server echoes the request, credentials included

    def get_repo(self, url: str) -> Dict[str, Any]:
        repo = self.store.repos.get(url)
        if repo is None:
            raise ApiError(*PERMISSION_DENIED)
        return self.sanitized(repo)

    # projects ------------------------------------------------------
    def validate_project(self, project: Dict[str, Any]) -> None:
        name = (project.get("metadata") or {}).get("name", "")
        if not NAME_RE.match(name or ""):
            raise ApiError(3, "invalid project name %r" % name)
        spec = project.get("spec") or {}
        if len(spec.get("description") or "") > 255:
            raise ApiError(3, "description is longer than 255 characters")
        for dest in spec.get("destinations") or []:
            if not dest.get("server") and not dest.get("name"):
                raise ApiError(3, "destination has no server and no name")
        for window in spec.get("syncWindows") or []:
            if window.get("kind") not in ("allow", "deny"):
                raise ApiError(3, "sync window kind must be allow or deny")
            try:
                cron_matches(window.get("schedule", ""), datetime.datetime.now(datetime.timezone.utc))
                parse_duration(window.get("duration", ""))
            except ValueError as exc:
                raise ApiError(3, "invalid sync window: %s" % exc)

    def create_project(self, body: Dict[str, Any]) -> Dict[str, Any]:
        project = body.get("project") or {}
        self.validate_project(project)
        name = project["metadata"]["name"]
        existing = self.store.projects.get(name)
        if existing is not None:
            if existing.get("spec") == project.get("spec"):
                return copy.deepcopy(existing)
            if not body.get("upsert"):
                raise ApiError(3, "existing project spec is different, use upsert flag to force update")
            existing["spec"] = copy.deepcopy(project.get("spec") or {})
            self.store._meta(existing)
            return copy.deepcopy(existing)
        new = {"metadata": {"name": name}, "spec": copy.deepcopy(project.get("spec") or {})}
        self.store.projects[name] = self.store._meta(new, new=True)
        return copy.deepcopy(new)

    def update_project(self, name: str, body: Dict[str, Any]) -> Dict[str, Any]:
        project = body.get("project") or {}
        if (project.get("metadata") or {}).get("name") != name:
            raise ApiError(3, "project name in the path and the body differ")
        existing = self.store.projects.get(name)
        if existing is None:
            raise ApiError(5, 'appprojects.argoproj.io "%s" not found' % name)
        self.validate_project(project)
        if project["metadata"].get("resourceVersion") != existing["metadata"]["resourceVersion"]:
            raise ApiError(10, 'Operation cannot be fulfilled on appprojects.argoproj.io "%s": the object has been '
                               'modified; please apply your changes to the latest version and try again' % name)
        existing["spec"] = copy.deepcopy(project.get("spec") or {})
        for key in ("labels", "annotations"):
            if key in project["metadata"]:
                existing["metadata"][key] = copy.deepcopy(project["metadata"][key])
        self.store._meta(existing)
        return copy.deepcopy(existing)

    def delete_project(self, name: str) -> Dict[str, Any]:
        if name not in self.store.projects:
            raise ApiError(5, 'appprojects.argoproj.io "%s" not found' % name)
        users = [a for a in self.store.apps.values() if a["spec"].get("project") == name]
        if users:
            raise ApiError(3, "project is referenced by %d applications" % len(users))
        del self.store.projects[name]
        return {}


# ------------------------------------------------------------------ HTTP
ROUTES = [
    # (method, regex, swagger template, handler name)
    ("GET", r"/api/version", "/api/version", "h_version"),
    ("POST", r"/api/v1/session", "/api/v1/session", "h_login"),
    ("GET", r"/api/v1/session/userinfo", "/api/v1/session/userinfo", "h_userinfo"),
    ("GET", r"/api/v1/applications", "/api/v1/applications", "h_list_apps"),
    ("POST", r"/api/v1/applications", "/api/v1/applications", "h_create_app"),
    ("GET", r"/api/v1/stream/applications", "/api/v1/stream/applications", "h_stream"),
    ("POST", r"/api/v1/applications/(?P<name>[^/]+)/sync", "/api/v1/applications/{name}/sync", "h_sync"),
    ("POST", r"/api/v1/applications/(?P<name>[^/]+)/rollback", "/api/v1/applications/{name}/rollback", "h_rollback"),
    ("DELETE", r"/api/v1/applications/(?P<name>[^/]+)/operation", "/api/v1/applications/{name}/operation", "h_terminate"),
    ("GET", r"/api/v1/applications/(?P<name>[^/]+)", "/api/v1/applications/{name}", "h_get_app"),
    ("PUT", r"/api/v1/applications/(?P<name>[^/]+)", "/api/v1/applications/{application.metadata.name}", "h_update_app"),
    ("DELETE", r"/api/v1/applications/(?P<name>[^/]+)", "/api/v1/applications/{name}", "h_delete_app"),
    ("GET", r"/api/v1/repositories", "/api/v1/repositories", "h_list_repos"),
    ("POST", r"/api/v1/repositories", "/api/v1/repositories", "h_create_repo"),
    ("GET", r"/api/v1/repositories/(?P<name>[^/]+)", "/api/v1/repositories/{repo}", "h_get_repo"),
    ("DELETE", r"/api/v1/repositories/(?P<name>[^/]+)", "/api/v1/repositories/{repo}", "h_delete_repo"),
    ("GET", r"/api/v1/projects", "/api/v1/projects", "h_list_projects"),
    ("POST", r"/api/v1/projects", "/api/v1/projects", "h_create_project"),
    ("GET", r"/api/v1/projects/(?P<name>[^/]+)", "/api/v1/projects/{name}", "h_get_project"),
    ("PUT", r"/api/v1/projects/(?P<name>[^/]+)", "/api/v1/projects/{project.metadata.name}", "h_update_project"),
    ("DELETE", r"/api/v1/projects/(?P<name>[^/]+)", "/api/v1/projects/{name}", "h_delete_project"),
]
# session.Server.AuthFuncOverride: the session service authenticates but ignores a bad token
# (argo-cd server/session/session.go): userinfo then answers loggedIn false, not 401
UNAUTHENTICATED = {"h_version", "h_login", "h_userinfo"}
VERSION = {"Version": "v3.6.0+37ee009.standin", "BuildDate": "2025-01-01T00:00:00Z", "GitCommit":
           "37ee0097cf851bc2dd7665fc081bbce61a7e836e", "GitTreeState": "clean", "GoVersion": "go1.24",
           "Compiler": "gc", "Platform": "linux/amd64"}


class Handler(BaseHTTPRequestHandler):
    server_version = "argocd-standin"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def date_time_string(self, timestamp: Optional[float] = None) -> str:
        """The Date header, ``date_skew`` seconds ahead of the clock that stamps operations."""
        if timestamp is None:
            timestamp = time.time() + float(self.standin.store.config.get("date_skew") or 0.0)
        return super().date_time_string(timestamp)

    @property
    def standin(self) -> "ArgoCDStandIn":
        return self.server.standin  # type: ignore[attr-defined]

    # plumbing ------------------------------------------------------
    def send_json(self, status: int, body: Any, template: Optional[str] = None) -> None:
        if template is not None:
            try:
                self.standin.contract.validate_response(template, self.command, status if status == 200 else 0, body)
            except ContractError as exc:
                self.standin.store.violations.append("%s %s: %s" % (self.command, template, exc))
                status, body = 500, {"error": str(exc), "code": 13, "message": "stand-in bug: %s" % exc}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_error_api(self, exc: ApiError, template: Optional[str]) -> None:
        self.send_json(exc.http_status, exc.body(), template)

    def do_GET(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def do_PUT(self) -> None:
        self.dispatch()

    def do_DELETE(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        split = urlsplit(self.path)
        path = split.path
        base = self.standin.base_path
        if path.startswith("/_standin/"):
            return self.admin(path[len("/_standin/"):])
        if base:
            if not path.startswith(base + "/"):
                return self.send_text(404, "404 page not found")
            path = path[len(base):]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query_multi = parse_qs(split.query, keep_blank_values=True)
        query = {k: v[-1] for k, v in query_multi.items()}
        with self.standin.store.cond:
            self.standin.store.requests.append({"method": self.command, "path": path, "query": query_multi,
                                                "content_type": self.headers.get("Content-Type")})
            fault = self.take_fault(path)
        if fault:
            return self.send_text(fault["status"], fault.get("body", "upstream unavailable"))
        if not path.startswith("/api/"):
            return self.send_text(404, "404 page not found")
        if self.command != "GET" and self.headers.get("Content-Type") != "application/json":
            return self.send_text(415, "Invalid content type")
        for method, pattern, template, handler in ROUTES:
            match = re.fullmatch(pattern, path)
            if match and method == self.command:
                break
        else:
            return self.send_json(404, {"error": "Not Found", "code": 5, "message": "Not Found"})
        name = unquote(match.group("name")) if "name" in match.groupdict() else None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.send_error_api(ApiError(3, "request body is not JSON"), template)
        try:
            self.standin.contract.validate_request(template, method, body, query_multi)
        except ContractError as exc:
            self.standin.store.violations.append("request %s %s: %s" % (method, template, exc))
            return self.send_error_api(ApiError(3, "stand-in contract: %s" % exc), template)
        user = None
        if handler not in UNAUTHENTICATED:
            user = self.authenticate()
            if user is None:
                return self.send_error_api(ApiError(16, "invalid session: token is not valid"), template)
        if handler == "h_stream":
            return self.h_stream(query, template)
        try:
            with self.standin.store.cond:
                result = getattr(self, handler)(name=name, body=body, query=query, user=user)
        except ApiError as exc:
            return self.send_error_api(exc, template)
        self.send_json(200, result, template)

    def take_fault(self, path: str) -> Optional[Dict[str, Any]]:
        for fault in self.standin.store.faults:
            if path.startswith(fault["path_prefix"]) and fault.get("method", self.command) == self.command \
                    and fault["count"] > 0:
                fault["count"] -= 1
                return fault
        return None

    def send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authenticate(self) -> Optional[str]:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            return None
        store = self.standin.store
        with store.cond:
            token = header[len("Bearer "):]
            user = store.tokens.get(token)
            mtime = (store.accounts.get(user or "") or {}).get("mtime")
            # util/session/sessionmanager.go Parse: "account password has changed since token issued"
            # when issuedAt.Before(passwordMtime) (whole seconds: a token of the same second stays valid)
            if user and mtime is not None and store.token_issued.get(token, 0) < mtime:
                return None
            return user

    # handlers (store lock held) -------------------------------------
    def h_version(self, **_: Any) -> Dict[str, Any]:
        return dict(VERSION)

    def h_login(self, body: Dict[str, Any], **_: Any) -> Dict[str, Any]:
        return self.standin.api.login(body)

    def h_userinfo(self, **_: Any) -> Dict[str, Any]:
        user = self.authenticate()
        if user is None:
            return {"loggedIn": False}
        return {"loggedIn": True, "username": user, "iss": "argocd"}

    def h_list_apps(self, query: Dict[str, str], **_: Any) -> Dict[str, Any]:
        store = self.standin.store
        apps = [store.read_app(n) for n in sorted(store.apps)]
        apps = [a for a in apps if a is not None]
        projects = parse_qs(urlsplit(self.path).query).get("projects") or parse_qs(urlsplit(self.path).query).get("project")
        if projects:
            apps = [a for a in apps if a["spec"].get("project") in projects]
        if query.get("name"):
            apps = [a for a in apps if a["metadata"]["name"] == query["name"]]
        if query.get("repo"):
            apps = [a for a in apps if (a["spec"].get("source") or {}).get("repoURL") == query["repo"]]
        if query.get("selector"):
            for term in query["selector"].split(","):
                key, _, value = term.partition("=")
                apps = [a for a in apps if (a["metadata"].get("labels") or {}).get(key) == value]
        return {"items": apps or None, "metadata": {"resourceVersion": str(store.version)}}

    def h_get_app(self, name: str, query: Dict[str, str], **_: Any) -> Dict[str, Any]:
        return self.standin.api.app_or_error(name, query.get("project"))

    def h_create_app(self, body: Dict[str, Any], query: Dict[str, str], **_: Any) -> Dict[str, Any]:
        return self.standin.api.create_app(body, query)

    def h_update_app(self, name: str, body: Dict[str, Any], query: Dict[str, str], **_: Any) -> Dict[str, Any]:
        return self.standin.api.update_app(name, body, query)

    def h_delete_app(self, name: str, query: Dict[str, str], **_: Any) -> Dict[str, Any]:
        return self.standin.api.delete_app(name, query)

    def h_sync(self, name: str, body: Dict[str, Any], user: str, **_: Any) -> Dict[str, Any]:
        return self.standin.api.sync(name, body, user)

    def h_rollback(self, name: str, body: Dict[str, Any], user: str, **_: Any) -> Dict[str, Any]:
        return self.standin.api.rollback(name, body or {}, user)

    def h_terminate(self, name: str, query: Dict[str, str], **_: Any) -> Dict[str, Any]:
        return self.standin.api.terminate(name, query)

    def h_list_repos(self, **_: Any) -> Dict[str, Any]:  # ignores ?repo= like the real server
        store = self.standin.store
        items = [Api.sanitized(store.repos[k]) for k in sorted(store.repos)]
        return {"items": items or None, "metadata": {}}

    def h_create_repo(self, body: Dict[str, Any], query: Dict[str, str], **_: Any) -> Dict[str, Any]:
        return self.standin.api.create_repo(body, query)

    def h_get_repo(self, name: str, **_: Any) -> Dict[str, Any]:
        return self.standin.api.get_repo(name)

    def h_delete_repo(self, name: str, **_: Any) -> Dict[str, Any]:
        if name not in self.standin.store.repos:
            raise ApiError(*PERMISSION_DENIED)
        del self.standin.store.repos[name]
        return {}

    def h_list_projects(self, **_: Any) -> Dict[str, Any]:
        store = self.standin.store
        return {"items": [copy.deepcopy(store.projects[k]) for k in sorted(store.projects)] or None, "metadata": {}}

    def h_create_project(self, body: Dict[str, Any], **_: Any) -> Dict[str, Any]:
        return self.standin.api.create_project(body)

    def h_get_project(self, name: str, **_: Any) -> Dict[str, Any]:
        project = self.standin.store.projects.get(name)
        if project is None:
            raise ApiError(5, 'appprojects.argoproj.io "%s" not found' % name)
        return copy.deepcopy(project)

    def h_update_project(self, name: str, body: Dict[str, Any], **_: Any) -> Dict[str, Any]:
        return self.standin.api.update_project(name, body)

    def h_delete_project(self, name: str, **_: Any) -> Dict[str, Any]:
        return self.standin.api.delete_project(name)

    # stream ----------------------------------------------------------
    def h_stream(self, query: Dict[str, str], template: str) -> None:
        store = self.standin.store
        if not store.config["stream"]:
            return self.send_json(404, {"error": "Not Found", "code": 5, "message": "Not Found"})
        name = query.get("name")
        sse = "text/event-stream" in (self.headers.get("Accept") or "")
        schema = self.standin.contract
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if sse else "application/json")
        self.end_headers()
        last_version = None
        first = True
        deadline = time.monotonic() + self.standin.stream_max_seconds
        try:
            while time.monotonic() < deadline and not self.standin.stopping:
                with store.cond:
                    if not first:
                        store.cond.wait(0.1)
                    app = store.read_app(name) if first else copy.deepcopy(store.apps.get(name))
                    if app is None and not first and last_version is not None and name not in store.apps:
                        event = {"result": {"type": "DELETED", "application": {"metadata": {"name": name}}}}
                        self.write_event(event, sse, schema, template)
                        return
                if app is None:
                    first = False
                    continue
                version = app["metadata"]["resourceVersion"]
                if version != last_version:
                    event = {"result": {"type": "ADDED" if first else "MODIFIED", "application": app}}
                    self.write_event(event, sse, schema, template)
                    last_version = version
                first = False
        except (BrokenPipeError, ConnectionResetError):
            return

    def write_event(self, event: Dict[str, Any], sse: bool, contract: Contract, template: str) -> None:
        try:
            contract.validate_response(template, "GET", 200, event)
        except ContractError as exc:
            self.standin.store.violations.append("stream event: %s" % exc)
        line = json.dumps(event)
        data = ("data: %s\n\n" % line) if sse else (line + "\n")
        self.wfile.write(data.encode())
        self.wfile.flush()

    # admin -----------------------------------------------------------
    def admin(self, what: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        store = self.standin.store
        with store.cond:
            if what == "state":
                out = {"applications": store.apps, "repositories": store.repos, "projects": store.projects,
                       "config": store.config}
            elif what == "config" and self.command == "POST":
                store.config.update(body)
                out = store.config
            elif what == "faults" and self.command == "POST":
                store.faults.append(body)
                out = {"faults": store.faults}
            elif what == "requests":
                out = {"requests": store.requests}
            elif what == "violations":
                out = {"violations": store.violations}
            elif what.startswith("accounts/") and self.command == "POST":
                # argocd-secret admin.password / admin.passwordMtime (or accounts.<name>.password...)
                user = what[len("accounts/"):]
                mtime = body.get("passwordMtime")
                store.accounts[user] = {"hash": body.get("passwordHash") or "",
                                        "mtime": parse_rfc3339(mtime) if mtime else None}
                out = {"accounts": sorted(store.accounts)}
            elif what == "timeline":
                out = {"timeline": store.timeline}
            elif what.startswith("apps/") and self.command == "POST":
                name = what[len("apps/"):]
                app = store.apps[name]
                for key, value in body.items():
                    if value is None:
                        app.pop(key, None)
                    else:
                        app[key] = value
                store.touch_app(name)
                out = app
            else:
                return self.send_text(404, "unknown stand-in endpoint")
            data = json.dumps(out, default=str)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())


# ------------------------------------------------------------------ server
def make_self_signed(directory: Path, hosts: List[str]) -> Tuple[Path, Path]:
    cert_path, key_path = directory / "standin.crt", directory / "standin.key"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        import ipaddress
    except ImportError:
        import subprocess
        san = ",".join(("IP:%s" % h) if re.match(r"^[\d.]+$", h) else ("DNS:%s" % h) for h in hosts)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key_path), "-out", str(cert_path), "-days", "2",
                        "-subj", "/CN=argocd-standin", "-addext", "subjectAltName=" + san],
                       check=True, capture_output=True)
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "argocd-standin")])
    alt = [x509.IPAddress(ipaddress.ip_address(h)) if re.match(r"^[\d.]+$", h) else x509.DNSName(h) for h in hosts]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class ArgoCDStandIn:
    """Start/stop the stand-in in a thread: ``with ArgoCDStandIn() as s: s.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, base_path: str = "", tls: bool = False,
                 users: Optional[Dict[str, str]] = None, static_tokens: Optional[List[str]] = None,
                 config: Optional[Dict[str, Any]] = None, stream_max_seconds: float = 600.0) -> None:
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.store = Store(users or {"admin": "admin-password"}, static_tokens)
        self.store.config.update(config or {})
        self.controller = Controller(self.store)
        self.api = Api(self.store, self.controller)
        self.contract = Contract()
        self.stream_max_seconds = stream_max_seconds
        self.stopping = False
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.standin = self  # type: ignore[attr-defined]
        self.tls = tls
        self.cert_path: Optional[Path] = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        if tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="argocd-standin-")
            hosts = sorted({"127.0.0.1", "localhost", host if host != "0.0.0.0" else "127.0.0.1"})
            self.cert_path, key_path = make_self_signed(Path(self._tmp.name), hosts)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.cert_path), str(key_path))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host if host != "0.0.0.0" else "127.0.0.1"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="argocd-standin-http")

    @property
    def server_url(self) -> str:
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    @property
    def url(self) -> str:
        return self.server_url + self.base_path

    def start(self) -> "ArgoCDStandIn":
        self.controller.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        self.controller.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "ArgoCDStandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # conveniences for tests (in-process)
    def issue_token(self, user: str = "admin") -> str:
        token = "standin.%s" % secrets.token_urlsafe(24)
        with self.store.cond:
            self.store.tokens[token] = user
            self.store.token_issued[token] = int(time.time())
        return token

    def configure(self, **config: Any) -> None:
        with self.store.cond:
            self.store.config.update(config)
