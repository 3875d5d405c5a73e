"""The K3S release settings are written once, in roles/k3s_defaults (issue 13).

The pinned version, the release download URL, the k3s binary path and K3S's auto-deploy directory
(server/manifests, where the platform roles write) appear as literals only in
that role's defaults (and its argument_specs, which document them and must agree); the K3S roles
and the playbooks refer to its variables. A role that refers to them declares the dependency (else
the variable is undefined when the role runs alone), and a playbook play that does loads its
defaults with vars_files. The inventory samples pin the same release.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "k3s_defaults"
K3S_ROLES = ["k3s_install", "k3s_server", "k3s_agent", "k3s_upgrade", "k3s_uninstall", "etcd_snapshot"]
# run `k3s kubectl` on the first server (<role>_kubectl)
PLATFORM_ROLES = ["argocd", "cert_manager", "gitops_bootstrap", "helm_chart", "ingress", "longhorn"]
RELEASE_NAME = re.compile(r"v\d+\.\d+\.\d+\+k3s\d+")
RELEASE_URL = "github.com/k3s-io/k3s/releases/download"
BINARY = "/usr/local/bin/k3s"
MANIFESTS = "/var/lib/rancher/k3s/server/manifests"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _defaults() -> dict[str, Any]:
    return _yaml(ROLE / "defaults" / "main.yml")


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of a YAML/Jinja file without comments (messages and descriptions stay)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        out.append((number, line))
    return out


def _behaviour_files() -> list[Path]:
    """What runs: the roles' defaults, vars, tasks, handlers, templates, and the playbooks."""
    files = []
    for role in sorted(p.name for p in (REPO / "roles").iterdir() if p.name != "k3s_defaults"):
        for sub in ("defaults", "vars", "tasks", "handlers", "templates"):
            files += sorted((REPO / "roles" / role / sub).glob("*"))
    files += sorted((REPO / "playbooks").glob("*.yml")) + [REPO / "site.yml"]
    return [f for f in files if f.is_file()]


def test_the_role_has_the_settings() -> None:
    defaults = _defaults()
    assert RELEASE_NAME.fullmatch(defaults["k3s_defaults_version"])
    assert defaults["k3s_defaults_base_url"] == "https://" + RELEASE_URL
    assert defaults["k3s_defaults_bin_dir"] + "/k3s" == BINARY
    assert defaults["k3s_defaults_airgap_dir"] == ""
    assert defaults["k3s_defaults_manifests_dir"] == MANIFESTS


def test_argument_specs_document_the_defaults() -> None:
    options = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert {name: spec["default"] for name, spec in options.items()} == _defaults()


@pytest.mark.parametrize("needle", ["pinned version", RELEASE_URL, BINARY, MANIFESTS])
def test_written_once(needle: str) -> None:
    if needle == "pinned version":
        needle = _defaults()["k3s_defaults_version"]
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in _behaviour_files() for number, line in _code_lines(path) if needle in line]
    assert not found, f"{needle} written outside roles/k3s_defaults:\n" + "\n".join(found)


def test_no_other_release_default_in_the_k3s_roles() -> None:
    """No K3S role defaults a version, URL or binary of its own (a stale copy of the pin)."""
    for role in K3S_ROLES:
        for path in (REPO / "roles" / role / "defaults" / "main.yml", REPO / "roles" / role / "vars" / "main.yml"):
            if not path.exists():
                continue
            for number, line in _code_lines(path):
                assert not RELEASE_NAME.search(line), f"{path.relative_to(REPO)}:{number}: {line.strip()}"


@pytest.mark.parametrize("role", K3S_ROLES + PLATFORM_ROLES)
def test_roles_using_the_settings_depend_on_k3s_defaults(role: str) -> None:
    uses = any("k3s_defaults_" in path.read_text(encoding="utf-8")
               for sub in ("defaults", "vars", "tasks", "handlers", "templates")
               for path in (REPO / "roles" / role / sub).glob("*") if path.is_file())
    deps = _yaml(REPO / "roles" / role / "meta" / "main.yml").get("dependencies") or []
    names = [d["role"] if isinstance(d, dict) else d for d in deps]
    assert uses, f"{role} does not default to k3s_defaults (a literal of its own?)"
    assert "dictamesh.k3s_gitops.k3s_defaults" in names, f"{role} uses k3s_defaults_* without the dependency"


def test_playbook_plays_using_the_settings_load_them() -> None:
    for path in sorted((REPO / "playbooks").glob("*.yml")):
        for play in _yaml(path) or []:
            if "import_playbook" in play or "k3s_defaults_" not in yaml.safe_dump(play.get("tasks", [])):
                continue
            assert "../roles/k3s_defaults/defaults/main.yml" in (play.get("vars_files") or []), (
                f"{path.name}: play {play.get('name')!r} uses k3s_defaults_* without loading them")


def test_inventory_samples_pin_the_release() -> None:
    pinned = _defaults()["k3s_defaults_version"]
    for inventory in ("prod", "staging", "lab"):
        group_vars = REPO / "inventories" / inventory / "group_vars" / "all"
        cluster = {**_yaml(group_vars / "_common" / "cluster.yml"), **_yaml(group_vars / "cluster.yml")}
        assert cluster["cluster_k3s_version"] == pinned, inventory
