"""The validator itself rejects what the API server would (so a pass above means something)."""

from __future__ import annotations

import pytest

import schema_check

GOOD_ISSUER = {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}


def test_good_custom_resource_passes():
    assert schema_check.validate(GOOD_ISSUER) == "crd"


def test_kind_without_schema_fails():
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
           "metadata": {"name": "argocd-metrics", "namespace": "argocd"}, "spec": {}}
    with pytest.raises(schema_check.ManifestError, match="no schema"):
        schema_check.validate(doc)


def test_unknown_field_in_custom_resource_fails():
    doc = {**GOOD_ISSUER, "spec": {"selfSigned": {}, "selfsigned": {}}}
    with pytest.raises(schema_check.ManifestError, match="selfsigned"):
        schema_check.validate(doc)


def test_unknown_field_deep_in_helmchart_fails():
    doc = {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
           "metadata": {"name": "x", "namespace": "kube-system"},
           "spec": {"chart": "x", "failurePolicy": "abort", "valuesContents": "a: 1"}}
    with pytest.raises(schema_check.ManifestError, match="valuesContents"):
        schema_check.validate(doc)


def test_bad_enum_fails():
    doc = {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
           "metadata": {"name": "x", "namespace": "kube-system"}, "spec": {"failurePolicy": "never"}}
    with pytest.raises(schema_check.ManifestError, match="failurePolicy"):
        schema_check.validate(doc)


def test_scope_is_checked():
    with pytest.raises(schema_check.ManifestError, match="Cluster resource with"):
        schema_check.validate({**GOOD_ISSUER, "metadata": {"name": "a", "namespace": "b"}})
    doc = {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(schema_check.ManifestError, match="Namespaced resource without"):
        schema_check.validate(doc)


def test_core_kind_strict():
    doc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "a"},
           "provisioner": "driver.longhorn.io", "parameters": {"numberOfReplicas": 3}}
    with pytest.raises(schema_check.ManifestError, match="numberOfReplicas"):
        schema_check.validate(doc)


def test_unknown_metadata_field_fails():
    with pytest.raises(schema_check.ManifestError, match="labelz"):
        schema_check.validate({**GOOD_ISSUER, "metadata": {"name": "a", "labelz": {}}})
