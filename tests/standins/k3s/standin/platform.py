"""Platform part of the K3S stand-in: a minimal helm-controller and the `k3s kubectl` calls
the platform roles make (NOT K3S; never ships in roles/ or plugins/).

State lives on the first server in <data-dir>/server/standin-platform.json. At every kubectl call
the stand-in works out what K3S's controllers would have done since the last call, on K3S's own
clock (tests/standins/FIDELITY.md, "manifests, helm-controller and workloads", cites each rule):

* the deploy controller scans server/manifests/*.yaml|*.yml|*.json (files starting with '.' and
  *.skip are ignored) once at the first call and then every K3S_STANDIN_SCAN_INTERVAL seconds
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

kubectl: `wait` on a named object that does not exist fails at once with NotFound, and waits for
its condition until --timeout otherwise (a Failed job never meets condition=complete); `rollout
status` waits until the workload is rolled out or --timeout (default: no timeout, as kubectl).
Unknown kubectl calls exit 1 with "the K3S stand-in does not implement ...".
"""

import datetime
import fcntl
import hashlib
import json
import os
import re
import sys
import time
import uuid

try:  # a module of the stand-in package, or imported directly by the unit tests
    from . import platform_crds, platform_yaml
except ImportError:  # pragma: no cover
    import platform_crds  # type: ignore[no-redef]
    import platform_yaml  # type: ignore[no-redef]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KIND_ALIASES = {
    "job": "job", "jobs": "job", "job.batch": "job", "jobs.batch": "job",
    "storageclass": "storageclass", "storageclasses": "storageclass", "sc": "storageclass",
    "storageclass.storage.k8s.io": "storageclass", "storageclasses.storage.k8s.io": "storageclass",
    "crd": "crd", "crds": "crd", "customresourcedefinition": "crd", "customresourcedefinitions": "crd",
    "customresourcedefinitions.apiextensions.k8s.io": "crd",
    "secret": "secret", "secrets": "secret",
    "service": "service", "services": "service", "svc": "service",
    "configmap": "configmap", "configmaps": "configmap", "cm": "configmap",
    "clusterissuer": "clusterissuer", "clusterissuers": "clusterissuer",
    "clusterissuer.cert-manager.io": "clusterissuer", "clusterissuers.cert-manager.io": "clusterissuer",
    "helmchart": "helmchart", "helmcharts": "helmchart", "helmcharts.helm.cattle.io": "helmchart",
    "deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
    "daemonset": "daemonset", "daemonsets": "daemonset", "ds": "daemonset",
    "statefulset": "statefulset", "statefulsets": "statefulset", "sts": "statefulset",
    "pod": "pod", "pods": "pod", "po": "pod",
    "namespace": "namespace", "namespaces": "namespace", "ns": "namespace",
}
# kind -> (resource.group used in messages and -o name, namespaced)
RESOURCES = {
    "job": ("job.batch", True), "storageclass": ("storageclass.storage.k8s.io", False),
    "crd": ("customresourcedefinition.apiextensions.k8s.io", False), "secret": ("secret", True),
    "service": ("service", True), "configmap": ("configmap", True),
    "clusterissuer": ("clusterissuer.cert-manager.io", False), "helmchart": ("helmchart.helm.cattle.io", True),
    "deployment": ("deployment.apps", True), "daemonset": ("daemonset.apps", True),
    "statefulset": ("statefulset.apps", True), "pod": ("pod", True), "namespace": ("namespace", False),
}
PLURAL = {"job": "jobs.batch", "storageclass": "storageclasses.storage.k8s.io", "secret": "secrets",
          "crd": "customresourcedefinitions.apiextensions.k8s.io", "service": "services", "configmap": "configmaps",
          "clusterissuer": "clusterissuers.cert-manager.io", "helmchart": "helmcharts.helm.cattle.io",
          "deployment": "deployments.apps", "daemonset": "daemonsets.apps", "statefulset": "statefulsets.apps",
          "pod": "pods", "namespace": "namespaces"}
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
        raise KubectlError("%s must be a number of seconds, got %r" % (name, value)) from exc


class KubectlError(Exception):
    """What kubectl prints on stderr before exiting 1."""


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
        self._lock = None

    # -- persistence
    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lock = open(self.path + ".lock", "a")  # pylint: disable=consider-using-with
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            with open(self.path, encoding="utf-8") as handle:
                self.state = json.load(handle)
        except (OSError, ValueError):
            self.state = {}
        return self

    def __exit__(self, *exc):
        tmp = self.path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            json.dump(self.state, handle, indent=1, sort_keys=True)
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
    container = {"name": "helm", "restartCount": view["restarts"], "ready": view["pod_state"] == "running"}
    if view["pod_state"] == "running":
        container["state"] = {"running": {"startedAt": stamp(now)}}
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


def rollout_message(obj):
    """(done, message) of kubectl rollout status for a stand-in workload (rollout_status.go)."""
    name, status = obj["metadata"]["name"], obj["status"]
    if obj["kind"] == "Deployment":
        if status.get("availableReplicas", 0) < status.get("updatedReplicas", 0):
            return False, 'Waiting for deployment "%s" rollout to finish: %d of %d updated replicas are available...\n' % (
                name, status.get("availableReplicas", 0), status.get("updatedReplicas", 0))
        return True, 'deployment "%s" successfully rolled out\n' % name
    if obj["kind"] == "DaemonSet":
        if status.get("numberAvailable", 0) < status.get("desiredNumberScheduled", 0):
            return False, 'Waiting for daemon set "%s" rollout to finish: %d of %d updated pods are available...\n' % (
                name, status.get("numberAvailable", 0), status.get("desiredNumberScheduled", 0))
        return True, 'daemon set "%s" successfully rolled out\n' % name
    if status.get("readyReplicas", 0) < obj["spec"]["replicas"]:
        return False, "Waiting for %d pods to be ready...\n" % (obj["spec"]["replicas"] - status.get("readyReplicas", 0))
    return True, "partitioned roll out complete: %d new pods have been updated...\n" % status.get("updatedReplicas", 0)


# --------------------------------------------------------------------------- kubectl


def parse_args(args):
    """(positional args, options) of a kubectl command line."""
    opts = {"namespace": "default", "output": "", "ignore_not_found": False, "timeout": None,
            "overwrite": False, "tail": -1, "for": "", "selector": "", "previous": False}
    words = []
    index = 0
    while index < len(args):
        arg = args[index]
        value = None
        if arg in ("-n", "--namespace", "-o", "--output", "--timeout", "--tail", "--for", "-l",
                   "--selector") and index + 1 < len(args):
            value = args[index + 1]
            index += 1
        elif "=" in arg and arg.startswith("-"):
            arg, value = arg.split("=", 1)
        if arg in ("-n", "--namespace"):
            opts["namespace"] = value
        elif arg in ("-o", "--output"):
            opts["output"] = value
        elif arg == "--timeout":
            opts["timeout"] = duration(value)
        elif arg == "--tail":
            opts["tail"] = int(value)
        elif arg == "--for":
            opts["for"] = value
        elif arg in ("-l", "--selector"):
            opts["selector"] = value
        elif arg == "--ignore-not-found":
            opts["ignore_not_found"] = value in (None, "true")
        elif arg == "--overwrite":
            opts["overwrite"] = value in (None, "true")
        elif arg in ("-p", "--previous"):
            opts["previous"] = value in (None, "true")
        elif arg.startswith("-"):
            raise KubectlError("the K3S stand-in does not implement the kubectl flag %s" % arg)
        else:
            words.append(arg)
        index += 1
    return words, opts


def duration(text):
    match = re.match(r"^([0-9.]+)(ms|s|m|h)?$", str(text))
    if not match:
        raise KubectlError('invalid argument "%s" for "--timeout" flag' % text)
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def jsonpath(obj, template):
    """kubectl's -o jsonpath for the forms the roles use: {.a.b\\.c}, {"lit"}, {range .items[*]}...{end}."""
    tokens = re.findall(r"\{((?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*)\}|([^{}]+)", template)
    out, _next = _render(tokens, 0, obj)
    return out


def _render(tokens, index, obj):
    out = ""
    while index < len(tokens):
        expr, text = tokens[index]
        index += 1
        if text:
            out += text
        elif expr.startswith("range "):
            items = _lookup(obj, expr[6:].strip())
            body_start = index
            depth, end = 1, index
            while end < len(tokens) and depth:
                if tokens[end][0].startswith("range "):
                    depth += 1
                elif tokens[end][0] == "end":
                    depth -= 1
                end += 1
            for item in items if isinstance(items, list) else []:
                part, _next = _render(tokens[body_start:end - 1], 0, item)
                out += part
            index = end
        elif expr == "end":
            return out, index
        elif expr.startswith('"'):
            out += json.loads(expr)
        else:
            value = _lookup(obj, expr)
            if value is not None:
                out += value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else \
                    str(value).lower() if isinstance(value, bool) else str(value)
    return out, index


def _lookup(obj, path):
    path = path.strip()
    if path in (".", "@"):
        return obj
    parts = re.findall(r"(?:[^.\\\[]|\\.)+|\[\*\]|\[[0-9]+\]", path.lstrip("."))
    value = obj
    for part in parts:
        if part == "[*]":
            continue
        if part.startswith("["):
            index = int(part[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            key = part.replace("\\.", ".")
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


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


def names_of(platform, kind, namespace):
    if kind == "namespace":
        return sorted(namespaces(platform))
    if kind == "storageclass":
        return sorted(platform.table("storageclasses"))
    if kind == "crd":
        return sorted(platform.table("crds"))
    if kind == "job":
        return sorted(k.split("/", 1)[1] for k in platform.table("jobs") if k.startswith(namespace + "/"))
    if kind == "pod":
        return sorted(j["pod"] for k, j in platform.table("jobs").items() if k.startswith(namespace + "/") and "pod" in j)
    if kind in ("deployment", "daemonset", "statefulset"):
        prefix = "%s/%s/" % (kind, namespace)
        return sorted(k[len(prefix):] for k in platform.table("workloads") if k.startswith(prefix))
    raise KubectlError("the K3S stand-in does not implement listing %s" % kind)


def selector_matches(obj, selector):
    """Equality-based label selector (a=b,c==d), as kubectl -l."""
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if not sep or "!" in key or not key.strip():
            raise KubectlError("the K3S stand-in does not implement the label selector %r (only key=value)" % term)
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def not_found(kind, name):
    return KubectlError('Error from server (NotFound): %s "%s" not found' % (PLURAL[kind], name))


def resolve_kind(word):
    kind = KIND_ALIASES.get(word.lower())
    if kind is None:
        raise KubectlError("the K3S stand-in does not implement resource type %r" % word)
    return kind


def kind_and_name(words):
    """KIND NAME or KIND/NAME."""
    if len(words) == 1 and "/" in words[0]:
        kind, name = words[0].split("/", 1)
        return resolve_kind(kind), name
    if len(words) == 2:
        return resolve_kind(words[0]), words[1]
    raise KubectlError("expected KIND NAME or KIND/NAME, got %r" % " ".join(words))


def render(obj, kind, output):
    if output.startswith("jsonpath="):
        return jsonpath(obj, output[len("jsonpath="):])
    if output == "name":
        return "%s/%s\n" % (RESOURCES[kind][0], obj["metadata"]["name"])
    if output == "json":
        return json.dumps(obj, indent=4) + "\n"
    if output in ("", "wide"):
        return "NAME\n%s\n" % obj["metadata"]["name"]
    raise KubectlError("the K3S stand-in does not implement -o %s" % output)


def cmd_get(platform, words, opts):
    if len(words) == 1 and "/" not in words[0]:
        kinds = [resolve_kind(word) for word in words[0].split(",")]
        items = []
        for kind in kinds:
            objs = [to_object(platform, kind, opts["namespace"], n) for n in names_of(platform, kind, opts["namespace"])]
            items += [(kind, o) for o in objs if o is not None and selector_matches(o, opts["selector"])]
        listing = {"apiVersion": "v1", "kind": "List", "items": [o for _k, o in items], "metadata": {"resourceVersion": ""}}
        if opts["output"].startswith("jsonpath="):
            return jsonpath(listing, opts["output"][len("jsonpath="):])
        if opts["output"] == "json":
            return json.dumps(listing, indent=4) + "\n"
        if not items and not opts["output"]:
            return ""  # kubectl prints "No resources found" on stderr
        return "".join(render(obj, kind, opts["output"] or "name") for kind, obj in items)
    if opts["selector"]:
        raise KubectlError("error: name cannot be provided when a selector is specified")
    kind, name = kind_and_name(words)
    obj = to_object(platform, kind, opts["namespace"], name)
    if obj is None:
        if opts["ignore_not_found"]:
            return ""
        raise not_found(kind, name)
    return render(obj, kind, opts["output"])


def condition_met(platform, kind, namespace, name, condition):
    obj = to_object(platform, kind, namespace, name)
    if obj is None:
        raise not_found(kind, name)
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"].lower() == condition.lower() and c["status"] == "True" for c in conditions)


def cmd_wait(platform_factory, words, opts, sleep, now):
    match = re.match(r"^condition=(\w+)$", opts["for"])
    if not match:
        raise KubectlError("the K3S stand-in does not implement wait --for=%s" % opts["for"])
    kind, name = kind_and_name(words)
    if kind not in ("job", "clusterissuer"):
        raise KubectlError("the K3S stand-in does not implement waiting for %s" % kind)
    deadline = now() + (30.0 if opts["timeout"] is None else opts["timeout"])
    while True:
        with platform_factory() as platform:
            platform.reconcile()
            met = condition_met(platform, kind, opts["namespace"], name, match.group(1))
        if met:
            return "%s/%s condition met\n" % (RESOURCES[kind][0], name)
        if now() >= deadline:
            raise KubectlError("error: timed out waiting for the condition on %s/%s" % (PLURAL[kind].split(".")[0], name))
        sleep(min(0.5, max(0.0, deadline - now())))


def cmd_logs(platform, words, opts):
    if len(words) != 1 or not words[0].startswith(("job/", "jobs/")):
        raise KubectlError("the K3S stand-in does not implement logs for %s (only job/NAME)" % " ".join(words))
    name = words[0].split("/", 1)[1]
    job = platform.job(opts["namespace"], name)
    if job is None:
        raise KubectlError('error: error from server (NotFound): jobs.batch "%s" not found in namespace "%s"'
                           % (name, opts["namespace"]))
    # The log of the running attempt, or of the last one that ended (the kubelet serves the
    # previous container's log while the pod waits in CrashLoopBackOff); --previous: the last
    # failed attempt's (kubelet_pods.go validateContainerLogStatus).
    view = job_view(job, platform.now())
    if opts["previous"]:
        if not view["last_exit"]:
            raise KubectlError('Error from server (BadRequest): previous terminated container "helm" in pod "%s" not found'
                               % job.get("pod", name))
        log = job["log"]
    else:
        log = job["log"][:1] if view["pod_state"] == "running" else job["log"]
    lines = log if opts["tail"] < 0 else log[-opts["tail"]:] if opts["tail"] else []
    return "".join(line + "\n" for line in lines)


def cmd_rollout(platform_factory, words, opts, sleep, now, out):
    if not words or words[0] != "status":
        raise KubectlError("the K3S stand-in does not implement rollout %s (only rollout status)" % " ".join(words))
    kind, name = kind_and_name(words[1:])
    if kind not in ("deployment", "daemonset", "statefulset"):
        raise KubectlError('error: no status viewer has been implemented for %s' % kind)
    deadline = None if not opts["timeout"] else now() + opts["timeout"]  # 0: no timeout, as kubectl
    last = ""
    while True:
        with platform_factory() as platform:
            platform.reconcile()
            obj = to_object(platform, kind, opts["namespace"], name)
        if obj is None:
            raise not_found(kind, name)
        done, message = rollout_message(obj)
        if done:
            return message
        if message != last:
            out.write(message)
            last = message
        if deadline is not None and now() >= deadline:
            raise KubectlError("error: timed out waiting for the condition")
        sleep(min(1.0, max(0.0, deadline - now())) if deadline is not None else 1.0)


def cmd_annotate(platform, words, opts):
    if len(words) < 3 or resolve_kind(words[0]) != "storageclass":
        raise KubectlError("the K3S stand-in does not implement annotate %s (only storageclass NAME KEY=VALUE)" % " ".join(words))
    entry = platform.table("storageclasses").get(words[1])
    if entry is None:
        raise not_found("storageclass", words[1])
    for pair in words[2:]:
        key, sep, value = pair.partition("=")
        if not sep:
            raise KubectlError("the K3S stand-in does not implement removing annotations (%s)" % pair)
        if key in entry["annotations"] and entry["annotations"][key] != value and not opts["overwrite"]:
            raise KubectlError("error: --overwrite is false but found the following declared annotation(s): "
                               "'%s' already has a value (%s)" % (key, entry["annotations"][key]))
        entry["annotations"][key] = value
    return "storageclass.storage.k8s.io/%s annotated\n" % words[1]


def cmd_delete(platform, words, opts):
    kind, name = kind_and_name(words)
    if kind != "secret":
        raise KubectlError("the K3S stand-in does not implement delete for %s (only secrets)" % kind)
    secrets = platform.table("secrets")
    key = "%s/%s" % (opts["namespace"], name)
    if key not in secrets:
        if opts["ignore_not_found"]:
            return ""
        raise not_found(kind, name)
    del secrets[key]
    return 'secret "%s" deleted\n' % name


VERBS = {"get": cmd_get, "logs": cmd_logs, "annotate": cmd_annotate, "delete": cmd_delete}


# Per verb, the resource kinds this module answers for (others are left to the other modules).
HANDLED = {"get": set(RESOURCES), "wait": {"job", "clusterissuer"},
           "logs": {"job"}, "rollout": {"deployment", "daemonset", "statefulset"}, "annotate": {"storageclass"},
           "delete": {"secret"}}


def handles(args):
    """Whether `k3s kubectl args` is a platform call (else the dispatcher tries other modules)."""
    try:
        words, _opts = parse_args(args)
    except (KubectlError, ValueError):
        return False
    if len(words) < 2 or words[0] not in HANDLED:
        return False
    target = words[2] if words[0] == "rollout" and len(words) > 2 else words[1]
    kinds = target.split("/", 1)[0].lower().split(",")
    return all(KIND_ALIASES.get(kind) in HANDLED[words[0]] for kind in kinds)


def kubectl(args, data_dir, config_path, out=None, err=None, sleep=time.sleep, now=time.time):
    """Run a platform kubectl call; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr

    def factory():
        return Platform(data_dir, config_path, now=now)
    try:
        words, opts = parse_args(args)
        if not words:
            raise KubectlError("the K3S stand-in does not implement 'kubectl %s'" % " ".join(args))
        verb, rest = words[0], words[1:]
        if verb == "wait":
            text = cmd_wait(factory, rest, opts, sleep, now)
        elif verb == "rollout":
            text = cmd_rollout(factory, rest, opts, sleep, now, out)
        elif verb in VERBS:
            with factory() as platform:
                platform.reconcile()
                text = VERBS[verb](platform, rest, opts)
        else:
            raise KubectlError("the K3S stand-in does not implement 'kubectl %s'" % " ".join(args))
    except (KubectlError, ValueError) as exc:
        err.write("%s\n" % exc)
        return 1
    out.write(text)
    return 0


def k3s_paths():
    """(data dir, config path) of this host, as K3S resolves them (K3S_STANDIN_ROOT prefix for tests)."""
    from . import core  # pylint: disable=import-outside-toplevel
    config_path = core.rooted("/etc/rancher/k3s/config.yaml")
    try:
        with open(config_path, encoding="utf-8") as handle:
            docs = platform_yaml.load_documents(handle.read())
    except (OSError, platform_yaml.YamlError):
        docs = []
    config = docs[0] if docs and isinstance(docs[0], dict) else {}
    return core.rooted(str(config.get("data-dir") or "/var/lib/rancher/k3s")), config_path


def handle_kubectl(args):
    """The dispatcher's hook: the exit code of a platform call, None when the call is not ours."""
    if not handles(args):
        return None
    from . import core  # pylint: disable=import-outside-toplevel
    try:
        core.api_get("/readyz")  # kubectl needs the API server up, as with real K3S
    except core.StandinError as exc:
        sys.stderr.write("%s\n" % exc)
        return 1
    data_dir, config_path = k3s_paths()
    return kubectl(args, data_dir, config_path)
