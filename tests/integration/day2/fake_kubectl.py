"""A kubectl for the rotation test on the controller: the argocd-server Service and
argocd-cmd-params-cm of one ingress mode, and helm-controller applying the argo-cd HelmChart.

Not a stand-in of K3S (that is tests/standins/k3s/): only what rotate_argocd_admin.yml asks kubectl
on the first server. Configuration: the JSON file named by $FAKE_KUBECTL_CONFIG with
``manifests_dir``, ``standin_url`` (the Argo CD API stand-in, no base path), ``cluster_ip``,
``http_port`` / ``https_port`` (the stand-in's port for the mode's scheme) and ``insecure``.

When the HelmChart ``argocd`` in ``manifests_dir`` changes, its job gets a new uid and the chart's
``configs.secret.argocdServerAdminPassword`` / ``argocdServerAdminPasswordMtime`` reach the Argo CD
stand-in as argocd-secret's ``admin.password`` / ``admin.passwordMtime`` (argo-helm
charts/argo-cd/templates/argocd-configs/argocd-secret.yaml, chart 10.1.1). Anything else it is asked
is an error, so a new kubectl call in the playbook is noticed.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import sys
import time
import urllib.request
from pathlib import Path

import yaml


def config() -> dict:
    return json.loads(Path(os.environ["FAKE_KUBECTL_CONFIG"]).read_text(encoding="utf-8"))


def chart_values(cfg: dict) -> tuple[str, dict]:
    path = Path(cfg["manifests_dir"]) / "argocd.yaml"
    if not path.exists():
        return "", {}
    text = path.read_text(encoding="utf-8")
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("kind") == "HelmChart":
            return text, yaml.safe_load(doc["spec"].get("valuesContent") or "") or {}
    return text, {}


def apply_chart(cfg: dict) -> str:
    """helm-controller: the job uid of the current manifest; argocd-secret to the API stand-in."""
    text, values = chart_values(cfg)
    if not text:
        return ""
    secret = (values.get("configs") or {}).get("secret") or {}
    body = json.dumps({"passwordHash": secret.get("argocdServerAdminPassword") or "",
                       "passwordMtime": secret.get("argocdServerAdminPasswordMtime") or ""}).encode()
    req = urllib.request.Request(cfg["standin_url"] + "/_standin/accounts/admin", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the stand-in's self-signed certificate
    with urllib.request.urlopen(req, timeout=5, context=context):
        pass
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# the argo-cd chart's workloads the argocd role waits for (roles/argocd/vars/main.yml argocd__rollouts)
ARGOCD_WORKLOADS = [("Deployment", "argocd-server"), ("Deployment", "argocd-repo-server"),
                    ("Deployment", "argocd-redis"), ("StatefulSet", "argocd-application-controller")]


def job(cfg: dict) -> dict:
    """The helm-install job of the current manifest ({} without one). helm-controller makes it after
    K3S applied the file, so it is not older than the file: creationTimestamp is the file's mtime
    (the role's re-run skip compares the two: roles/helm_chart/vars/main.yml)."""
    uid = apply_chart(cfg)
    if not uid:
        return {}
    mtime = (Path(cfg["manifests_dir"]) / "argocd.yaml").stat().st_mtime
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    return {"kind": "Job", "metadata": {"name": "helm-install-argocd", "uid": uid, "creationTimestamp": created},
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}


def rolled_out(kind: str, name: str) -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": "argocd", "generation": 1},
            "spec": {"replicas": 1}, "status": {
                "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                "availableReplicas": 1, "currentReplicas": 1, "currentRevision": "r1", "updateRevision": "r1",
                "desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberAvailable": 1, "numberReady": 1}}


def main(argv: list) -> int:
    cfg = config()
    args = [a for a in argv if a != "kubectl"]
    namespace = ""
    if args[:1] == ["-n"]:
        namespace, args = args[1], args[2:]
    with open(Path(cfg["manifests_dir"]).parent / "kubectl.log", "a", encoding="utf-8") as log:
        log.write(json.dumps([namespace] + args) + "\n")
    verb = args[0] if args else ""
    if verb == "get" and args[1:3] == ["service", "argocd-server"] and namespace == "argocd":
        print(json.dumps({"kind": "Service", "metadata": {"name": "argocd-server", "namespace": "argocd"},
                          "spec": {"clusterIP": cfg["cluster_ip"], "ports": [
                              {"name": "http", "port": cfg["http_port"], "targetPort": 8080},
                              {"name": "https", "port": cfg["https_port"], "targetPort": 8080}]}}))
        return 0
    if verb == "get" and args[1:3] == ["configmap", "argocd-cmd-params-cm"] and args[-2:] == ["-o", "json"]:
        # the argo-cd chart always makes it; server.insecure as configs.params sets it
        print(json.dumps({"kind": "ConfigMap", "apiVersion": "v1",
                          "metadata": {"name": "argocd-cmd-params-cm", "namespace": namespace},
                          "data": {"server.insecure": "true" if cfg["insecure"] else "false"}}))
        return 0
    if verb == "get" and args[1:3] == ["job", "helm-install-argocd"]:
        current = job(cfg)
        if "-o" in args and args[args.index("-o") + 1] == "json":
            if current:
                print(json.dumps(current))
            return 0
        sys.stdout.write(current.get("metadata", {}).get("uid", ""))
        return 0
    if verb == "get" and args[1] == "jobs,pods" and "helmcharts.helm.cattle.io/chart=argocd" in args:
        current = job(cfg)
        print(json.dumps({"kind": "List", "apiVersion": "v1", "items": [current] if current else []}))
        return 0
    if verb == "wait" and "job/helm-install-argocd" in args:
        apply_chart(cfg)
        return 0
    if verb == "rollout" and args[1] == "status":
        return 0
    if verb == "get" and args[1] == "deployments,daemonsets,statefulsets" and "json" in args and namespace == "argocd":
        print(json.dumps({"kind": "List", "apiVersion": "v1", "items": [
            rolled_out(kind, name) for kind, name in ARGOCD_WORKLOADS]}))
        return 0
    if verb == "get" and "--ignore-not-found" in args and args[1] in ("secret", "crd", "namespace"):
        return 0  # no initial admin secret, no Prometheus operator, no dashboard namespace
    sys.stderr.write("fake kubectl: unexpected call: %s\n" % " ".join(argv))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
