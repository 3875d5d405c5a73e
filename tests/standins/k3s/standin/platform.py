"""Platform part of the K3S stand-in: the controllers a K3S server runs for the platform roles
(NOT K3S; never ships in roles/ or plugins/).

The controllers' own memory lives in <data-dir>/server/standin-platform.json; apiserver.py runs
project() every second in the `k3s server` process, which works out what K3S's controllers did
since the last pass, on K3S's own clock, and writes the objects into the Kubernetes API
(kubeapi.py), where a real kubectl reads them (tests/standins/FIDELITY.md cites each rule):

* the deploy controller scans server/manifests/*.yaml|*.yml|*.json (files starting with '.' and
  *.skip are ignored) once when the server starts, then every K3S_STANDIN_SCAN_INTERVAL seconds
  (default 15, as k3s pkg/deploy/controller.go): a file written between two scans has no objects
  until the next scan. A file is applied again only when its content changed; deleting a file
  deletes nothing; custom resources whose CRD is not installed yet are retried at the next scan;
* helm-controller: every HelmChart (plus the HelmChartConfig of the same name) gets a Job
  kube-system/helm-install-<name> (restartPolicy OnFailure, backoffLimit 1000 unless the chart
  sets spec.backOffLimit), recreated with a new uid whenever the chart or config spec changes.
  An attempt takes K3S_STANDIN_HELM_DELAY seconds (default 10). Each HelmChart and HelmChartConfig
  is validated against the helm-controller 0.17.7 CRD schema (a copy in platform_crds.py, checked
  against tests/schemas by a unit test), strictly: unknown fields are rejected. An invalid object,
  valuesContent that is not a YAML mapping, or a chart named in <data-dir>/server/standin-helm-fail
  (fault injection: one chart name a line, optionally "name: message") makes every attempt fail
  with a log naming the problem; the pod restarts in place with the kubelet's back-off (10 s,
  doubling, at most 300 s) and the Job turns Failed only past its backoffLimit, as upstream;
* a completed job "installs" the chart: its workloads, which roll out over
  K3S_STANDIN_ROLLOUT_DELAY seconds (default 10; `rollout status` and `get -o json` show the
  progress), CRDs, the StorageClass `longhorn`, Argo CD's argocd-server Service,
  argocd-cmd-params-cm and (only when no admin password hash is preset, as Argo CD does)
  argocd-initial-admin-secret;
* K3S's own add-ons: the traefik HelmChart and the local-path StorageClass (default class)
  unless disabled in /etc/rancher/k3s/config.yaml;
* ClusterIssuers are Ready once cert-manager is installed and the issuer applied: selfSigned at
  once, ca when a CA Certificate for its secret is issued by a Ready issuer, ACME never (Let's
  Encrypt is not reachable from the test machines).

kubectl itself is real (apiserver.run_kubectl): `wait` on a missing object, `rollout status`,
`logs` (current and --previous container) behave as kubectl does against these objects.
"""

import datetime
import fcntl
import hashlib
import json
import os
import re
import time
import uuid

try:  # a module of the stand-in package, or imported directly by the unit tests
    from . import platform_crds, platform_yaml
except ImportError:  # pragma: no cover
    import platform_crds  # type: ignore[no-redef]
    import platform_yaml  # type: ignore[no-redef]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Namespaces every K3S cluster has (kube-apiserver's system namespaces plus default).
SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
K3S_CRDS = ["addons.k3s.cattle.io", "helmchartconfigs.helm.cattle.io", "helmcharts.helm.cattle.io"]
CHART_CRDS = {
    "traefik": ["ingressroutes.traefik.io", "middlewares.traefik.io", "tlsoptions.traefik.io"],
    "cert-manager": ["certificaterequests.cert-manager.io", "certificates.cert-manager.io",
                     "challenges.acme.cert-manager.io", "clusterissuers.cert-manager.io",
                     "issuers.cert-manager.io", "orders.acme.cert-manager.io"],
    "longhorn": ["engines.longhorn.io", "nodes.longhorn.io", "replicas.longhorn.io", "settings.longhorn.io",
                 "volumes.longhorn.io"],
    "argocd": ["applications.argoproj.io", "applicationsets.argoproj.io", "appprojects.argoproj.io"],
}
# Custom resource kinds the deploy controller can apply once their CRD exists.
CR_KINDS = {"ClusterIssuer": "clusterissuers.cert-manager.io", "Issuer": "issuers.cert-manager.io",
            "Certificate": "certificates.cert-manager.io", "ServiceMonitor": "servicemonitors.monitoring.coreos.com"}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Upstream timings (FIDELITY.md cites them). The environment variables change them for a test that
# says why; nothing in the roles or the molecule scenarios sets them.
SCAN_INTERVAL = ("K3S_STANDIN_SCAN_INTERVAL", 15.0)
HELM_DELAY = ("K3S_STANDIN_HELM_DELAY", 10.0)
ROLLOUT_DELAY = ("K3S_STANDIN_ROLLOUT_DELAY", 10.0)
CRASHLOOP_BACKOFF = (10.0, 300.0)  # the kubelet's first and longest restart delay
DEFAULT_BACKOFF_LIMIT = 1000  # helm-controller's Job backoffLimit
FAULT_FILE = "standin-helm-fail"
CHART_LABEL = "helmcharts.helm.cattle.io/chart"


def knob(setting):
    name, default = setting
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError as exc:
        raise ControllerError("%s must be a number of seconds, got %r" % (name, value)) from exc


class ControllerError(Exception):
    """A setting the stand-in's controllers cannot use."""


# --------------------------------------------------------------------------- schema


def schema_errors(value, schema, path="", root=True):
    """Structural-schema errors of `value` (unknown fields rejected), as 'path: problem' strings."""
    if value is None:
        return [] if schema.get("nullable") or not schema.get("type") else ["%s: must not be null" % (path or ".")]
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return [] if ok else ["%s: must be an integer or a string" % path]
    if "anyOf" in schema and not any(not schema_errors(value, sub, path, False) for sub in schema["anyOf"]):
        return ["%s: matches none of the allowed forms" % path]
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in checks and not isinstance(value, checks[kind]):
        return ["%s: must be of type %s" % (path or ".", kind)]
    if kind in ("integer", "number") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or (kind == "integer" and isinstance(value, float))):
        return ["%s: must be of type %s" % (path, kind)]
    if "enum" in schema and value not in schema["enum"]:
        return ["%s: unsupported value %r (allowed: %s)" % (path, value, ", ".join(map(str, schema["enum"])))]
    errors = []
    if kind == "array":
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), "%s[%d]" % (path, index), False)
    if kind == "object":
        errors += _object_errors(value, schema, path, root)
    return errors


def _object_errors(value, schema, path, root):
    errors = ["%s.%s: Required value" % (path, key) for key in schema.get("required", []) if key not in value]
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        sub = "%s.%s" % (path, key)
        if root and key == "metadata":
            continue
        if props is not None and key in props:
            errors += schema_errors(item, props[key], sub, False)
        elif isinstance(extra, dict):
            errors += schema_errors(item, extra, sub, False)
        elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields") and extra is not True:
            errors.append('%s: unknown field "%s"' % (sub, key))
    return errors


def helm_object_errors(doc):
    """Problems of a HelmChart/HelmChartConfig as the API server and helm would see them."""
    schema = platform_crds.SCHEMAS.get("%s %s" % (doc.get("apiVersion"), doc.get("kind")))
    if schema is None:
        return ['no matches for kind "%s" in version "%s"' % (doc.get("kind"), doc.get("apiVersion"))]
    errors = schema_errors(doc, schema)
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not DNS1123.match(name):
        errors.append("metadata.name: Invalid value %r: must be a lowercase RFC 1123 name" % (name,))
    values = (doc.get("spec") or {}).get("valuesContent")
    if isinstance(values, str) and values.strip():
        try:
            parsed = platform_yaml.load_documents(values)
        except platform_yaml.YamlError as exc:
            errors.append("spec.valuesContent: failed to parse values: %s" % exc)
        else:
            if len(parsed) != 1 or not isinstance(parsed[0], dict):
                errors.append("spec.valuesContent: values are not a YAML mapping")
    return errors


def chart_values(doc):
    """valuesContent of a valid HelmChart/HelmChartConfig as a dict ({} when absent or invalid)."""
    try:
        parsed = platform_yaml.load_documents((doc.get("spec") or {}).get("valuesContent") or "")
    except platform_yaml.YamlError:
        return {}
    return parsed[0] if parsed and isinstance(parsed[0], dict) else {}


def merge(base, over):
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


# --------------------------------------------------------------------------- state


class Platform:
    """The stand-in's cluster objects on the first server (JSON file + flock)."""

    def __init__(self, data_dir, config_path, now=time.time):
        self.data_dir = data_dir
        self.config_path = config_path
        self.now = now
        self.path = os.path.join(data_dir, "server", "standin-platform.json")
        self.state = {}
        self._raw = None
        self._lock = None

    # -- persistence
    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lock = open(self.path + ".lock", "a")  # pylint: disable=consider-using-with
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            with open(self.path, encoding="utf-8") as handle:
                self._raw = handle.read()
            self.state = json.loads(self._raw)
        except (OSError, ValueError):
            self.state, self._raw = {}, None
        return self

    def __exit__(self, *exc):
        raw = json.dumps(self.state, sort_keys=True, separators=(",", ":"))
        if raw != self._raw:  # the controllers run every second: write only what changed
            tmp = self.path + ".tmp"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
                handle.write(raw)
            os.replace(tmp, self.path)
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def table(self, name):
        return self.state.setdefault(name, {})

    def new_uid(self):
        return str(uuid.uuid4())

    # -- K3S config
    def disabled(self):
        try:
            with open(self.config_path, encoding="utf-8") as handle:
                docs = platform_yaml.load_documents(handle.read())
        except (OSError, platform_yaml.YamlError):
            return set()
        value = (docs[0] if docs and isinstance(docs[0], dict) else {}).get("disable") or []
        items = value.split(",") if isinstance(value, str) else value
        return {str(item).strip() for item in items}

    # -- reconcile
    def reconcile(self):
        """Catch up with what K3S's controllers did between the last call and now."""
        now = self.now()
        if not self.state.get("bootstrapped"):
            self._bootstrap()
        interval = knob(SCAN_INTERVAL)
        last = self.state.get("scanned_at")
        if last is None or interval <= 0:
            scans = [now]  # K3S scans the folder once when it starts (force)
        else:
            count = int(max(0.0, now - last) // interval) if interval > 0 else 0
            first = max(1, count - 20)  # older scans saw the same files; keep the run short
            scans = [last + k * interval for k in range(first, count + 1)]
        for at in scans:
            self._run_helm_controller(at)  # jobs that finished before this scan (CRDs for pending files)
            self._deploy_manifests()
            self._run_helm_controller(at)  # HelmCharts this scan applied get their job now
            self.state["scanned_at"] = at
        self._run_helm_controller(now)

    def _bootstrap(self):
        disabled = self.disabled()
        crds = self.table("crds")
        for name in K3S_CRDS:
            crds[name] = {"uid": self.new_uid()}
        if "local-storage" not in disabled:
            self.table("storageclasses")["local-path"] = {
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete"}
        if "traefik" not in disabled:
            self.table("objects")["HelmChart/kube-system/traefik"] = {
                "apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
                "metadata": {"name": "traefik", "namespace": "kube-system"},
                "spec": {"chart": "https://%KUBERNETES_API%/static/charts/traefik.tgz",
                         "targetNamespace": "kube-system"}}
        self.state["bootstrapped"] = True

    def _manifest_files(self):
        folder = os.path.join(self.data_dir, "server", "manifests")
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return []
        return [os.path.join(folder, n) for n in names
                if n.endswith(MANIFEST_SUFFIXES) and not n.startswith(".") and not n.endswith(".skip")]

    def _deploy_manifests(self):
        applied = self.table("applied")
        for path in self._manifest_files():
            try:
                with open(path, "rb") as handle:
                    raw = handle.read()
            except OSError:
                continue
            digest = hashlib.sha256(raw).hexdigest()
            entry = applied.get(path, {})
            if entry.get("sha256") == digest and not entry.get("pending"):
                continue
            entry = {"sha256": digest, "pending": [], "error": ""}
            try:
                docs = platform_yaml.load_documents(raw.decode("utf-8"))
            except (UnicodeDecodeError, platform_yaml.YamlError) as exc:
                entry["error"] = "failed to parse %s: %s" % (os.path.basename(path), exc)
                applied[path] = entry
                continue
            for doc in docs:
                if not self._apply(doc):
                    entry["pending"].append(doc.get("kind"))
            applied[path] = entry

    def _apply(self, doc):
        """Apply one object; False when its kind is not known yet (retried at the next reconcile)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
            return True
        kind, meta = doc.get("kind"), doc["metadata"]
        if kind in CR_KINDS and CR_KINDS[kind] not in self.table("crds"):
            return False
        if kind == "StorageClass":
            self.table("storageclasses")[meta.get("name")] = {
                "annotations": dict(meta.get("annotations") or {}), "provisioner": doc.get("provisioner"),
                "reclaimPolicy": doc.get("reclaimPolicy", "Delete")}
            return True
        namespace = meta.get("namespace", "default") if kind not in ("ClusterIssuer",) else ""
        self.table("objects")["%s/%s/%s" % (kind, namespace, meta.get("name"))] = doc
        return True

    def _charts(self):
        objects = self.table("objects")
        for key, doc in sorted(objects.items()):
            if key.startswith("HelmChart/"):
                config = objects.get("HelmChartConfig/%s/%s" % (doc["metadata"].get("namespace", "default"),
                                                                doc["metadata"]["name"]))
                yield doc, config

    def _faults(self):
        """Charts named in the fault-injection file: name -> message."""
        try:
            with open(os.path.join(self.data_dir, "server", FAULT_FILE), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return {}
        faults = {}
        for line in lines:
            name, _sep, message = line.partition(":")
            if name.strip() and not name.startswith("#"):
                faults[name.strip()] = message.strip() or "injected failure (%s)" % FAULT_FILE
        return faults

    def _run_helm_controller(self, at):
        jobs = self.table("jobs")
        for chart, config in self._charts():
            meta = chart["metadata"]
            key = "%s/helm-install-%s" % (meta.get("namespace", "default"), meta["name"])
            digest = hashlib.sha256(json.dumps([chart.get("spec"), (config or {}).get("spec")],
                                               sort_keys=True).encode()).hexdigest()
            job = jobs.get(key)
            if job is None or job["hash"] != digest:
                errors = helm_object_errors(chart) + (helm_object_errors(config) if config else [])
                fault = self._faults().get(meta["name"])
                if fault:
                    errors.append(fault)
                limit = (chart.get("spec") or {}).get("backOffLimit")
                jobs[key] = job = {
                    "uid": self.new_uid(), "hash": digest, "created": at, "duration": knob(HELM_DELAY),
                    "errors": errors, "installed": False, "chart": meta["name"],
                    "backoff_limit": limit if isinstance(limit, int) and not isinstance(limit, bool)
                    else DEFAULT_BACKOFF_LIMIT, "pod": "%s-%s" % (key.split("/", 1)[1], job_suffix(digest)),
                    "log": ["helm-install: chart %s (stand-in helm-controller)" % meta["name"]]}
                if errors:
                    job["log"] += ["Error: %s" % err for err in errors]
                    job["log"].append("Error: INSTALLATION FAILED: the HelmChart %s is not valid" % meta["name"]
                                      if not fault else "Error: INSTALLATION FAILED: %s" % fault)
            done_at = job["created"] + job["duration"]
            if at >= done_at and not job["installed"] and not job["errors"]:
                job["installed"] = True
                self._install(chart, config, done_at)
                job["log"].append("helm-install: release %s deployed" % meta["name"])

    # -- what a chart leaves in the cluster
    def _install(self, chart, config, at):
        spec = chart.get("spec") or {}
        values = merge(chart_values(chart), chart_values(config) if config else {})
        name = chart["metadata"]["name"]
        namespace = spec.get("targetNamespace") or chart["metadata"].get("namespace", "default")
        ident = chart_identity(chart)
        first = name not in self.table("releases")
        self.table("releases")[name] = {"chart": ident, "namespace": namespace}
        for crd in CHART_CRDS.get(ident, []):
            if ident != "cert-manager" or (values.get("crds") or {}).get("enabled") or values.get("installCRDs"):
                self.table("crds").setdefault(crd, {"uid": self.new_uid()})
        workloads = self.table("workloads")
        for kind, wname in chart_workloads(ident, name, namespace, values):
            key = "%s/%s/%s" % (kind, namespace, wname)
            # helm upgrade changes the pod template: a new generation rolls out again.
            generation = workloads.get(key, {}).get("generation", 0) + 1
            workloads[key] = {"release": name, "generation": generation, "ready_at": at + knob(ROLLOUT_DELAY)}
        if ident == "longhorn":
            persistence = values.get("persistence") or {}
            self.table("storageclasses")["longhorn"] = {
                "annotations": {"storageclass.kubernetes.io/is-default-class":
                                str(persistence.get("defaultClass", True)).lower()},
                "provisioner": "driver.longhorn.io", "reclaimPolicy": persistence.get("reclaimPolicy", "Delete")}
        if ident == "argocd":
            self._install_argocd(name, namespace, values, first)

    def _install_argocd(self, release, namespace, values, first):
        prefix = argocd_prefix(release, values)
        services = self.table("services")
        key = "%s/%s-server" % (namespace, prefix)
        if key not in services:
            seq = len(services) + 10
            services[key] = {"clusterIP": "10.43.%d.%d" % (seq // 250, seq % 250 + 2), "ports": [80, 443]}
        params = ((values.get("configs") or {}).get("params") or {})
        insecure = params.get("server.insecure", False)
        self.table("configmaps")["%s/argocd-cmd-params-cm" % namespace] = {
            "server.insecure": str(insecure).lower()}
        preset = ((values.get("configs") or {}).get("secret") or {}).get("argocdServerAdminPassword")
        if first and not preset:
            self.table("secrets")["%s/argocd-initial-admin-secret" % namespace] = {
                "type": "Opaque", "data": {"password": "c3RhbmQtaW4tcGFzc3dvcmQ="}}

    # -- readers
    def job(self, namespace, name):
        return self.table("jobs").get("%s/%s" % (namespace, name))

    def clusterissuer_ready(self, name):
        """(ready, reason) of a ClusterIssuer."""
        objects = self.table("objects")
        doc = objects.get("ClusterIssuer//%s" % name)
        if doc is None:
            return None
        if "cert-manager" not in [r["chart"] for r in self.table("releases").values()]:
            return False, "cert-manager is not running"
        spec = doc.get("spec") or {}
        if "selfSigned" in spec:
            return True, "selfSigned issuer"
        if "acme" in spec:
            return False, "Failed to register ACME account: %s unreachable (stand-in: no internet)" % (
                spec["acme"].get("server", "ACME server"))
        if "ca" in spec:
            secret = (spec.get("ca") or {}).get("secretName")
            for key, cert in objects.items():
                cspec = cert.get("spec") or {}
                if key.startswith("Certificate/") and cspec.get("secretName") == secret and cspec.get("isCA"):
                    issuer = (cspec.get("issuerRef") or {}).get("name")
                    if issuer != name and (self.clusterissuer_ready(issuer) or (False,))[0]:
                        return True, "signing CA verified"
            return False, "secret %s not found (no CA Certificate issued)" % secret
        return False, "unsupported issuer type"


def chart_identity(chart):
    spec = chart.get("spec") or {}
    name = str(spec.get("chart") or chart["metadata"]["name"])
    name = name.rsplit("/", 1)[-1]
    name = re.sub(r"(-[0-9][0-9.]*)?\.tgz$", "", name)
    return {"argo-cd": "argocd"}.get(name, name)


def argocd_prefix(release, values):
    override = values.get("fullnameOverride")
    if override:
        return str(override)
    return release if "argo-cd" in release else "%s-argo-cd" % release


def chart_workloads(ident, release, namespace, values):
    del namespace
    if ident == "traefik":
        return [("deployment", "traefik")]
    if ident == "ingress-nginx":
        return [("deployment", "ingress-nginx-controller")]
    if ident == "cert-manager":
        return [("deployment", n) for n in ("cert-manager", "cert-manager-webhook", "cert-manager-cainjector")]
    if ident == "longhorn":
        return [("daemonset", "longhorn-manager"), ("deployment", "longhorn-driver-deployer"),
                ("deployment", "longhorn-ui")]
    if ident == "argocd":
        prefix = argocd_prefix(release, values)
        suffixes = ("-server", "-repo-server", "-redis", "-applicationset-controller")
        return [("deployment", prefix + s) for s in suffixes] + [("statefulset", prefix + "-application-controller")]
    return []


def job_suffix(digest):
    """The 5 random-looking characters of a Job's pod name (stable per job here)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[int(digest[i:i + 2], 16) % len(alphabet)] for i in range(0, 10, 2))


def job_view(job, now):
    """What the Job and its pod look like at `now`: dict with phase ('running', 'complete',
    'failed'), restarts, pod_state ('running', 'crashloop', 'succeeded', None when the pod is
    gone), last_exit (exit code of the previous attempt, or None) and since (start of this phase).

    A pod of helm-controller's Job restarts in place (restartPolicy OnFailure) after each failed
    attempt, with the kubelet's back-off; the Job turns Failed when the restarts pass its
    backoffLimit (the job controller then deletes the pod)."""
    start, duration = job["created"], job["duration"]
    if not job["errors"]:
        if now >= start + duration:
            return {"phase": "complete", "restarts": 0, "pod_state": "succeeded", "last_exit": None,
                    "since": start + duration}
        return {"phase": "running", "restarts": 0, "pod_state": "running", "last_exit": None, "since": start}
    attempt, begin = 0, start
    while True:
        end = begin + duration
        if now < end:
            return {"phase": "running", "restarts": attempt, "pod_state": "running",
                    "last_exit": 1 if attempt else None, "since": start}
        restart = end + min(CRASHLOOP_BACKOFF[0] * 2 ** attempt, CRASHLOOP_BACKOFF[1])
        if now < restart:
            return {"phase": "running", "restarts": attempt, "pod_state": "crashloop", "last_exit": 1,
                    "since": start}
        # The job controller fails the Job once the restarts reach backoffLimit (> 0 when it is 0).
        if attempt + 1 >= max(job["backoff_limit"], 1):
            return {"phase": "failed", "restarts": attempt + 1, "pod_state": None, "last_exit": 1, "since": restart}
        attempt, begin = attempt + 1, restart


def job_object(namespace, name, job, now):
    view = job_view(job, now)
    status = {"startTime": stamp(job["created"])}
    if view["phase"] == "complete":
        status.update(succeeded=1, completionTime=stamp(view["since"]), conditions=[
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached"}])
    elif view["phase"] == "failed":
        status.update(failed=1, conditions=[
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}])
    else:
        status.update(active=1, ready=1 if view["pod_state"] == "running" else 0, uncountedTerminatedPods={})
    labels = {CHART_LABEL: job.get("chart", name[len("helm-install-"):])}
    return {"apiVersion": "batch/v1", "kind": "Job", "status": status,
            "metadata": {"name": name, "namespace": namespace, "uid": job["uid"], "labels": labels,
                         "creationTimestamp": stamp(job["created"])},
            "spec": {"backoffLimit": job.get("backoff_limit", DEFAULT_BACKOFF_LIMIT), "template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "helm"}]}}}}


def pod_object(namespace, name, job, now):
    """The helm-install Job's pod, or None when the job controller removed it."""
    view = job_view(job, now)
    if view["pod_state"] is None:
        return None
    container = dict(image_status(HELM_IMAGE), name="helm", restartCount=view["restarts"],
                     ready=view["pod_state"] == "running")
    if view["pod_state"] == "running":
        container["state"] = {"running": {"startedAt": stamp(view["since"])}}  # not now: no rewrite every pass
    elif view["pod_state"] == "crashloop":
        container["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off restarting failed container helm"}}
    else:
        container["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    if view["last_exit"]:
        container["lastState"] = {"terminated": {"exitCode": view["last_exit"], "reason": "Error"}}
    phase = {"running": "Running", "crashloop": "Running", "succeeded": "Succeeded"}[view["pod_state"]]
    labels = {CHART_LABEL: job.get("chart", name[len("helm-install-"):]), "job-name": name,
              "batch.kubernetes.io/job-name": name, "controller-uid": job["uid"],
              "batch.kubernetes.io/controller-uid": job["uid"]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": job.get("pod", name + "-x"), "namespace": namespace, "labels": labels,
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                              "uid": job["uid"], "controller": True}]},
            "status": {"phase": phase, "containerStatuses": [container]}}


def workload_object(kind, namespace, name, entry, now):
    """A Deployment/DaemonSet/StatefulSet with one replica, rolled out once ready_at has passed."""
    ready = 1 if now >= entry.get("ready_at", 0) else 0
    generation = entry.get("generation", 1)
    meta = {"name": name, "namespace": namespace, "generation": generation,
            "labels": {"app.kubernetes.io/instance": entry.get("release", "")}}
    if kind == "deployment":
        spec = {"replicas": 1, "strategy": {"type": "RollingUpdate"}}
        status = {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": ready,
                  "availableReplicas": ready, "unavailableReplicas": 1 - ready}
    elif kind == "daemonset":
        spec = {"updateStrategy": {"type": "RollingUpdate"}}
        status = {"observedGeneration": generation, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                  "updatedNumberScheduled": 1, "numberReady": ready, "numberAvailable": ready}
    else:
        revision = "%s-%d" % (name, generation)
        spec = {"replicas": 1, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}
        status = {"observedGeneration": generation, "replicas": 1, "readyReplicas": ready, "currentReplicas": 1,
                  "updatedReplicas": 1, "availableReplicas": ready, "currentRevision": revision,
                  "updateRevision": revision}
    for key in [k for k, v in status.items() if v == 0 and k != "observedGeneration"]:
        del status[key]  # zero counts are omitted in the API's JSON (omitempty)
    return {"apiVersion": "apps/v1", "kind": {"deployment": "Deployment", "daemonset": "DaemonSet",
                                              "statefulset": "StatefulSet"}[kind],
            "metadata": meta, "spec": spec, "status": status}


def stamp(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def namespaces(platform):
    """The system namespaces, the target namespaces of installed releases (helm-controller's
    createNamespace) and the namespaces of every object the stand-in holds."""
    found = set(SYSTEM_NAMESPACES)
    found.update(release["namespace"] for release in platform.table("releases").values())
    for table in ("secrets", "configmaps", "services", "jobs"):
        found.update(key.split("/", 1)[0] for key in platform.table(table))
    found.update(key.split("/")[1] for key in platform.table("workloads"))
    found.update(key.split("/")[1] for key in platform.table("objects") if key.split("/")[1])
    return found


def to_object(platform, kind, namespace, name):
    """The Kubernetes object kubectl would return, or None when it does not exist."""
    if kind == "namespace":
        return None if name not in namespaces(platform) else {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}
    if kind == "job":
        job = platform.job(namespace, name)
        return None if job is None else job_object(namespace, name, job, platform.now())
    if kind == "pod":
        for key, job in platform.table("jobs").items():
            if key.startswith(namespace + "/") and job.get("pod") == name:
                return pod_object(namespace, key.split("/", 1)[1], job, platform.now())
        return None
    if kind == "storageclass":
        entry = platform.table("storageclasses").get(name)
        return None if entry is None else {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": dict(entry["annotations"])},
            "provisioner": entry["provisioner"], "reclaimPolicy": entry["reclaimPolicy"]}
    if kind == "crd":
        entry = platform.table("crds").get(name)
        return None if entry is None else {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                                           "metadata": {"name": name, "uid": entry["uid"]}}
    if kind in ("secret", "configmap", "service"):
        entry = platform.table(kind + "s").get("%s/%s" % (namespace, name))
        if entry is None:
            return None
        meta = {"name": name, "namespace": namespace}
        if kind == "secret":
            return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": entry["type"], "data": entry["data"]}
        if kind == "configmap":
            return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(entry)}
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {
            "type": "ClusterIP", "clusterIP": entry["clusterIP"],
            "ports": [{"port": p, "protocol": "TCP"} for p in entry["ports"]]}}
    if kind == "clusterissuer":
        ready = platform.clusterissuer_ready(name)
        if ready is None:
            return None
        doc = dict(platform.table("objects")["ClusterIssuer//%s" % name])
        doc["status"] = {"conditions": [{"type": "Ready", "status": "True" if ready[0] else "False",
                                         "message": ready[1]}]}
        return doc
    if kind == "helmchart":
        doc = platform.table("objects").get("HelmChart/%s/%s" % (namespace, name))
        return None if doc is None else dict(doc, status={"jobName": "helm-install-" + name})
    if kind in ("deployment", "daemonset", "statefulset"):
        entry = platform.table("workloads").get("%s/%s/%s" % (kind, namespace, name))
        return None if entry is None else workload_object(kind, namespace, name, entry, platform.now())
    return None


# --------------------------------------------------------------------------- the API server's view
#
# apiserver.py runs project() every second in the `k3s server` process: the controllers' state above
# is written into the Kubernetes API (kubeapi.Store), where a real kubectl reads it. A controller
# writes an object when what it wants changes (as wrangler's apply and the job/deployment
# controllers do), not on every pass, so that clients' own changes (kubectl annotate, delete) stay.

# The CRDs the stand-in installs: name -> (kind, scope, version, status subresource). Group and plural
# come from the name. Versions and scopes of the pinned CRDs (/work/shared/reference/crds and the
# charts' CRDs): helm-controller v0.17.7, cert-manager v1.21.1, Longhorn v1.12.1, argo-cd 10.1.1,
# traefik's chart; addons from k3s-io/k3s pkg/crd.
CRD_TYPES = {
    "addons.k3s.cattle.io": ("Addon", "Namespaced", "v1", False),
    "helmcharts.helm.cattle.io": ("HelmChart", "Namespaced", "v1", True),
    "helmchartconfigs.helm.cattle.io": ("HelmChartConfig", "Namespaced", "v1", False),
    "ingressroutes.traefik.io": ("IngressRoute", "Namespaced", "v1alpha1", False),
    "middlewares.traefik.io": ("Middleware", "Namespaced", "v1alpha1", False),
    "tlsoptions.traefik.io": ("TLSOption", "Namespaced", "v1alpha1", False),
    "certificaterequests.cert-manager.io": ("CertificateRequest", "Namespaced", "v1", True),
    "certificates.cert-manager.io": ("Certificate", "Namespaced", "v1", True),
    "challenges.acme.cert-manager.io": ("Challenge", "Namespaced", "v1", True),
    "clusterissuers.cert-manager.io": ("ClusterIssuer", "Cluster", "v1", True),
    "issuers.cert-manager.io": ("Issuer", "Namespaced", "v1", True),
    "orders.acme.cert-manager.io": ("Order", "Namespaced", "v1", True),
    "engines.longhorn.io": ("Engine", "Namespaced", "v1beta2", True),
    "nodes.longhorn.io": ("Node", "Namespaced", "v1beta2", True),
    "replicas.longhorn.io": ("Replica", "Namespaced", "v1beta2", True),
    "settings.longhorn.io": ("Setting", "Namespaced", "v1beta2", True),
    "volumes.longhorn.io": ("Volume", "Namespaced", "v1beta2", True),
    "applications.argoproj.io": ("Application", "Namespaced", "v1alpha1", False),
    "applicationsets.argoproj.io": ("ApplicationSet", "Namespaced", "v1alpha1", True),
    "appprojects.argoproj.io": ("AppProject", "Namespaced", "v1alpha1", False),
    "servicemonitors.monitoring.coreos.com": ("ServiceMonitor", "Namespaced", "v1", False),
}
HELM_IMAGE = "rancher/klipper-helm:v0.9.4-build20250113"  # helm-controller 0.17's default job image


def image_status(image: str) -> dict:
    """A container status's image and imageID, strings the kubelet always sets
    (pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses; typed clients require them):
    the image as resolved by containerd and a digest reference. The digest is a hash of the image
    name, not the registry's manifest digest: nothing pulls images here."""
    ref = image if "/" in image.split(":")[0] and "." in image.split("/")[0] else "docker.io/" + image
    if ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    digest = hashlib.sha256(ref.encode()).hexdigest()
    return {"image": ref, "imageID": "%s@sha256:%s" % (ref.rsplit(":", 1)[0], digest)}


def crd_object(name):
    kind, scope, version, status = CRD_TYPES[name]
    plural, group = name.split(".", 1)
    entry = {"name": version, "served": True, "storage": True,
             "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    if status:
        entry["subresources"] = {"status": {}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
            "spec": {"group": group, "scope": scope, "versions": [entry],
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List"}}}


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


class Projector:
    """Writes the controllers' objects into the API store when what they want changes."""

    def __init__(self, platform, store):
        self.platform = platform
        self.store = store
        self.written = platform.table("projected")  # key -> {main, status, uid, log}
        self.seen = set()

    def rt_for(self, api_version, kind):
        group, _sep, version = api_version.rpartition("/")
        for rt in self.store.type_list():
            if (rt.group, rt.version, rt.kind) == (group, version, kind):
                return rt
        return None

    def current(self, rt, namespace, name):
        from .kubeapi import ApiError  # pylint: disable=import-outside-toplevel
        try:
            return self.store.get(rt, namespace, name)
        except ApiError:
            return None

    def put(self, obj, status=None, uid=None, log=None):
        """Create or update obj (and its status); returns the stored object or None."""
        rt = self.rt_for(obj["apiVersion"], obj["kind"])
        if rt is None:
            return None  # its CRD is not there yet
        meta = obj["metadata"]
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        key = "%s/%s/%s/%s" % (rt.group, rt.plural, namespace, meta["name"])
        self.seen.add(key)
        rec = self.written.get(key)
        main = _digest(obj)
        unchanged = rec is not None and rec.get("main") == main and (uid is None or rec.get("uid") == uid) \
            and (status is None or not rt.status or rec.get("status_in") == _digest(status)) \
            and (log is None or rec.get("log") == _digest(log))
        if unchanged:  # nothing to write: no copy of the stored object (this runs every second)
            return self.store.objects.get(self.store.key(rt, namespace, meta["name"]))
        existing = self.current(rt, namespace, meta["name"])
        if rec is not None and uid is not None and rec.get("uid") != uid and existing is not None:
            self._delete(rt, namespace, meta["name"])  # a new object of the same name (recreated Job)
            existing, rec = None, None
        if rec is None or rec.get("main") != main:
            body = json.loads(json.dumps(obj))
            if existing is None:
                existing = self.store.create(rt, namespace, body)
            else:
                body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                existing = self.store.update(rt, namespace, meta["name"], body)
            rec = {"main": main, "uid": uid}
            self.written[key] = rec
        elif existing is None:
            return None  # a client deleted it: controllers here do not recreate
        if status is not None and rt.status:
            rec["status_in"] = _digest(status)
            if "observedGeneration" in status:  # the workload controllers observe the stored generation
                status = dict(status, observedGeneration=existing["metadata"].get("generation", 1))
            wanted = _digest(status)
            if rec.get("status") != wanted:
                body = dict(existing, status=status)
                existing = self.store.update(rt, namespace, meta["name"], body, "status")
                rec["status"] = wanted
        if log is not None and rec.get("log") != _digest(log):
            current, previous = log
            self.store.set_log(namespace, meta["name"], "helm", current)
            self.store.set_log(namespace, meta["name"], "helm", previous, previous=True)
            rec["log"] = _digest(log)
        return existing

    def _delete(self, rt, namespace, name):
        from .kubeapi import ApiError  # pylint: disable=import-outside-toplevel
        try:
            self.store.delete(rt, namespace, name, {"propagationPolicy": "Background"})
        except ApiError:
            pass

    def prune(self):
        """Objects a controller wrote and no longer wants (a job's pod after it failed, old pods)."""
        for key in [k for k in self.written if k not in self.seen]:
            group, plural, namespace, name = key.split("/", 3)
            if plural in ("pods", "jobs"):
                for rt in self.store.type_list():
                    if (rt.group, rt.plural) == (group, plural):
                        self._delete(rt, namespace, name)
                        break
            del self.written[key]


def project(store, data_dir, config_path, now=time.time):
    """One pass: run the controllers (Platform.reconcile), then write what they want into `store`."""
    with Platform(data_dir, config_path, now=now) as platform:
        platform.reconcile()
        at = platform.now()
        out = Projector(platform, store)
        for name in sorted(namespaces(platform)):
            out.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for name in sorted(platform.table("crds")):
            if name in CRD_TYPES:
                out.put(crd_object(name))
        for name in sorted(platform.table("storageclasses")):
            out.put(to_object(platform, "storageclass", "", name))
        for key in sorted(platform.table("secrets")):
            namespace, name = key.split("/", 1)
            out.put(to_object(platform, "secret", namespace, name))
        for key in sorted(platform.table("configmaps")):
            namespace, name = key.split("/", 1)
            out.put(to_object(platform, "configmap", namespace, name))
        for key in sorted(platform.table("services")):
            namespace, name = key.split("/", 1)
            service = to_object(platform, "service", namespace, name)
            service["spec"]["clusterIPs"] = [service["spec"]["clusterIP"]]
            service["spec"]["ports"] = [dict(p, name="http" if p["port"] == 80 else "https", targetPort=8080)
                                        for p in service["spec"]["ports"]]
            out.put(service)
        for key, doc in sorted(platform.table("objects").items()):
            kind, namespace, name = key.split("/", 2)
            body = json.loads(json.dumps(doc))
            status = body.pop("status", None)
            if kind == "HelmChart":
                status = {"jobName": "helm-install-" + name}
            elif kind == "ClusterIssuer":
                ready, message = platform.clusterissuer_ready(name)
                status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                          "reason": "KeyPairVerified" if ready else "ErrRegisterACMEAccount",
                                          "message": message, "observedGeneration": 1}]}
            if namespace:
                body["metadata"]["namespace"] = namespace
            out.put(body, status=status)
        _project_jobs(platform, out, at)
        for key, entry in sorted(platform.table("workloads").items()):
            kind, namespace, name = key.split("/", 2)
            obj = workload_object(kind, namespace, name, entry, at)
            labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": entry.get("release", "")}
            template = {"metadata": {"labels": labels, "annotations": {
                "checksum/release": str(entry.get("generation", 1))}},  # helm upgrade changes the template
                "spec": {"containers": [{"name": name.rsplit("-", 1)[-1], "image": "standin/%s" % name}]}}
            obj["spec"].update(selector={"matchLabels": labels}, template=template)
            if kind == "statefulset":
                obj["spec"]["serviceName"] = name
            status = obj.pop("status")
            obj["metadata"].pop("generation", None)
            out.put(obj, status=status)
        out.prune()


def _project_jobs(platform, out, at):
    for key, job in sorted(platform.table("jobs").items()):
        namespace, name = key.split("/", 1)
        obj = job_object(namespace, name, job, at)
        status = obj.pop("status")
        obj["metadata"] = {"name": name, "namespace": namespace, "labels": obj["metadata"]["labels"]}
        obj["spec"]["template"]["metadata"] = {"labels": dict(obj["metadata"]["labels"])}
        obj["spec"]["template"]["spec"]["containers"] = [{"name": "helm", "image": HELM_IMAGE}]
        stored = out.put(obj, status=status, uid=job["uid"])
        pod = pod_object(namespace, name, job, at)
        if stored is None or pod is None:
            continue
        uid = stored["metadata"]["uid"]
        pod["metadata"]["labels"].update({"controller-uid": uid, "batch.kubernetes.io/controller-uid": uid})
        pod["metadata"]["ownerReferences"][0]["uid"] = uid
        pod["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = True
        pod["spec"] = {"restartPolicy": "OnFailure", "containers": [{"name": "helm", "image": HELM_IMAGE}]}
        pod_status = pod.pop("status")
        for container in pod_status.get("containerStatuses", []):
            container.setdefault("image", HELM_IMAGE)
            container.setdefault("imageID", "")
            container.setdefault("started", container.get("ready", False))
        # The running attempt's log, or the last one's while the pod waits in CrashLoopBackOff; the
        # previous container's: the last failed attempt (the kubelet keeps one terminated container).
        view = job_view(job, at)
        lines = job["log"][:1] if view["pod_state"] == "running" else job["log"]
        previous = "".join(line + "\n" for line in job["log"]) if view["last_exit"] else None
        out.put(pod, status=pod_status, uid=job["uid"], log=("".join(line + "\n" for line in lines), previous))
