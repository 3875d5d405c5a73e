"""The K3S stand-in's platform controllers (helm-controller jobs, CRD validation, workloads,
issuers) writing into the Kubernetes API stand-in, read by a real kubectl as the platform roles do."""

from __future__ import annotations

import base64
import json
import os
import pprint
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
STANDIN = REPO / "tests" / "standins" / "k3s" / "standin"
sys.path.insert(0, str(STANDIN.parent))

from standin import core, kubeapi, platform, platform_crds, platform_yaml  # noqa: E402

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")

HELMCHART = """apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: cert-manager
  namespace: kube-system
spec:
  repo: https://charts.jetstack.io
  chart: cert-manager
  version: "v1.21.1"
  targetNamespace: cert-manager
  createNamespace: true
  valuesContent: |-
    crds:
      enabled: true
"""


def crd_schemas() -> dict:
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "description"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    out = {}
    for name in ("helm.cattle.io_helmcharts.yaml", "helm.cattle.io_helmchartconfigs.yaml"):
        for doc in yaml.safe_load_all((REPO / "tests" / "schemas" / name).read_text()):
            if doc:
                for version in doc["spec"]["versions"]:
                    key = "%s/%s %s" % (doc["spec"]["group"], version["name"], doc["spec"]["names"]["kind"])
                    out[key] = strip(version["schema"]["openAPIV3Schema"])
    return out


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    core.make_ca(str(folder))
    core.sign(str(folder), "serving-kube-apiserver", "/CN=kube-apiserver",
              "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    core.sign(str(folder), "client-admin", "/O=system:masters/CN=system:admin", "extendedKeyUsage=clientAuth")
    return folder


class Cluster:
    """A first server's data dir and API server, its controllers run by a thread as in `k3s server`
    (apiserver.py), on a clock that runs with real time (kubectl waits in real time) and that a
    test moves forward (K3S's 15 s scans, back-offs)."""

    def __init__(self, root: Path, tls: Path, disable: list[str] | None = None):
        self.data = root / "k3s"
        (self.data / "server" / "manifests").mkdir(parents=True)
        self.config = root / "config.yaml"
        self.config.write_text("disable:\n" + "".join(f"  - {d}\n" for d in disable) if disable else "{}\n")
        self.start = time.time()
        self.offset = 1000.0 - self.start
        self.api = kubeapi.KubeAPI()
        port = self.api.serve("127.0.0.1", 0, str(tls / "serving-kube-apiserver.crt"),
                              str(tls / "serving-kube-apiserver.key"), str(tls / "server-ca.crt"))

        def b64(name: str) -> str:
            return base64.b64encode((tls / name).read_bytes()).decode()
        self.kubeconfig = root / "kubeconfig"
        self.kubeconfig.write_text(core.KUBECONFIG % {"ca": b64("server-ca.crt"), "port": port,
                                                      "crt": b64("client-admin.crt"), "key": b64("client-admin.key")})
        self.home = root
        self.lock = threading.Lock()
        self.clock = 1000.0
        self.step()  # K3S's start scan at 1000 (then every 15 s from there), before the thread runs
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def clock(self) -> float:
        return time.time() + self.offset

    @clock.setter
    def clock(self, value: float) -> None:
        self.offset = value - time.time()

    def step(self) -> None:
        with self.lock:
            platform.project(self.api.store, str(self.data), str(self.config), now=lambda: self.clock)

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self.step()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.api.shutdown()

    def write(self, name: str, text: str) -> None:
        with self.lock:  # not while the controllers' thread reads the folder
            (self.data / "server" / "manifests" / name).write_text(text)

    def scan(self) -> None:
        """Move the clock to K3S's next scan (every 15 s from the first pass, at 1000)."""
        self.clock = 1000.0 + ((self.clock - 1000.0) // 15 + 1) * 15 + 0.1  # just past it (the start scan
        self.step()  # ran a few microseconds after 1000)

    def run(self, *args: str) -> tuple[int, str, str]:
        self.step()  # what the controllers did up to now, before kubectl looks
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.home))
        result = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=120, check=False)
        return result.returncode, result.stdout, result.stderr


@pytest.fixture
def cluster(tmp_path, tls, monkeypatch):
    # Shorter than the defaults only so that the assertions below read easily; the scan interval
    # stays K3S's 15 s.
    monkeypatch.setenv("K3S_STANDIN_HELM_DELAY", "2")
    monkeypatch.setenv("K3S_STANDIN_ROLLOUT_DELAY", "3")
    monkeypatch.delenv("K3S_STANDIN_SCAN_INTERVAL", raising=False)
    made = Cluster(tmp_path, tls)
    yield made
    made.close()


def job_uid(cluster: Cluster, name: str) -> str:
    rc, out, err = cluster.run("-n", "kube-system", "get", "job", "helm-install-" + name, "--ignore-not-found",
                               "-o", "jsonpath={.metadata.uid}")
    assert rc == 0, err
    return out


def test_crd_copy_matches_tests_schemas():
    assert platform_crds.SCHEMAS == crd_schemas(), (
        "regenerate platform_crds.py: SCHEMAS = " + pprint.pformat(crd_schemas())[:200])


def test_yaml_reader_matches_pyyaml_on_rendered_style():
    text = HELMCHART + "---\n# c\nkind: X\nlist:\n- a: 1\n  b: [x, 'y']\n- {}\nq: \"a\\tb\" # c\nf: >-\n  one\n  two\n"
    assert platform_yaml.load_documents(text) == [d for d in yaml.safe_load_all(text) if d]


def test_new_job_per_change_completes_after_delay(cluster):
    assert job_uid(cluster, "cert-manager") == ""
    cluster.write("cert-manager.yaml", HELMCHART)
    assert job_uid(cluster, "cert-manager") == "", "applied before the deploy controller's next scan"
    cluster.scan()
    first = job_uid(cluster, "cert-manager")
    assert first
    rc, _out, err = cluster.run("-n", "cert-manager", "rollout", "status", "deployment/cert-manager", "--timeout=1s")
    # kubectl 1.36 looks the namespace up after a NotFound and names it (the chart has not created it yet)
    assert rc == 1 and 'namespaces "cert-manager" not found' in err
    rc, out, err = cluster.run("-n", "kube-system", "wait", "--for=condition=complete", "job/helm-install-cert-manager",
                               "--timeout=10s")
    assert rc == 0 and "condition met" in out, err
    assert job_uid(cluster, "cert-manager") == first
    rc, out, err = cluster.run("-n", "cert-manager", "rollout", "status", "deployment/cert-manager", "--timeout=5s")
    assert rc == 0 and out.splitlines() == [
        'Waiting for deployment "cert-manager" rollout to finish: 0 of 1 updated replicas are available...',
        'deployment "cert-manager" successfully rolled out'], err
    for name in ("cert-manager-webhook", "cert-manager-cainjector"):
        rc, out, err = cluster.run("-n", "cert-manager", "rollout", "status", "deployment/" + name, "--timeout=5s")
        assert rc == 0 and out == 'deployment "%s" successfully rolled out\n' % name, err
    cluster.write("cert-manager.yaml", HELMCHART.replace("v1.21.1", "v1.21.2"))
    cluster.scan()
    second = job_uid(cluster, "cert-manager")
    assert second and second != first
    # Same spec again (a comment only): no new job, as helm-controller hashes the spec.
    cluster.write("cert-manager.yaml", "# comment\n" + HELMCHART.replace("v1.21.1", "v1.21.2"))
    cluster.scan()
    assert job_uid(cluster, "cert-manager") == second


def test_invalid_helmchart_fails_job_with_log(cluster):
    cluster.write("bad.yaml", HELMCHART.replace("name: cert-manager\n", "name: bad\n", 1)
                  .replace("createNamespace: true", "createNamespace: true\n  failurPolicy: abort"))
    cluster.scan()
    assert job_uid(cluster, "bad")
    rc, _out, err = cluster.run("-n", "kube-system", "wait", "--for=condition=complete", "job/helm-install-bad",
                                "--timeout=5s")
    assert rc == 1 and "timed out waiting for the condition on jobs/helm-install-bad" in err
    rc, out, _err = cluster.run("-n", "kube-system", "logs", "job/helm-install-bad", "--tail=5")
    assert rc == 0 and 'spec.failurPolicy: unknown field "failurPolicy"' in out
    assert "INSTALLATION FAILED" in out
    # helm-controller's job restarts its pod in place (backoffLimit 1000): active, not failed.
    rc, out, _err = cluster.run("-n", "kube-system", "get", "job", "helm-install-bad", "-o",
                                "jsonpath={.status.active}/{.status.failed}/{.spec.backoffLimit}")
    assert out == "1//1000"


@pytest.mark.parametrize("mutation, message", [
    (("version: \"v1.21.1\"", "version: 1"), "spec.version: must be of type string"),
    (("failurePolicy", "failurePolicy"), None),
    (("    crds:\n      enabled: true", "    - not a mapping"), "values are not a YAML mapping"),
])
def test_schema_errors(mutation, message):
    doc = platform_yaml.load_documents(HELMCHART.replace(*mutation))[0]
    errors = platform.helm_object_errors(doc)
    assert (message is None and errors == []) or any(message in e for e in errors), errors


def test_bundled_traefik_and_local_path(cluster):
    rc, out, _err = cluster.run("get", "storageclass", "local-path", "--ignore-not-found", "-o",
                                "jsonpath={.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class}")
    assert (rc, out) == (0, "true")
    assert job_uid(cluster, "traefik")
    cluster.clock += 3
    rc, out, err = cluster.run("-n", "kube-system", "rollout", "status", "deployment/traefik")
    assert rc == 0 and out.endswith('deployment "traefik" successfully rolled out\n'), err
    before = job_uid(cluster, "traefik")
    cluster.write("traefik-config.yaml", "apiVersion: helm.cattle.io/v1\nkind: HelmChartConfig\nmetadata:\n"
                  "  name: traefik\n  namespace: kube-system\nspec:\n  valuesContent: |-\n    a: 1\n")
    cluster.scan()
    assert job_uid(cluster, "traefik") not in ("", before)


def test_disabled_addons(tmp_path, tls):
    cluster = Cluster(tmp_path, tls, disable=["traefik", "local-storage"])
    try:
        assert job_uid(cluster, "traefik") == ""
        rc, out, _err = cluster.run("get", "storageclass", "local-path", "--ignore-not-found", "-o", "name")
        assert (rc, out) == (0, "")
    finally:
        cluster.close()


LONGHORN = """apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: longhorn
  namespace: kube-system
spec:
  chartContent: H4sIAAAA
  version: "1.12.1"
  targetNamespace: longhorn-system
  failurePolicy: abort
  valuesContent: |-
    persistence:
      defaultClass: true
      reclaimPolicy: Delete
"""
RETAIN = """---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: longhorn-retain
  annotations:
    storageclass.kubernetes.io/is-default-class: "false"
provisioner: driver.longhorn.io
reclaimPolicy: Retain
"""


def test_longhorn_classes_and_annotate(cluster):
    cluster.write("longhorn.yaml", LONGHORN)
    cluster.write("longhorn-storageclasses.yaml", RETAIN)
    cluster.scan()
    rc, _out, err = cluster.run("-n", "kube-system", "wait", "--for=condition=complete", "job/helm-install-longhorn",
                                "--timeout=10s")
    assert rc == 0, err
    rc, out, _err = cluster.run("-n", "longhorn-system", "rollout", "status", "daemonset/longhorn-manager")
    assert rc == 0 and "daemon set" in out
    path = ('jsonpath={range .items[*]}{.metadata.name}{"\\t"}'
            '{.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class}{"\\n"}{end}')
    rc, out, _err = cluster.run("get", "storageclass", "-o", path)
    assert out.splitlines() == ["local-path\ttrue", "longhorn\ttrue", "longhorn-retain\tfalse"]
    rc, _out, err = cluster.run("annotate", "storageclass", "local-path", "storageclass.kubernetes.io/is-default-class=false")
    assert rc == 1 and "--overwrite is false" in err
    rc, out, _err = cluster.run("annotate", "--overwrite", "storageclass", "local-path",
                                "storageclass.kubernetes.io/is-default-class=false")
    assert rc == 0 and "annotated" in out
    rc, out, _err = cluster.run("get", "storageclass", "-o", path)
    assert out.splitlines()[0] == "local-path\tfalse"
    # The deploy controller does not re-apply an unchanged file over the annotation.
    assert cluster.run("get", "storageclass", "-o", path)[1].splitlines()[0] == "local-path\tfalse"


ARGOCD = """apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: argocd
  namespace: kube-system
spec:
  repo: https://argoproj.github.io/argo-helm
  chart: argo-cd
  version: "9.6.0"
  targetNamespace: argocd
  valuesContent: |-
    fullnameOverride: argocd
    configs:
      params:
        server.insecure: true
      secret:
        argocdServerAdminPassword: "%s"
"""


@pytest.mark.parametrize("password, secret", [("$2a$10$abc", False), ("", True)])
def test_argocd_objects(cluster, password, secret):
    cluster.write("argocd.yaml", ARGOCD % password)
    cluster.scan()
    rc, _out, err = cluster.run("-n", "kube-system", "wait", "--for=condition=complete", "job/helm-install-argocd",
                                "--timeout=10s")
    assert rc == 0, err
    rc, out, _err = cluster.run("-n", "argocd", "get", "service", "argocd-server", "-o", "jsonpath={.spec.clusterIP}")
    assert rc == 0 and out.startswith("10.43.")
    rc, out, _err = cluster.run("-n", "argocd", "get", "configmap", "argocd-cmd-params-cm", "--ignore-not-found", "-o",
                                "jsonpath={.data.server\\.insecure}")
    assert out == "true"
    rc, out, _err = cluster.run("-n", "argocd", "rollout", "status", "statefulset/argocd-application-controller")
    assert rc == 0
    rc, out, _err = cluster.run("-n", "argocd", "get", "secret", "argocd-initial-admin-secret", "--ignore-not-found",
                                "-o", "name")
    assert out == ("secret/argocd-initial-admin-secret\n" if secret else "")
    if secret:
        rc, out, _err = cluster.run("-n", "argocd", "delete", "secret", "argocd-initial-admin-secret", "--ignore-not-found")
        assert (rc, out) == (0, 'secret "argocd-initial-admin-secret" deleted from argocd namespace\n')  # kubectl 1.36
        rc, out, _err = cluster.run("-n", "argocd", "delete", "secret", "argocd-initial-admin-secret", "--ignore-not-found")
        assert (rc, out) == (0, "")
    rc, out, _err = cluster.run("get", "crd", "servicemonitors.monitoring.coreos.com", "--ignore-not-found", "-o", "name")
    assert (rc, out) == (0, "")
    rc, out, _err = cluster.run("get", "crd", "applications.argoproj.io", "-o", "name")
    assert out == "customresourcedefinition.apiextensions.k8s.io/applications.argoproj.io\n"


ISSUERS = """---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: selfsigned
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: ca
  namespace: cert-manager
spec:
  isCA: true
  secretName: ca
  issuerRef:
    name: selfsigned
    kind: ClusterIssuer
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: ca
spec:
  ca:
    secretName: ca
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: letsencrypt-prod
spec:
  acme:
    server: https://acme-v02.api.letsencrypt.org/directory
"""


def test_clusterissuers(cluster):
    cluster.write("issuers.yaml", ISSUERS)
    cluster.write("cert-manager.yaml", HELMCHART)
    cluster.scan()
    rc, _out, err = cluster.run("-n", "kube-system", "wait", "--for=condition=complete", "job/helm-install-cert-manager",
                                "--timeout=10s")
    assert rc == 0, err
    # The issuers' CRDs exist now, but the deploy controller applies the file only at its next
    # scan: until then kubectl wait fails at once (issue 11, defect 1).
    start = time.monotonic()
    rc, _out, err = cluster.run("wait", "--for=condition=Ready", "clusterissuer/selfsigned", "--timeout=60s")
    assert rc == 1 and err == 'Error from server (NotFound): clusterissuers.cert-manager.io "selfsigned" not found\n'
    assert time.monotonic() - start < 30  # at once, not after --timeout
    cluster.scan()
    for name in ("selfsigned", "ca"):
        rc, out, err = cluster.run("wait", "--for=condition=Ready", "clusterissuer/" + name, "--timeout=5s")
        assert rc == 0 and "condition met" in out, err
    rc, _out, err = cluster.run("wait", "--for=condition=Ready", "clusterissuer/letsencrypt-prod", "--timeout=2s")
    assert rc == 1 and "timed out" in err


def test_scan_interval(cluster, monkeypatch):
    """K3S's deploy controller: a scan at start, then every 15 s (k3s pkg/deploy/controller.go)."""
    assert job_uid(cluster, "cert-manager") == ""  # the first scan, at 1000
    cluster.clock = 1001.0
    cluster.write("cert-manager.yaml", HELMCHART)
    cluster.clock = 1012.0  # (the clock runs on in real time while kubectl starts: a margin)
    assert job_uid(cluster, "cert-manager") == ""
    cluster.clock = 1015.1
    assert job_uid(cluster, "cert-manager")
    rc, out, _err = cluster.run("-n", "kube-system", "get", "job", "helm-install-cert-manager", "-o",
                                "jsonpath={.status.startTime}")  # (creationTimestamp: the API server's own clock)
    assert out == platform.stamp(1015.0), "the job is created at the scan, not at the kubectl call"
    monkeypatch.setenv("K3S_STANDIN_SCAN_INTERVAL", "1")
    first = job_uid(cluster, "cert-manager")
    cluster.write("cert-manager.yaml", HELMCHART.replace("v1.21.1", "v1.21.2"))
    cluster.clock += 1.1
    assert job_uid(cluster, "cert-manager") != first


def helm_pods(cluster: Cluster, chart: str) -> dict:
    rc, out, err = cluster.run("-n", "kube-system", "get", "jobs,pods", "-l", "helmcharts.helm.cattle.io/chart=" + chart,
                               "-o", "json")
    assert rc == 0, err
    return json.loads(out)


def test_failing_chart_restarts_in_place_then_fails_past_backoff_limit(cluster):
    """helm-controller's Job (restartPolicy OnFailure, backoffLimit 1000 or spec.backOffLimit)
    restarts its pod with the kubelet's back-off; a fault file names the failing chart."""
    (cluster.data / "server" / "standin-helm-fail").write_text("# comment\ncert-manager: chart repo unreachable\n")
    cluster.write("cert-manager.yaml", HELMCHART)
    cluster.scan()
    start = cluster.clock
    listing = helm_pods(cluster, "cert-manager")
    assert [i["kind"] for i in listing["items"]] == ["Job", "Pod"]
    job, pod = listing["items"]
    assert job["metadata"]["labels"] == {"helmcharts.helm.cattle.io/chart": "cert-manager"}
    assert pod["metadata"]["labels"]["controller-uid"] == job["metadata"]["uid"]
    assert pod["metadata"]["name"].startswith("helm-install-cert-manager-")
    assert pod["status"]["containerStatuses"][0]["state"] == {"running": {"startedAt": platform.stamp(start)}}
    # attempt 1 ends at +2, restarts at +12; attempt 2 ends at +14, restarts at +34.
    for offset, restarts, state in ((2, 0, "waiting"), (12, 1, "running"), (14, 1, "waiting"), (34, 2, "running")):
        cluster.clock = start + offset
        _job, pod = helm_pods(cluster, "cert-manager")["items"]
        container = pod["status"]["containerStatuses"][0]
        assert (container["restartCount"], list(container["state"])) == (restarts, [state]), offset
        assert container["lastState"] == {"terminated": {"exitCode": 1, "reason": "Error"}}
    # The third attempt is running: its log has just begun; --previous shows the failed one.
    rc, out, _err = cluster.run("-n", "kube-system", "logs", "job/helm-install-cert-manager")
    assert out == "helm-install: chart cert-manager (stand-in helm-controller)\n"
    rc, out, _err = cluster.run("-n", "kube-system", "logs", "job/helm-install-cert-manager", "--previous")
    assert out.splitlines()[-1] == "Error: INSTALLATION FAILED: chart repo unreachable"
    cluster.clock = start + 37  # waiting in CrashLoopBackOff: the last terminated container's log
    rc, out, _err = cluster.run("-n", "kube-system", "logs", "job/helm-install-cert-manager")
    assert out.splitlines()[-1] == "Error: INSTALLATION FAILED: chart repo unreachable"
    cluster.clock = start + 3600
    job, pod = helm_pods(cluster, "cert-manager")["items"]
    assert job["status"]["active"] == 1 and "conditions" not in job["status"]
    # With spec.backOffLimit: 2 the Job fails when its pod's restarts reach 2 and the pod is removed ...
    cluster.write("cert-manager.yaml", HELMCHART.replace("createNamespace: true", "createNamespace: true\n  backOffLimit: 2"))
    cluster.scan()
    start = cluster.clock
    cluster.clock = start + 2 + 10 + 2 + 20 - 0.5
    job, pod = helm_pods(cluster, "cert-manager")["items"]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1 and job["spec"]["backoffLimit"] == 2
    cluster.clock += 0.5
    (job,) = helm_pods(cluster, "cert-manager")["items"]
    assert [c["type"] for c in job["status"]["conditions"]] == ["FailureTarget", "Failed"]
    assert job["status"]["failed"] == 1
    # ... and kubectl wait --for=condition=complete still waits to its timeout, as kubectl does.
    before = cluster.clock
    rc, _out, err = cluster.run("-n", "kube-system", "wait", "--for=condition=complete",
                                "job/helm-install-cert-manager", "--timeout=20s")
    assert rc == 1 and "timed out" in err and cluster.clock >= before + 20


def test_workloads_roll_out_over_time(cluster, monkeypatch):
    monkeypatch.setenv("K3S_STANDIN_ROLLOUT_DELAY", "30")  # long against kubectl's start under load
    assert job_uid(cluster, "cert-manager") == ""  # K3S's first scan
    cluster.write("cert-manager.yaml", HELMCHART)
    cluster.scan()
    rc, _out, err = cluster.run("-n", "kube-system", "logs", "job/helm-install-cert-manager", "-p")
    assert rc == 1 and 'previous terminated container "helm" in pod "helm-install-cert-manager-' in err
    cluster.clock += 2  # the job completes; the workloads start rolling out
    rc, out, _err = cluster.run("-n", "cert-manager", "get", "deployment", "cert-manager", "-o", "json")
    deployment = json.loads(out)
    assert deployment["status"] == {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                    "unavailableReplicas": 1}
    rc, out, err = cluster.run("-n", "cert-manager", "rollout", "status", "deployment/cert-manager", "--timeout=1s")
    assert rc == 1 and err == "error: timed out waiting for the condition\n"
    assert out == 'Waiting for deployment "cert-manager" rollout to finish: 0 of 1 updated replicas are available...\n'
    cluster.clock += 30
    rc, out, _err = cluster.run("-n", "cert-manager", "get", "deployment", "cert-manager", "-o", "json")
    assert json.loads(out)["status"]["availableReplicas"] == 1
    # A chart upgrade rolls the workloads out again (a new generation).
    cluster.write("cert-manager.yaml", HELMCHART.replace("v1.21.1", "v1.21.2"))
    cluster.scan()
    cluster.clock += 2
    rc, out, _err = cluster.run("-n", "cert-manager", "get", "deployments", "-o",
                                "jsonpath={range .items[*]}{.metadata.generation}/{.status.availableReplicas}{\" \"}{end}")
    assert out == "2/ 2/ 2/ "


if __name__ == "__main__":
    (STANDIN / "platform_crds.py").write_text(
        '"""helm-controller CRD schemas (helm.cattle.io/v1 HelmChart, HelmChartConfig) for the K3S stand-in.\n\n'
        "GENERATED from tests/schemas/helm.cattle.io_*.yaml (descriptions dropped) by\n"
        "tests/unit/standins/test_standin_platform.py (run it as a script to rewrite this file);\n"
        'a unit test fails when this copy and tests/schemas differ.\n"""\n\nimport json\n\nSCHEMAS = json.loads(r"""\n'
        + json.dumps(crd_schemas(), indent=1, sort_keys=True) + '\n""")\n')
    print(json.dumps(sorted(crd_schemas())))


def test_namespaces(cluster):
    """kubectl get namespace: the system namespaces always, a chart's target namespace once its
    helm-install job ran (helm-controller passes createNamespace to helm), NotFound otherwise."""
    rc, out, err = cluster.run("get", "namespace", "kube-system", "-o", "name")
    assert (rc, out) == (0, "namespace/kube-system\n"), err
    rc, out, err = cluster.run("get", "namespace", "monitoring", "--ignore-not-found", "-o", "name")
    assert (rc, out) == (0, ""), err
    rc, _out, err = cluster.run("get", "ns", "monitoring")
    assert rc == 1 and 'namespaces "monitoring" not found' in err
    cluster.write("cert-manager.yaml", HELMCHART)
    cluster.scan()
    rc, _out, err = cluster.run("-n", "kube-system", "wait", "--for=condition=complete", "job/helm-install-cert-manager",
                                "--timeout=30s")
    assert rc == 0, err
    rc, out, err = cluster.run("get", "namespace", "cert-manager", "--ignore-not-found", "-o", "name")
    assert (rc, out) == (0, "namespace/cert-manager\n"), err
    rc, out, err = cluster.run("get", "namespaces", "-o", "name")
    assert rc == 0 and "namespace/cert-manager\n" in out and "namespace/default\n" in out, err
