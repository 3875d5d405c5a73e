"""The platform roles' waits, run by ansible-playbook on localhost against the K3S stand-in's
platform module (tests/standins/k3s/standin/platform.py) as kubectl (issue 11, defects 1 and 5):

* helm_chart reports a chart whose helm-install pod keeps failing promptly, with its log, instead
  of waiting for a Failed condition that helm-controller's job (backoffLimit 1000) never reaches;
* cert_manager's ClusterIssuers are waited for until they exist: K3S applies the manifest at its
  next scan (every 15 s), and `kubectl wait` on a missing object fails at once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
STANDIN = REPO / "tests" / "standins" / "k3s" / "standin"
COLLECTIONS = REPO / ".collections"
SHIM = """import importlib.util
import sys
sys.path.append({standin!r})
spec = importlib.util.spec_from_file_location("standin_platform", {standin!r} + "/platform.py")
platform = importlib.util.module_from_spec(spec)
spec.loader.exec_module(platform)
sys.exit(platform.kubectl(sys.argv[1:], {data!r}, {config!r}))
"""
CHART = """apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: {name}
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


class Site:
    """A first server's data dir, and ansible-playbook with the stand-in as kubectl."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.data = root / "k3s"
        self.manifests = self.data / "server" / "manifests"
        self.manifests.mkdir(parents=True)
        self.config = root / "config.yaml"
        self.config.write_text("{}\n")
        self.shim = root / "kubectl.py"
        self.shim.write_text(SHIM.format(standin=str(STANDIN), data=str(self.data), config=str(self.config)))
        self.kubectl_cmd = "%s %s" % (sys.executable, self.shim)
        self.root = root
        self.env = dict(os.environ, **env)
        for name in ("K3S_STANDIN_SCAN_INTERVAL", "K3S_STANDIN_HELM_DELAY", "K3S_STANDIN_ROLLOUT_DELAY"):
            if name not in env:
                self.env.pop(name, None)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(self.shim), *args], capture_output=True, text=True,
                              env=self.env, timeout=60, check=False)

    def play(self, tasks: str, extra: dict) -> tuple[subprocess.CompletedProcess, float]:
        link = COLLECTIONS / "ansible_collections" / "dictamesh" / "k3s_gitops"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("../../..")
        playbook = self.root / "play.yml"
        playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n" + tasks)
        extra_file = self.root / "extra.json"
        extra_file.write_text(json.dumps(dict(extra, ansible_python_interpreter=sys.executable)))
        env = dict(self.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        start = time.monotonic()
        result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c",
                                 "local", str(playbook), "-e", "@%s" % extra_file], capture_output=True, text=True,
                                env=env, timeout=300, check=False)
        return result, time.monotonic() - start

    def helm_chart(self, name: str, **extra) -> tuple[subprocess.CompletedProcess, float]:
        tasks = "    - ansible.builtin.include_role:\n        name: dictamesh.k3s_gitops.helm_chart\n"
        return self.play(tasks, dict({
            "helm_chart_name": name, "helm_chart_manifest_content": CHART.format(name=name),
            "helm_chart_manifests_dir": str(self.manifests), "helm_chart_manifest_owner": "root",
            "helm_chart_kubectl": self.kubectl_cmd, "helm_chart_poll_interval": 1}, **extra))


def test_failing_chart_reported_with_its_log_before_the_timeout(tmp_path):
    # The scan interval is shortened here only because the job's failure report is under test;
    # test_clusterissuers_waited_for_until_the_scan_applies_them keeps K3S's 15 s.
    site = Site(tmp_path, {"K3S_STANDIN_SCAN_INTERVAL": "1", "K3S_STANDIN_HELM_DELAY": "1"})
    (site.data / "server" / "standin-helm-fail").write_text("demo: chart demo cannot be pulled (test fault)\n")
    assert site.kubectl("get", "crd").returncode == 0  # K3S is running
    result, seconds = site.helm_chart("demo", helm_chart_timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "job kube-system/helm-install-demo failed: its pod failed 2 times" in output, output[-3000:]
    assert "Error: INSTALLATION FAILED: chart demo cannot be pulled (test fault)" in output
    # Two failed attempts (1 s each, 10 s back-off between them), not the 60 s timeout.
    assert seconds < 45, seconds


def test_chart_waits_for_job_and_rollouts_and_reruns_unchanged(tmp_path):
    site = Site(tmp_path, {"K3S_STANDIN_SCAN_INTERVAL": "1", "K3S_STANDIN_HELM_DELAY": "1",
                           "K3S_STANDIN_ROLLOUT_DELAY": "3"})
    assert site.kubectl("get", "crd").returncode == 0
    rollouts = [{"namespace": "cert-manager", "kind": "deployment", "name": "cert-manager"}]
    result, _seconds = site.helm_chart("cert-manager", helm_chart_timeout=60, helm_chart_rollouts=rollouts)
    assert result.returncode == 0, result.stdout[-3000:]
    available = site.kubectl("-n", "cert-manager", "get", "deployment", "cert-manager", "-o",
                             "jsonpath={.status.availableReplicas}")
    assert available.stdout == "1", "the role returned before the rollout finished"
    result, _seconds = site.helm_chart("cert-manager", helm_chart_timeout=60, helm_chart_rollouts=rollouts)
    assert result.returncode == 0 and "changed=0" in result.stdout, result.stdout[-3000:]


def test_rollout_that_does_not_finish_fails_with_its_state(tmp_path):
    site = Site(tmp_path, {"K3S_STANDIN_SCAN_INTERVAL": "1", "K3S_STANDIN_HELM_DELAY": "1",
                           "K3S_STANDIN_ROLLOUT_DELAY": "600"})
    assert site.kubectl("get", "crd").returncode == 0
    rollouts = [{"namespace": "cert-manager", "kind": "deployment", "name": "cert-manager"}]
    result, _seconds = site.helm_chart("cert-manager", helm_chart_timeout=5, helm_chart_rollouts=rollouts)
    assert result.returncode != 0
    assert "cert-manager/deployment/cert-manager: 0 of 1 updated replicas are available" in result.stdout, \
        result.stdout[-3000:]


def test_clusterissuers_waited_for_until_the_scan_applies_them(tmp_path):
    site = Site(tmp_path, {"K3S_STANDIN_HELM_DELAY": "0.5"})  # K3S's 15 s scan interval
    (site.manifests / "cert-manager.yaml").write_text(CHART.format(name="cert-manager"))
    assert site.kubectl("get", "crd").returncode == 0  # K3S starts: its first scan applies the chart
    time.sleep(1)
    crd = site.kubectl("get", "crd", "clusterissuers.cert-manager.io", "-o", "name")
    assert crd.returncode == 0, crd.stderr  # cert-manager is installed, as when the role writes its issuers
    tasks = ("    - ansible.builtin.include_role:\n        name: dictamesh.k3s_gitops.cert_manager\n"
             "        tasks_from: issuers.yml\n")
    result, seconds = site.play(tasks, {
        "cert_manager_kubectl": site.kubectl_cmd, "cert_manager_manifests_dir": str(site.manifests),
        "cert_manager_letsencrypt_enabled": False, "cert_manager_wait_timeout": 40})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert seconds < 40
    ready = site.kubectl("get", "clusterissuer", "dictamesh-ca", "-o", "jsonpath={.status.conditions[0].status}")
    assert ready.stdout == "True"
