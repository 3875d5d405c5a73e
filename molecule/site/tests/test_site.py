"""Whole-site checks (molecule site scenario): the platform manifests on the first server, the
stand-in helm-controller's jobs, the Argo CD CLI, and the GitOps bootstrap objects as stored by
the Argo CD API stand-in on the controller.

K3S, its helm-controller, the Argo CD API and the Argo CD CLI are stand-ins here
(tests/standins/): what is checked is what the roles hand to them (manifests, API requests).
The expected AppProject and app-of-apps are the seed's (shared/seed/cicd-argocd.md), written
out below; the one deliberate difference is the app-of-apps repoURL, which uses the
AppProject's repository (the seed names github.com/dictamesh/dictamesh.git there, which the
seed's own AppProject would refuse).
"""
from __future__ import annotations

import json
import os
import stat
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import testinfra.host
import yaml

K3S = "/usr/local/bin/k3s"
MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
REPO = "https://github.com/controle-digital/dictamesh.git"
# The files the platform roles write (K3S's own bundled manifests may sit beside them).
PLATFORM_MANIFESTS = {
    "traefik-config.yaml", "cert-manager.yaml", "cert-manager-issuers.yaml", "longhorn.yaml",
    "longhorn-storageclasses.yaml", "argocd.yaml", "argocd-ingress.yaml",
}
# The charts whose helm-install job must have completed (traefik is K3S's bundled chart,
# configured by traefik-config.yaml).
CHARTS = {"traefik", "cert-manager", "longhorn", "argocd"}

SEED_PROJECT_SPEC: dict[str, Any] = {
    "description": "DictaMesh Data Mesh Platform",
    "sourceRepos": [
        REPO,
        "https://charts.bitnami.com/bitnami",
        "https://strimzi.io/charts/",
        "https://prometheus-community.github.io/helm-charts",
    ],
    "destinations": [
        {"namespace": "dictamesh-*", "server": "https://kubernetes.default.svc"},
        {"namespace": "argocd", "server": "https://kubernetes.default.svc"},
    ],
    "clusterResourceWhitelist": [
        {"group": "", "kind": "Namespace"},
        {"group": "rbac.authorization.k8s.io", "kind": "ClusterRole"},
        {"group": "rbac.authorization.k8s.io", "kind": "ClusterRoleBinding"},
    ],
    "namespaceResourceWhitelist": [{"group": "*", "kind": "*"}],
    "namespaceResourceBlacklist": [
        {"group": "", "kind": "ResourceQuota"},
        {"group": "", "kind": "LimitRange"},
    ],
    "syncWindows": [
        {"kind": "allow", "schedule": "0 9-17 * * 1-5", "duration": "8h",
         "applications": ["*-prod"], "manualSync": True},
        {"kind": "allow", "schedule": "* * * * *", "duration": "24h",
         "applications": ["*-dev", "*-staging"]},
    ],
    "orphanedResources": {"warn": True},
}

SEED_APP_SPEC: dict[str, Any] = {
    "project": "dictamesh",
    "source": {
        "repoURL": REPO,
        "targetRevision": "develop",
        "path": "infrastructure/argocd/applications/dev",
    },
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
    "syncPolicy": {
        "automated": {"prune": True, "selfHeal": True, "allowEmpty": False},
        "syncOptions": ["CreateNamespace=true"],
        "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
    },
}


def hostvars(host: testinfra.host.Host) -> dict[str, Any]:
    return host.ansible.get_variables()


def is_first_server(host: testinfra.host.Host) -> bool:
    variables = hostvars(host)
    return variables["inventory_hostname"] == variables["groups"]["k3s_servers"][0]


@pytest.fixture(name="first_server")
def fixture_first_server(host: testinfra.host.Host) -> testinfra.host.Host:
    if not is_first_server(host):
        pytest.skip("checked once, on the first server")
    return host


def kubectl_json(host: testinfra.host.Host, *args: str) -> dict[str, Any]:
    return json.loads(host.check_output(" ".join([K3S, "kubectl", *args, "-o", "json"])))


def standin(path: str) -> Any:
    ready = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "argocd-standin" / "ready.json"
    port = json.loads(ready.read_text(encoding="utf-8"))["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_standin/{path}", timeout=10) as answer:
        return json.load(answer)


def manifest_docs(host: testinfra.host.Host) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in sorted(PLATFORM_MANIFESTS):
        docs.extend(d for d in yaml.safe_load_all(host.file(f"{MANIFESTS}/{name}").content_string) if d)
    return docs


def test_platform_manifests_private(first_server: testinfra.host.Host) -> None:
    present = set(first_server.file(MANIFESTS).listdir())
    assert PLATFORM_MANIFESTS <= present, sorted(PLATFORM_MANIFESTS - present)
    for name in PLATFORM_MANIFESTS:
        manifest = first_server.file(f"{MANIFESTS}/{name}")
        assert manifest.is_file and manifest.user == "root" and manifest.mode == 0o600, name


def test_manifests_only_on_first_server(host: testinfra.host.Host) -> None:
    if is_first_server(host):
        return
    for name in PLATFORM_MANIFESTS:
        assert not host.file(f"{MANIFESTS}/{name}").exists, name


def test_helm_charts_installed(first_server: testinfra.host.Host) -> None:
    """Every HelmChart (and the traefik HelmChartConfig) accepted: its helm-install job completed."""
    docs = manifest_docs(first_server)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("HelmChartConfig", "traefik") in kinds
    charts = {d["metadata"]["name"] for d in docs if d["kind"] == "HelmChart"}
    assert charts == CHARTS - {"traefik"}
    for name in sorted(CHARTS):
        job = kubectl_json(first_server, "-n", "kube-system", "get", "job", f"helm-install-{name}")
        conditions = {c["type"]: c["status"] for c in job["status"].get("conditions", [])}
        assert job["status"].get("succeeded") == 1 and conditions.get("Complete") == "True", (name, job["status"])


def test_longhorn_chart_aborts_on_failure(first_server: testinfra.host.Host) -> None:
    docs = [d for d in manifest_docs(first_server) if d["kind"] == "HelmChart" and d["metadata"]["name"] == "longhorn"]
    assert docs and docs[0]["spec"]["failurePolicy"] == "abort"


def test_k3s_config_disables_local_path(first_server: testinfra.host.Host) -> None:
    config = yaml.safe_load(first_server.file("/etc/rancher/k3s/config.yaml").content_string)
    assert "local-storage" in config.get("disable", [])
    assert "traefik" not in config.get("disable", [])


def test_storage_classes(first_server: testinfra.host.Host) -> None:
    listed = first_server.check_output(f"{K3S} kubectl get storageclass -o name").split()
    names = {entry.split("/", 1)[1] for entry in listed}
    assert {"longhorn", "longhorn-retain"} <= names and "local-path" not in names, names
    classes = {name: kubectl_json(first_server, "get", "storageclass", name) for name in names}
    assert classes["longhorn-retain"]["reclaimPolicy"] == "Retain"
    assert classes["longhorn"]["reclaimPolicy"] == "Delete"
    defaults = [n for n, c in classes.items()
                if (c["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert defaults == ["longhorn"]


def test_ca_issuer_ready(first_server: testinfra.host.Host) -> None:
    issuer = kubectl_json(first_server, "get", "clusterissuer", "dictamesh-ca")
    ready = [c for c in issuer["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    names = {d["metadata"]["name"] for d in manifest_docs(first_server) if d["kind"] == "ClusterIssuer"}
    assert not any("letsencrypt" in n for n in names), names


def test_initial_admin_secret_removed(first_server: testinfra.host.Host) -> None:
    cmd = first_server.run(f"{K3S} kubectl -n argocd get secret argocd-initial-admin-secret -o name")
    assert cmd.rc != 0 and "NotFound" in cmd.stderr, (cmd.rc, cmd.stdout, cmd.stderr)


def test_admin_password_only_hashed(first_server: testinfra.host.Host) -> None:
    password = hostvars(first_server)["platform_argocd_admin_password"]
    text = first_server.file(f"{MANIFESTS}/argocd.yaml").content_string
    assert password not in text
    assert "argocdServerAdminPassword: $2" in text or "argocdServerAdminPassword: '$2" in text


def test_argocd_cli(host: testinfra.host.Host) -> None:
    """The CLI stand-in installed on every server, byte for byte the checksum-verified asset."""
    if "k3s_servers" not in hostvars(host)["group_names"]:
        assert not host.file("/usr/local/bin/argocd").exists
        return
    cli = host.file("/usr/local/bin/argocd")
    assert cli.is_file and cli.mode == 0o755 and cli.user == "root"
    assert host.check_output("/usr/local/bin/argocd version --client --short") == "argocd: v3.4.4+standin"
    sums = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "argocd-cli" / "cli_checksums.txt"
    expected = dict(reversed(line.split()) for line in sums.read_text(encoding="utf-8").splitlines())
    assert cli.sha256sum == expected["argocd-linux-amd64"]


def test_bootstrap_project_as_seed(first_server: testinfra.host.Host) -> None:
    projects = standin("state")["projects"]
    assert set(projects) == {"default", "dictamesh"}
    project = projects["dictamesh"]
    assert project["metadata"]["name"] == "dictamesh"
    assert project["spec"] == SEED_PROJECT_SPEC


def test_bootstrap_app_of_apps_as_seed(first_server: testinfra.host.Host) -> None:
    apps = standin("state")["applications"]
    assert set(apps) == {"dictamesh-dev"}
    app = apps["dictamesh-dev"]
    assert app["metadata"]["name"] == "dictamesh-dev"
    assert app["metadata"].get("namespace", "argocd") == "argocd"
    assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert app["spec"] == SEED_APP_SPEC


def test_bootstrap_repository(first_server: testinfra.host.Host) -> None:
    variables = hostvars(first_server)
    repos = standin("state")["repositories"]
    assert set(repos) == {REPO}
    repo = repos[REPO]
    assert repo["type"] == "git"
    assert repo["username"] == variables["gitops_repo_username"]
    assert repo["password"] == variables["gitops_repo_password"]


def test_bootstrap_no_contract_violation_no_sync(first_server: testinfra.host.Host) -> None:
    assert standin("violations")["violations"] == []
    requests = standin("requests")["requests"]
    assert requests, "the bootstrap never reached the Argo CD stand-in"
    assert all(r["content_type"] == "application/json" for r in requests if r["method"] != "GET")
    assert not any(r["path"].endswith("/sync") for r in requests), "gitops_sync is false: no sync expected"


def test_kubeconfig_on_controller(first_server: testinfra.host.Host) -> None:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "kubeconfig.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"server: https://{hostvars(first_server)['node_ip']}:6443\n" in path.read_text(encoding="utf-8")


def test_bootstrap_objects_written_once(first_server: testinfra.host.Host) -> None:
    """Idempotence seen from Argo CD: converge wrote each object once, the second run nothing."""
    writes: dict[str, int] = {}
    for request in standin("requests")["requests"]:
        if request["method"] == "GET" or request["path"] == "/api/v1/session":
            continue
        kind = request["path"].split("/")[3]
        writes[kind] = writes.get(kind, 0) + 1
    assert writes == {"repositories": 1, "projects": 1, "applications": 1}, writes
