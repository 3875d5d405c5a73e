"""The Argo CD Grafana dashboard: its queries use only metrics Argo CD exports (with their real
labels), and the argocd role writes its ConfigMap when it should, valid against the Kubernetes
schema, idempotently, and refuses a forced dashboard whose namespace is missing.

Metric names and labels below were read from argoproj/argo-cd controller/metrics/metrics.go and
controller/metrics/clustercollector.go at tag v3.5.1 and on master at 37ee0097 (VERSION 3.6.0);
both define the same set. argocd_app_labels and argocd_app_condition are left out on purpose: the
controller exports them only when --metrics-application-labels / --metrics-application-conditions
are set, so a default install has no such series.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import render
import schema_check

DASHBOARD_FILE = render.REPO / "roles" / "argocd" / "files" / "argocd-dashboard.json"

_APP = ("namespace", "name", "project")
# metric -> labels (histograms list their base name; _bucket adds le, _sum and _count nothing).
ARGOCD_METRICS: dict[str, tuple[str, ...]] = {
    "argocd_app_info": _APP + ("autosync_enabled", "repo", "dest_server", "dest_namespace",
                               "sync_status", "health_status", "operation"),
    "argocd_app_sync_total": _APP + ("dest_server", "phase", "dry_run"),
    "argocd_app_sync_duration_seconds_total": _APP + ("dest_server",),
    "argocd_app_k8s_request_total": _APP + ("server", "response_code", "verb", "resource_kind",
                                            "resource_namespace", "dry_run"),
    "argocd_app_orphaned_resources_count": _APP,
    "argocd_app_reconcile": ("namespace", "dest_server"),
    "argocd_kubectl_exec_total": ("hostname", "command"),
    "argocd_kubectl_exec_pending": ("hostname", "command"),
    "argocd_cluster_events_total": ("server", "group", "kind"),
    "argocd_redis_request_total": ("hostname", "initiator", "failed"),
    "argocd_redis_request_duration": ("hostname", "initiator"),
    "argocd_cluster_info": ("server", "k8s_version", "name"),
    "argocd_cluster_api_resource_objects": ("server",),
    "argocd_cluster_api_resources": ("server",),
    "argocd_cluster_cache_age_seconds": ("server",),
    "argocd_cluster_connection_status": ("server", "k8s_version"),
}
HISTOGRAMS = {"argocd_app_reconcile", "argocd_redis_request_duration"}
# Labels Prometheus adds to every scraped series (the ServiceMonitor's target labels).
TARGET_LABELS = {"instance", "job", "namespace", "pod", "service", "endpoint", "container"}

_METRIC = re.compile(r"\b(argocd_[a-z0-9_]+)")
_SELECTOR = re.compile(r"\b(argocd_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def metric_labels(series: str) -> set[str] | None:
    """Labels of a series name Argo CD exports, None when it exports no such series."""
    if series in ARGOCD_METRICS and series not in HISTOGRAMS:
        return set(ARGOCD_METRICS[series])
    for base in HISTOGRAMS:
        for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
            if series == base + suffix:
                return set(ARGOCD_METRICS[base]) | extra
    return None


def query_problems(expr: str) -> list[str]:
    """What in a PromQL expression refers to a metric or label that Argo CD does not export."""
    problems = []
    names = _METRIC.findall(expr)
    if not names:
        problems.append(f"no Argo CD metric in {expr!r}")
    for name in names:
        if metric_labels(name) is None:
            problems.append(f"unknown metric {name}")
    for name, matchers in _SELECTOR.findall(expr):
        labels = metric_labels(name) or set()
        for part in filter(str.strip, matchers.split(",")):
            match = _MATCHER.fullmatch(part)
            if not match:
                problems.append(f"cannot parse matcher {part!r} of {name}")
            elif match.group(1) not in labels | TARGET_LABELS:
                problems.append(f"{name} has no label {match.group(1)}")
    known = set().union(*(metric_labels(n) or set() for n in names)) | TARGET_LABELS
    for grouping in _GROUPING.findall(expr):
        for label in filter(None, (x.strip() for x in grouping.split(","))):
            if label not in known:
                problems.append(f"grouping by {label}, which {', '.join(sorted(set(names)))} do not have")
    return problems


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def targets(dash: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


# --- the dashboard JSON --------------------------------------------------------------------------

@pytest.mark.parametrize("expr, problem", [
    ('argocd_app_sync_status{sync_status="Synced"}', "unknown metric argocd_app_sync_status"),
    ('argocd_app_info{phase="Failed"}', "argocd_app_info has no label phase"),
    ("sum by (health_status) (argocd_app_sync_total)", "grouping by health_status"),
    ("histogram_quantile(0.9, rate(argocd_app_reconcile_seconds_bucket[5m]))", "unknown metric"),
    ("up", "no Argo CD metric"),
])
def test_checker_flags_what_argo_cd_does_not_export(expr, problem):
    assert any(problem in p for p in query_problems(expr)), query_problems(expr)


def test_checker_accepts_real_queries():
    assert query_problems('sum by (le) (rate(argocd_app_reconcile_bucket{namespace="argocd"}[5m]))') == []
    assert query_problems('count(argocd_app_info{project=~"$project",health_status!="Healthy"})') == []


def test_every_query_uses_metrics_argo_cd_exports():
    dash = dashboard()
    found = targets(dash)
    assert len(found) >= 12
    problems = [f"{title}: {p}" for title, expr in found for p in query_problems(expr)]
    assert problems == []


def test_dashboard_covers_health_sync_and_reconciliation():
    exprs = " ".join(expr for _t, expr in targets(dashboard()))
    # The seed's own panel: healthy applications from argocd_app_info.
    assert 'argocd_app_info{project=~"$project",health_status="Healthy"}' in exprs
    for needle in ("by (health_status) (argocd_app_info", "by (sync_status) (argocd_app_info",
                   "argocd_app_sync_total", 'phase=~"Failed|Error"', "argocd_app_sync_duration_seconds_total",
                   "argocd_app_reconcile_bucket", "argocd_cluster_connection_status"):
        assert needle in exprs, needle


def test_dashboard_model_is_what_the_sidecar_provisions():
    dash = dashboard()
    # The sidecar writes the file for Grafana's file provisioning: the dashboard model itself,
    # not the HTTP API's {"dashboard": ...} envelope the seed shows.
    assert "dashboard" not in dash
    assert dash["title"] == "Argo CD" and dash["uid"] and len(dash["uid"]) <= 40
    assert "id" not in dash  # a fixed id would clash with Grafana's own
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert query_problems(variables["project"]["definition"]) == []
    for panel in dash["panels"]:
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert 0 <= x and x + w <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


# --- the role writes it --------------------------------------------------------------------------

FAKE_KUBECTL = """#!/bin/sh
# `kubectl get <kind> <name> --ignore-not-found -o json`: the object when it exists, nothing otherwise.
case "$1 $2" in
  "get crd") [ "$3" = servicemonitors.monitoring.coreos.com ] && [ -n "{crd}" ] \\
    && echo '{"kind": "CustomResourceDefinition", "metadata": {"name": "'$3'"}}' ;;
  "get namespace") for ns in {namespaces}; do [ "$ns" = "$3" ] && echo '{"kind": "Namespace", "metadata": {"name": "'$3'"}}'; done ;;
  # `-n <ns> delete configmap argocd-dashboard --ignore-not-found -o name`: what it deleted
  "-n "*) [ "$3 $4 $5" = "delete configmap argocd-dashboard" ] && echo configmap/argocd-dashboard ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 1 ;;
esac
exit 0
"""


@contextmanager
def argocd_metrics_tasks():
    saved = dict(render.RENDER_TASKS)
    render.RENDER_TASKS["argocd"] = ["validate.yml", "admin_password.yml", "metrics.yml"]
    try:
        yield
    finally:
        render.RENDER_TASKS.clear()
        render.RENDER_TASKS.update(saved)


def run_role(tmp: Path, *, crd: bool, namespaces: list[str], manifests: Path | None = None,
             **extra: Any) -> render.Rendered:
    tmp.mkdir(parents=True, exist_ok=True)
    kubectl = tmp / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.replace("{crd}", "yes" if crd else "")
                       .replace("{namespaces}", " ".join(namespaces)))
    kubectl.chmod(0o755)
    return render.render(tmp, inventory_env=None, roles=["argocd"], manifests=manifests,
                         extra=dict({"argocd_kubectl": str(kubectl), "argocd_kube_client": "server"}, **extra))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, render.Rendered]:
    base = tmp_path_factory.mktemp("dashboard")
    cases = {
        "auto": dict(crd=True, namespaces=["dictamesh-monitoring"],
                     argocd_grafana_dashboard_namespace="dictamesh-monitoring",
                     argocd_grafana_dashboard_annotations={"grafana_folder": "Argo CD"}),
        "auto-no-namespace": dict(crd=True, namespaces=["other"]),
        "auto-no-prometheus-operator": dict(crd=False, namespaces=["monitoring"]),
        "forced-no-namespace": dict(crd=False, namespaces=[], argocd_grafana_dashboard=True),
        # A label value given as a number still becomes the string Kubernetes requires.
        "forced-no-prometheus-operator": dict(crd=False, namespaces=["monitoring"], argocd_grafana_dashboard="true",
                                              argocd_grafana_dashboard_labels={"grafana_dashboard": 1,
                                                                               "app.kubernetes.io/part-of": "argocd"}),
    }
    with argocd_metrics_tasks():
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {name: pool.submit(run_role, base / name, **kw) for name, kw in cases.items()}
            results = {name: f.result() for name, f in futures.items()}
        # Again into the same manifests directory: nothing to change; then turned off: file removed.
        auto = cases["auto"]
        results["auto-again"] = run_role(base / "auto-again", manifests=results["auto"].manifests, **auto)
        off_manifests = base / "auto-then-off" / "manifests"
        shutil.copytree(results["auto"].manifests, off_manifests)
        results["auto-then-off"] = run_role(base / "auto-then-off", manifests=off_manifests,
                                            **dict(auto, argocd_grafana_dashboard=False))
    return results


def configmap(result: render.Rendered) -> dict[str, Any]:
    docs = schema_check.load_documents(result.manifests / "argocd-dashboard.yaml")
    assert len(docs) == 1
    return docs[0]


def test_written_when_metrics_on_and_namespace_exists(runs):
    result = runs["auto"]
    assert result.rc == 0, result.output[-3000:]
    path = result.manifests / "argocd-dashboard.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = configmap(result)
    assert schema_check.validate(doc) == "core"
    assert doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "argocd-dashboard"
    assert doc["metadata"]["namespace"] == "dictamesh-monitoring"
    assert doc["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert doc["metadata"]["annotations"] == {"grafana_folder": "Argo CD"}
    assert json.loads(doc["data"]["argocd-dashboard.json"]) == dashboard()


def test_second_run_changes_nothing(runs):
    result = runs["auto-again"]
    assert result.rc == 0, result.output[-3000:]
    assert result.recap.get("changed") == 0, result.output[-3000:]


def test_turned_off_removes_the_manifest_and_the_configmap(runs):
    result = runs["auto-then-off"]
    assert result.rc == 0, result.output[-3000:]
    assert result.recap.get("changed") == 2, result.output[-3000:]  # the file, then the ConfigMap
    assert not (result.manifests / "argocd-dashboard.yaml").exists()


@pytest.mark.parametrize("case", ["auto-no-namespace", "auto-no-prometheus-operator"])
def test_auto_skips(runs, case):
    assert runs[case].rc == 0, runs[case].output[-3000:]
    assert not (runs[case].manifests / "argocd-dashboard.yaml").exists()


def test_forced_without_namespace_fails_naming_the_variable(runs):
    result = runs["forced-no-namespace"]
    assert result.rc != 0
    assert "argocd_grafana_dashboard_namespace (monitoring) does not exist" in result.output
    assert not (result.manifests / "argocd-dashboard.yaml").exists()


def test_forced_without_prometheus_operator_still_writes(runs):
    result = runs["forced-no-prometheus-operator"]
    assert result.rc == 0, result.output[-3000:]
    doc = configmap(result)
    assert schema_check.validate(doc) == "core"
    assert doc["metadata"]["namespace"] == "monitoring"
    assert doc["metadata"]["labels"] == {"grafana_dashboard": "1", "app.kubernetes.io/part-of": "argocd"}


@pytest.mark.parametrize("bad, needle", [
    ({"argocd_grafana_dashboard": "yes"}, "argocd_grafana_dashboard auto/true/false"),
    ({"argocd_grafana_dashboard_namespace": "Monitoring"}, "argocd_grafana_dashboard_namespace a namespace name"),
])
def test_bad_input_is_refused(tmp_path, bad, needle):
    with argocd_metrics_tasks():
        result = run_role(tmp_path, crd=True, namespaces=["monitoring", "Monitoring"], **bad)
    assert result.rc != 0
    assert needle in " ".join(result.output.split())
    assert not (result.manifests / "argocd-dashboard.yaml").exists()
