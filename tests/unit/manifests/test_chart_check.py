"""chart_check finds what it is meant to find: a misspelt key, a wrong type, an undocumented key of
a free-form map, a schema violation, an image tag; and it refuses a chart with no reference data."""

from __future__ import annotations

from pathlib import Path

import pytest

import chart_check


def test_known_keys_pass():
    values = {"global": {"domain": "a.example"}, "configs": {"params": {"server.insecure": True},
              "cm": {"accounts.ci": "apiKey", "accounts.ci.enabled": "true", "admin.enabled": False}}}
    assert chart_check.unknown_keys("argo-cd", values, chart_check.chart_values("argo-cd", "10.1.1")) == []


@pytest.mark.parametrize("values,expected", [
    ({"global": {"domian": "a.example"}}, "global.domian: no such value"),
    ({"server": {"ingress": {"enabled": "false"}}}, "server.ingress.enabled: string given, the chart's default is a bool"),
    ({"configs": {"params": {"server.insecur": True}}}, "configs.params.server.insecur: not a documented key"),
    ({"configs": {"cm": {"acounts.ci": "apiKey"}}}, "configs.cm.acounts.ci: not a documented key"),
    ({"configs": {"cm": {"accounts.": "apiKey"}}}, "configs.cm.accounts.: not a documented key"),
    # an empty map in the chart that is not listed as free-form
    ({"server": {"podLabels": {"a": "b"}}}, "server.podLabels: an empty map in the chart, not listed"),
])
def test_mistakes_are_reported(values, expected):
    problems = chart_check.unknown_keys("argo-cd", values, chart_check.chart_values("argo-cd", "10.1.1"))
    assert any(p.startswith(expected) for p in problems), problems


def test_ingress_nginx_extra_args_are_controller_flags():
    theirs = chart_check.chart_values("ingress-nginx", "4.15.1")
    assert chart_check.unknown_keys("ingress-nginx", {"controller": {"extraArgs": {"enable-ssl-passthrough": "true"}}}, theirs) == []
    assert chart_check.unknown_keys("ingress-nginx", {"controller": {"extraArgs": {"enable-ssl-passtrough": "true"}}}, theirs)


def test_schema_errors():
    assert chart_check.schema_errors("cert-manager", "v1.21.1", {"crds": {"enabled": True, "keep": True}}) == []
    errors = chart_check.schema_errors("cert-manager", "v1.21.1", {"crds": {"enabled": "yes"}})
    assert errors and any(e.startswith("crds/enabled") for e in errors), errors
    assert chart_check.schema_errors("traefik", "37.1.2", {"ingressClass": {"isDefaultClass": "true"}})
    assert chart_check.schema_errors("longhorn", "1.12.1", {}) is None  # no schema in that chart


def test_question_errors():
    good = {"persistence": {"defaultClass": True, "defaultClassReplicaCount": 3, "reclaimPolicy": "Retain"}}
    assert chart_check.question_errors("longhorn", "1.12.1", good) == []
    bad = {"persistence": {"defaultClassReplicaCount": "3", "reclaimPolicy": "Recycle", "defaultClass": 1}}
    errors = chart_check.question_errors("longhorn", "1.12.1", bad)
    assert len(errors) == 3, errors


def test_merge_is_helms_coalescing():
    assert chart_check.merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": 3}, "d": [2]}) == {"a": {"b": 3, "c": 2}, "d": [2]}


def test_image_tags_and_app_versions():
    assert list(chart_check.image_tags({"global": {"image": {"tag": "v3.6.0"}}, "dex": {"image": {"tag": ""}}})) == [
        ("global.image.tag", "v3.6.0")]
    assert chart_check.app_version("argo-cd", "10.1.1") == "v3.4.4"
    assert chart_check.app_version("ingress-nginx", "4.15.1") == "1.15.1"
    assert chart_check.app_version("cert-manager", "v1.21.1") == "v1.21.1"
    assert chart_check.minor("v3.4.4") == (3, 4)


def test_a_chart_without_reference_data_is_an_error():
    with pytest.raises(chart_check.ReferenceMissing, match="no reference data for chart argo-cd 9.9.9"):
        chart_check.chart_values("argo-cd", "9.9.9")


def test_chart_crds_are_plain_yaml(tmp_path):
    out = chart_check.chart_crds("argo-cd", "10.1.1", tmp_path, ("crd-appproject.yaml",))
    text = (out / "crd-appproject.yaml").read_text()
    assert "{{" not in text and "kind: CustomResourceDefinition" in text


def test_the_copy_in_the_repository_is_the_shared_reference_data():
    """tests/schemas/charts is a byte-for-byte copy of shared/reference/charts (less the
    ApplicationSet CRD, which no test reads), so a fresh clone runs these tests without shared/."""
    if not chart_check.SHARED_CHARTS_DIR.is_dir():
        pytest.skip("no shared/reference/charts beside this clone")
    copied = sorted(p.relative_to(chart_check.CHARTS_DIR) for p in chart_check.CHARTS_DIR.rglob("*") if p.is_file())
    assert len(copied) > 10
    for rel in copied:
        assert (chart_check.CHARTS_DIR / rel).read_bytes() == (chart_check.SHARED_CHARTS_DIR / rel).read_bytes(), rel
    shared = {p.relative_to(chart_check.SHARED_CHARTS_DIR) for p in chart_check.SHARED_CHARTS_DIR.rglob("*") if p.is_file()}
    assert shared - set(copied) == {Path("argo-cd/10.1.1/crds/crd-applicationset.yaml")}
