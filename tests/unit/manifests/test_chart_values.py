"""The chart values the platform roles render are checked against the charts they pin (issue 12).

For every add-on and both ingress modes (Traefik, the default, and ingress-nginx): each values
key exists in the pinned chart's values.yaml (free-form maps one level down, chart_check.FREE_FORM),
the coalesced values pass the chart's values.schema.json where it has one, the version a role
claims is the chart's appVersion, no image tag is overridden to another minor, and the Argo CD
objects of the bootstrap validate against the CRDs the pinned argo-cd chart installs.
Reference data: shared/reference/charts (see chart_check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import chart_check
import render
import schema_check

SCENARIOS = ["defaults", "prod", "prod-nginx-airgap"]
INVENTORIES = ["prod", "staging", "lab"]

# K3S's Traefik is K3S's own HelmChart; the role only adds a HelmChartConfig. Traefik chart the
# values are checked against, per K3S minor. K3S 1.34 patch releases bundle Traefik 3.3.6 (v1.34.1)
# to 3.7.x (k3s-io/docs docs/release-notes/v1.34.X.md; k3s-io/k3s release notes), the reference
# data holds chart 37.1.2 (Traefik v3.5.3) of that line. The keys the role sets
# (ingressClass.enabled, ingressClass.isDefaultClass) are in every chart of these lines.
TRAEFIK_CHART_FOR_K3S_MINOR = {"1.34": "37.1.2"}


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def role_default(role: str, var: str) -> str:
    return str(_yaml(render.REPO / "roles" / role / "defaults" / "main.yml")[var])


def spec_default(role: str, var: str) -> str:
    specs = _yaml(render.REPO / "roles" / role / "meta" / "argument_specs.yml")
    return str(specs["argument_specs"]["main"]["options"][var]["default"])


def inventory(env: str, name: str = "platform.yml") -> dict[str, Any]:
    """The inventory's values from ``name``: the shared base (group_vars/all/_common) and its own."""
    group_vars = render.REPO / "inventories" / env / "group_vars" / "all"
    return {**(_yaml(group_vars / "_common" / name) or {}), **(_yaml(group_vars / name) or {})}


def helm_objects(result: render.Rendered) -> list[dict[str, Any]]:
    out = []
    for path in result.files().values():
        for doc in schema_check.load_documents(path):
            if doc["kind"] in ("HelmChart", "HelmChartConfig"):
                out.append(doc)
    return out


def chart_of(doc: dict[str, Any], k3s_version: str) -> tuple[str, str]:
    """(chart name, chart version) a rendered HelmChart / HelmChartConfig is installed from."""
    name = doc["metadata"]["name"]
    if doc["kind"] == "HelmChartConfig":
        assert name == "traefik", f"HelmChartConfig {name}: only K3S's traefik is configured this way"
        k3s_minor = ".".join(k3s_version.lstrip("v").split(".")[:2])
        assert k3s_minor in TRAEFIK_CHART_FOR_K3S_MINOR, (
            f"K3S {k3s_version}: which Traefik chart does it bundle? Add it to TRAEFIK_CHART_FOR_K3S_MINOR "
            "(and its reference data) before changing the K3S minor")
        return "traefik", TRAEFIK_CHART_FOR_K3S_MINOR[k3s_minor]
    chart = chart_check.CHART_OF_HELMCHART[name]
    if "chart" in doc["spec"]:
        assert doc["spec"]["chart"] == chart, f"HelmChart {name} installs {doc['spec']['chart']}, expected {chart}"
    return chart, str(doc["spec"]["version"])


def k3s_version_of(scenario: str) -> str:
    if scenario == "defaults":
        return role_default("k3s_defaults", "k3s_defaults_version")
    return str(inventory("prod", "cluster.yml")["cluster_k3s_version"])


def rendered_charts(rendered, scenario) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for doc in helm_objects(rendered[scenario]):
        chart, version = chart_of(doc, k3s_version_of(scenario))
        out.append((doc["metadata"]["name"], chart, version, yaml.safe_load(doc["spec"]["valuesContent"])))
    return out


def test_every_add_on_and_ingress_mode_is_checked(rendered):
    seen = {(scenario, chart) for scenario in SCENARIOS for _n, chart, _v, _vals in rendered_charts(rendered, scenario)}
    for scenario in SCENARIOS:
        for chart in ("cert-manager", "longhorn", "argo-cd"):
            assert (scenario, chart) in seen, (scenario, chart)
    assert ("prod", "traefik") in seen and ("defaults", "traefik") in seen
    assert ("prod-nginx-airgap", "ingress-nginx") in seen


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_values_keys_exist_in_the_pinned_chart(rendered, scenario):
    problems = []
    for name, chart, version, values in rendered_charts(rendered, scenario):
        for problem in chart_check.unknown_keys(chart, values, chart_check.chart_values(chart, version)):
            problems.append(f"{name} ({chart} {version}): {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_values_pass_the_chart_schema(rendered, scenario):
    problems, checked = [], []
    for name, chart, version, values in rendered_charts(rendered, scenario):
        errors = chart_check.schema_errors(chart, version, values)
        if errors is None:
            continue
        checked.append(chart)
        problems += [f"{name} ({chart} {version}): {e}" for e in errors]
    assert not problems, "\n".join(problems)
    assert "cert-manager" in checked  # the one add-on chart with a schema in every scenario


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_values_fit_the_chart_questions(rendered, scenario):
    """Longhorn has no values.schema.json; its questions.yaml gives each value's type and choices."""
    problems, checked = [], 0
    for name, chart, version, values in rendered_charts(rendered, scenario):
        if chart_check.questions(chart, version):
            checked += 1
            problems += [f"{name} ({chart} {version}): {e}" for e in chart_check.question_errors(chart, version, values)]
    assert not problems, "\n".join(problems)
    assert checked == 1  # longhorn


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_image_tag_override_across_minors(rendered, scenario):
    problems = []
    for name, chart, version, values in rendered_charts(rendered, scenario):
        app = chart_check.app_version(chart, version)
        for path, tag in chart_check.image_tags(values):
            if chart_check.minor(tag) != chart_check.minor(app):
                problems.append(f"{name}: {path} = {tag}, but chart {chart} {version} is built for {app} "
                                "(its CRDs, RBAC and manifests)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where", ["role defaults"] + [f"inventory {e}" for e in INVENTORIES])
def test_argocd_version_is_the_chart_app_version(where):
    if where == "role defaults":
        version, chart = role_default("argocd", "argocd_version"), role_default("argocd", "argocd_chart_version")
    else:
        inv = inventory(where.split()[1])
        version, chart = str(inv["platform_argocd_version"]), str(inv["platform_argocd_chart_version"])
    app = chart_check.app_version("argo-cd", chart)
    assert chart_check.argocd_chart_app_versions()[chart] == app
    assert version == app, (f"{where}: Argo CD {version} claimed, chart argo-cd {chart} installs {app}")


def test_argocd_role_table_matches_the_chart_versions():
    """The role's chart -> Argo CD version table (checked by validate.yml) agrees with argo-helm."""
    table = _yaml(render.REPO / "roles" / "argocd" / "defaults" / "main.yml")["argocd_chart_app_versions"]
    specs = _yaml(render.REPO / "roles" / "argocd" / "meta" / "argument_specs.yml")
    assert specs["argument_specs"]["main"]["options"]["argocd_chart_app_versions"]["default"] == table
    upstream = chart_check.argocd_chart_app_versions()
    assert table, "empty table"
    for chart, app in table.items():
        assert upstream.get(str(chart)) == app, f"argo-cd chart {chart}: role says {app}, argo-helm {upstream.get(str(chart))}"
    assert role_default("argocd", "argocd_chart_version") in table


@pytest.mark.parametrize("extra,message", [
    ({"argocd_version": "v3.6.0"}, "argocd_chart_version 10.1.1 installs Argo CD v3.4.4 and argocd_version is v3.6.0"),
    ({"argocd_chart_version": "9.9.9"}, "installs Argo CD (unknown: add the appVersion of that chart to argocd_chart_app_versions)"),
    ({"argocd_values": {"global": {"image": {"tag": "v3.6.0"}}}}, "(global.image.tag v3.6.0) must keep the chart's minor"),
])
def test_argocd_role_refuses_a_version_its_chart_does_not_install(tmp_path, extra, message):
    result = render.render(tmp_path, inventory_env=None, roles=["argocd"], extra=extra)
    assert result.rc != 0, result.output[-2000:]
    assert message in " ".join(result.output.split()), result.output[-2000:]
    assert not list(result.manifests.glob("*.yaml")), "a manifest was written before the check"


@pytest.mark.parametrize("where", ["role defaults"] + [f"inventory {e}" for e in INVENTORIES])
def test_other_add_ons_claim_their_chart_app_version(where):
    if where == "role defaults":
        cert_manager, longhorn = role_default("cert_manager", "cert_manager_version"), role_default("longhorn", "longhorn_version")
        nginx = role_default("ingress", "ingress_nginx_chart_version")
    else:
        inv = inventory(where.split()[1])
        cert_manager, longhorn = str(inv["platform_cert_manager_version"]), str(inv["platform_longhorn_version"])
        nginx = str(inv["platform_ingress_nginx_chart_version"])
    # cert-manager and Longhorn pins name the chart version, which is the app version they claim.
    assert chart_check.app_version("cert-manager", cert_manager) == cert_manager
    assert chart_check.app_version("longhorn", longhorn).lstrip("v") == longhorn.lstrip("v")
    assert chart_check.chart_yaml("ingress-nginx", nginx)["version"] == nginx


def _newest(chart: str) -> str:
    versions = [p.name for p in (chart_check.CHARTS_DIR / chart).iterdir() if p.is_dir()]
    return max(versions, key=lambda v: tuple(int(x) for x in v.lstrip("v").split(".")))


@pytest.mark.parametrize("role,var,chart", [
    ("argocd", "argocd_chart_version", "argo-cd"),
    ("cert_manager", "cert_manager_version", "cert-manager"),
    ("longhorn", "longhorn_version", "longhorn"),
    ("ingress", "ingress_nginx_chart_version", "ingress-nginx"),
])
def test_pins_are_the_newest_reference_charts_and_agree_everywhere(role, var, chart):
    platform_var = {"argocd_chart_version": "platform_argocd_chart_version",
                    "ingress_nginx_chart_version": "platform_ingress_nginx_chart_version"}.get(var, "platform_" + var)
    pins = {"defaults/main.yml": role_default(role, var), "meta/argument_specs.yml": spec_default(role, var)}
    pins.update({f"inventories/{e}": str(inventory(e)[platform_var]) for e in INVENTORIES})
    assert len(set(pins.values())) == 1, f"{var} differs: {pins}"
    assert pins["defaults/main.yml"] == _newest(chart), f"{chart}: newest reference chart is {_newest(chart)}"


def test_argocd_versions_agree_everywhere():
    pins = {"defaults/main.yml": role_default("argocd", "argocd_version"),
            "meta/argument_specs.yml": spec_default("argocd", "argocd_version")}
    pins.update({f"inventories/{e}": str(inventory(e)["platform_argocd_version"]) for e in INVENTORIES})
    assert len(set(pins.values())) == 1, f"argocd_version differs: {pins}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_bootstrap_objects_validate_against_the_pinned_chart_crds(rendered, scenario, tmp_path):
    """AppProject and Application of the bootstrap (what gitops_bootstrap sends to the Argo CD API)
    against the CRDs the pinned argo-cd chart installs, not only the 3.6 ones in tests/schemas."""
    argocd = [v for _n, c, v, _vals in rendered_charts(rendered, scenario) if c == "argo-cd"]
    assert len(argocd) == 1
    crds = chart_check.chart_crds("argo-cd", argocd[0], tmp_path / "crds",
                                  ("crd-application.yaml", "crd-appproject.yaml"))
    files = rendered[scenario].files()
    kinds = []
    for name in ("gitops-appproject.yaml", "gitops-application.yaml"):
        for doc in schema_check.load_documents(files[name]):
            assert schema_check.validate(doc, schema_dir=crds) == "crd", name
            kinds.append(doc["kind"])
    assert sorted(kinds) == ["AppProject", "Application"]
