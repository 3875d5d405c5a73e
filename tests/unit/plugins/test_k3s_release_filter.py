"""plugins/filter/k3s_release.py: K3S release names, the allowed upgrade step, the release
architecture, the cluster token check."""

from __future__ import annotations

import pytest

from ansible_collections.dictamesh.k3s_gitops.plugins.filter import k3s_release


@pytest.mark.parametrize(("value", "name"), [
    ("k3s version v1.34.1+k3s1 (24fc436e)\ngo version go1.24.6\n", "v1.34.1+k3s1"),
    ("v1.35.0+k3s2", "v1.35.0+k3s2"),
    ("v1.34.1-k3s1", ""),
    ("1.34.1", ""),
    ("", ""),
    (None, ""),
    (135, ""),
])
def test_k3s_version_finds_the_release_name(value, name):
    assert k3s_release.k3s_version(value) == name


@pytest.mark.parametrize("value", ["v1.34.1+k3s1", "v2.0.10+k3s12"])
def test_k3s_version_equal_to_its_input_means_an_exact_name(value):
    assert k3s_release.k3s_version(value) == value


@pytest.mark.parametrize("value", ["xv1.34.1+k3s1", "v1.34.1+k3s1 ", "v1.34+k3s1", "latest"])
def test_k3s_version_differs_from_anything_else(value):
    assert k3s_release.k3s_version(value) != value


@pytest.mark.parametrize(("target", "running", "binary"), [
    ("v1.34.1+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1"),   # nothing to do
    ("v1.34.2+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1"),   # patch
    ("v1.34.1+k3s2", "v1.34.1+k3s1", "v1.34.1+k3s1"),   # k3s revision
    ("v1.35.0+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1"),   # next minor
    ("v1.35.0+k3s1", "v1.34.1+k3s1", "v1.35.0+k3s1"),   # binary already swapped, node not restarted
    ("v1.35.0+k3s1", "v1.35.0+k3s1", "v1.34.1+k3s1"),   # binary put back by a rollback
    ("v1.34.2+k3s1", "v1.34.3+k3s1", "v1.34.1+k3s1"),   # older than running, but the node's minor
    ("v1.35.0+k3s1", "v1.34.1+k3s1", ""),               # binary version unknown
    ("v1.35.0+k3s1", "", ""),                           # nothing known to compare with
])
def test_allowed_steps(target, running, binary):
    assert k3s_release.k3s_upgrade_problem(target, running, binary) == ""


@pytest.mark.parametrize(("target", "running", "binary", "problem"), [
    ("v1.34.0+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1", "is older: downgrades are not supported"),
    ("v1.34.1+k3s1", "v1.34.1+k3s2", "v1.34.1+k3s2", "is older: downgrades"),
    ("v1.33.5+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1", "is older"),
    ("v1.36.0+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1", "skips a minor version: upgrade one minor at a time "
                                                     "(e.g. to the latest v1.35 patch first)"),
    # the older of the two counts: a node whose binary is still 1.33 may not go to 1.35
    ("v1.35.0+k3s1", "v1.34.1+k3s1", "v1.33.5+k3s1", "latest v1.34 patch"),
    ("v2.0.0+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1", "skips a minor version"),
    # running a newer minor than its binary: the target may not be older than what runs
    ("v1.34.5+k3s1", "v1.35.0+k3s1", "v1.34.1+k3s1", "is older than the running v1.35.0+k3s1"),
    ("latest", "v1.34.1+k3s1", "v1.34.1+k3s1", "is not a K3S release name"),
])
def test_refused_steps(target, running, binary, problem):
    assert problem in k3s_release.k3s_upgrade_problem(target, running, binary)


def test_upgrade_problem_reads_versions_inside_text():
    assert k3s_release.k3s_upgrade_problem("v1.36.0+k3s1", "v1.34.1+k3s1",
                                           "k3s version v1.34.1+k3s1 (abc)\n") != ""


@pytest.mark.parametrize(("machine", "override", "arch"), [
    ("x86_64", "", "amd64"),
    ("aarch64", "", "arm64"),
    ("amd64", "", "amd64"),
    ("arm64", None, "arm64"),
    ("riscv64", "", "riscv64"),       # unknown: returned for the caller's check to refuse
    ("x86_64", "arm64", "arm64"),     # the user's choice wins
    ("x86_64", " riscv64 ", "riscv64"),
    (None, "", ""),
])
def test_release_arch(machine, override, arch):
    assert k3s_release.release_arch(machine, override) == arch


@pytest.mark.parametrize(("token", "problem"), [
    (None, "undefined"),
    (12345, "not a string"),
    (["a"], "not a string"),
    ("", "empty"),
    ("  \n", "empty"),
    ("CHANGE-ME-cluster-token", "still the CHANGE-ME placeholder"),
    ("changeme", "still the CHANGE-ME placeholder"),
    ("my change_me token", "still the CHANGE-ME placeholder"),
    ("K10a8f0b3c7d4e5f60718293a4b5c6d7e8::server:abc", ""),
    ("a-real-token-0123456789", ""),
])
def test_token_problem(token, problem):
    assert k3s_release.k3s_token_problem(token) == problem


def test_token_problem_never_contains_the_token():
    token = "CHANGE-ME-secret-value-42"
    assert "secret-value" not in k3s_release.k3s_token_problem(token)


def test_filters_are_registered():
    assert set(k3s_release.FilterModule().filters()) == {
        "k3s_token_problem", "k3s_upgrade_problem", "k3s_version", "release_arch"}
