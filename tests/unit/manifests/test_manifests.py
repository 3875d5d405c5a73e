"""Every manifest the platform roles write validates (core kinds with kubernetes-validate,
custom resources against their CRD schema, unknown kinds rejected), and says what it should."""

from __future__ import annotations

import stat
from typing import Any

import pytest
import yaml
from passlib.hash import bcrypt

import render
import schema_check

SCENARIOS = ["defaults", "prod", "prod-nginx-airgap"]
HELM_KINDS = {"HelmChart", "HelmChartConfig"}


def docs_of(result: render.Rendered) -> dict[str, list[dict[str, Any]]]:
    return {name: schema_check.load_documents(path) for name, path in result.files().items()}


def values_of(doc: dict[str, Any]) -> dict[str, Any]:
    values = yaml.safe_load(doc["spec"]["valuesContent"])
    assert isinstance(values, dict), f"{doc['metadata']['name']}: valuesContent is not a YAML mapping"
    return values


def find(result: render.Rendered, kind: str, name: str) -> dict[str, Any]:
    for docs in docs_of(result).values():
        for doc in docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name} rendered")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_validates(rendered, scenario):
    checked = []
    for name, docs in docs_of(rendered[scenario]).items():
        for doc in docs:
            how = schema_check.validate(doc)
            if doc["kind"] in HELM_KINDS:
                values_of(doc)
            checked.append((name, doc["kind"], how))
    kinds = {(k, how) for _name, k, how in checked}
    assert ("AppProject", "crd") in kinds and ("Application", "crd") in kinds
    assert ("HelmChart", "crd") in kinds and ("StorageClass", "core") in kinds and ("Ingress", "core") in kinds


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifest_files_are_private(rendered, scenario):
    files = rendered[scenario].files()
    assert files, "nothing rendered"
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_expected_files(rendered):
    assert set(rendered["prod"].files()) == {
        "traefik-config.yaml", "cert-manager.yaml", "cert-manager-issuers.yaml", "longhorn.yaml",
        "longhorn-storageclasses.yaml", "argocd.yaml", "argocd-ingress.yaml",
        "gitops-appproject.yaml", "gitops-application.yaml"}
    assert "ingress-nginx.yaml" in rendered["prod-nginx-airgap"].files()
    assert "traefik-config.yaml" not in rendered["prod-nginx-airgap"].files()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_charts_pinned_and_longhorn_aborts(rendered, scenario):
    for docs in docs_of(rendered[scenario]).values():
        for doc in docs:
            if doc["kind"] == "HelmChart":
                assert doc["spec"]["version"], doc["metadata"]["name"]
                assert doc["metadata"]["namespace"] == "kube-system"
    longhorn = find(rendered[scenario], "HelmChart", "longhorn")
    assert longhorn["spec"]["failurePolicy"] == "abort"
    assert longhorn["spec"]["version"] == "1.12.1"
    assert find(rendered[scenario], "HelmChart", "cert-manager")["spec"]["version"] == "v1.21.1"
    assert values_of(find(rendered[scenario], "HelmChart", "cert-manager"))["crds"]["enabled"] is True


def test_air_gapped_charts_use_chart_content(rendered, fake_chart_b64):
    for name in ("ingress-nginx", "cert-manager", "longhorn", "argocd"):
        spec = find(rendered["prod-nginx-airgap"], "HelmChart", name)["spec"]
        assert spec["chartContent"] == fake_chart_b64, name
        assert "repo" not in spec and "chart" not in spec, name
    assert find(rendered["prod"], "HelmChart", "argocd")["spec"]["repo"] == "https://argoproj.github.io/argo-helm"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_exactly_one_default_storage_class(rendered, scenario):
    result = rendered[scenario]
    defaults = []
    chart_values = values_of(find(result, "HelmChart", "longhorn"))
    if chart_values["persistence"]["defaultClass"]:
        defaults.append("longhorn")
    for doc in docs_of(result)["longhorn-storageclasses.yaml"]:
        if doc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true":
            defaults.append(doc["metadata"]["name"])
    assert defaults == ["longhorn"]
    retain = find(result, "StorageClass", "longhorn-retain")
    assert retain["reclaimPolicy"] == "Retain"
    assert retain["provisioner"] == "driver.longhorn.io"


def test_traefik_is_default_ingress(rendered):
    config = find(rendered["prod"], "HelmChartConfig", "traefik")
    assert config["metadata"]["namespace"] == "kube-system"
    assert values_of(config)["ingressClass"]["isDefaultClass"] is True


def test_issuers_solve_on_the_chosen_ingress_class(rendered):
    for scenario, cls in (("prod", "traefik"), ("prod-nginx-airgap", "nginx")):
        for name in ("letsencrypt-staging", "letsencrypt-prod"):
            acme = find(rendered[scenario], "ClusterIssuer", name)["spec"]["acme"]
            assert acme["solvers"][0]["http01"]["ingress"]["ingressClassName"] == cls
            assert acme["email"] == "platform@dictamesh.com"
    ca_cert = find(rendered["prod"], "Certificate", "dictamesh-ca")
    assert ca_cert["spec"]["isCA"] is True
    assert ca_cert["spec"]["issuerRef"]["name"] == "selfsigned"
    assert find(rendered["prod"], "ClusterIssuer", "dictamesh-ca")["spec"]["ca"]["secretName"] == "dictamesh-ca"


def test_argocd_ingress_behind_traefik(rendered):
    ingress = find(rendered["prod"], "Ingress", "argocd-server")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["tls"] == [{"hosts": ["argocd.dictamesh.com"], "secretName": "argocd-server-tls"}]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"] == 80
    values = values_of(find(rendered["prod"], "HelmChart", "argocd"))
    assert values["configs"]["params"]["server.insecure"] is True


def test_argocd_ingress_behind_nginx_is_the_seeds(rendered):
    ingress = find(rendered["prod-nginx-airgap"], "Ingress", "argocd-server")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/ssl-passthrough"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"] == 443
    values = values_of(find(rendered["prod-nginx-airgap"], "HelmChart", "argocd"))
    assert values["configs"]["params"]["server.insecure"] is False
    nginx = values_of(find(rendered["prod-nginx-airgap"], "HelmChart", "ingress-nginx"))
    assert nginx["controller"]["extraArgs"]["enable-ssl-passthrough"] == "true"


def test_argocd_values(rendered):
    values = values_of(find(rendered["prod"], "HelmChart", "argocd"))
    # No image override: the chart runs the Argo CD release it is built for (test_chart_values.py).
    assert "image" not in values["global"]
    secret = values["configs"]["secret"]
    assert bcrypt.verify(render.SECRETS["vault_argocd_admin_password"], secret["argocdServerAdminPassword"])
    assert not bcrypt.verify("another-password", secret["argocdServerAdminPassword"])
    assert secret["argocdServerAdminPasswordMtime"].endswith("Z")
    cm = values["configs"]["cm"]
    assert "hs.status = obj.status.health.status" in cm["resource.customizations.health.argoproj.io_Application"]
    assert cm["accounts.ci"] == "apiKey"
    assert cm["accounts.ci.enabled"] == "true"
    assert values["configs"]["rbac"]["policy.csv"] == "g, ci, role:admin"
    assert values["controller"]["metrics"]["serviceMonitor"]["enabled"] is False
    on = values_of(find(rendered["prod-nginx-airgap"], "HelmChart", "argocd"))
    assert on["controller"]["metrics"]["serviceMonitor"]["enabled"] is True
    assert on["controller"]["metrics"]["serviceMonitor"]["additionalLabels"] == {"release": "prometheus"}


def test_no_plain_password_in_any_manifest(rendered):
    for scenario in SCENARIOS:
        for path in rendered[scenario].files().values():
            assert render.SECRETS["vault_argocd_admin_password"] not in path.read_text(), path


def test_rerun_is_idempotent_and_password_change_rehashes(rendered, tmp_path):
    """Second render over the same files changes nothing (stable bcrypt hash); a new password does."""
    first = rendered["prod"]
    before = {n: p.read_text() for n, p in first.files().items()}
    again = render.render(tmp_path / "again", inventory_env="prod", manifests=first.manifests,
                          roles=["argocd", "longhorn"])
    assert again.rc == 0, again.output[-3000:]
    assert again.recap["changed"] == 0, again.output[-3000:]
    assert {n: p.read_text() for n, p in first.files().items()} == before
    changed = render.render(tmp_path / "changed", inventory_env="prod", manifests=first.manifests,
                            roles=["argocd"], extra={"vault_argocd_admin_password": "a-new-Passw0rd"}, check=True)
    assert changed.rc == 0, changed.output[-3000:]
    assert changed.recap["changed"] == 1, changed.output[-3000:]


SEED_PROJECT_SPEC = {
    "description": "DictaMesh Data Mesh Platform",
    "sourceRepos": ["https://github.com/controle-digital/dictamesh.git", "https://charts.bitnami.com/bitnami",
                    "https://strimzi.io/charts/", "https://prometheus-community.github.io/helm-charts"],
    "destinations": [{"namespace": "dictamesh-*", "server": "https://kubernetes.default.svc"},
                     {"namespace": "argocd", "server": "https://kubernetes.default.svc"}],
    "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"},
                                 {"group": "rbac.authorization.k8s.io", "kind": "ClusterRole"},
                                 {"group": "rbac.authorization.k8s.io", "kind": "ClusterRoleBinding"}],
    "namespaceResourceWhitelist": [{"group": "*", "kind": "*"}],
    "namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}, {"group": "", "kind": "LimitRange"}],
    "syncWindows": [
        {"kind": "allow", "schedule": "0 9-17 * * 1-5", "duration": "8h", "applications": ["*-prod"],
         "manualSync": True},
        {"kind": "allow", "schedule": "* * * * *", "duration": "24h", "applications": ["*-dev", "*-staging"]}],
    "orphanedResources": {"warn": True},
}


def test_gitops_project_is_the_seeds(rendered):
    project = find(rendered["prod"], "AppProject", "dictamesh")
    assert project["metadata"]["namespace"] == "argocd"
    assert project["spec"] == SEED_PROJECT_SPEC


def test_gitops_app_of_apps_is_the_seeds(rendered):
    app = find(rendered["prod"], "Application", "dictamesh-prod")
    assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    spec = app["spec"]
    assert spec["project"] == "dictamesh"
    assert spec["source"] == {"repoURL": "https://github.com/controle-digital/dictamesh.git",
                              "targetRevision": "main", "path": "infrastructure/argocd/applications/prod"}
    assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "argocd"}
    assert spec["syncPolicy"] == {
        "automated": {"prune": True, "selfHeal": True, "allowEmpty": False},
        "syncOptions": ["CreateNamespace=true"],
        "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}}}
    dev = find(rendered["defaults"], "Application", "dictamesh-dev")
    assert dev["spec"]["source"]["targetRevision"] == "develop"
