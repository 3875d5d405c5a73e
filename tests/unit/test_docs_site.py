"""The documentation site's own pages (docs/docsite, built by `make docs` with antsibull-docs and
checked by `antsibull-docs lint-collection-docs` in `make lint`) stay in step with the repository:
every playbook is described, every page in extra-docs.yml exists under the label antsibull-docs
links it by, and the monitoring page names only metrics the dashboard really queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCSITE = REPO / "docs" / "docsite"
LABEL = ".. _ansible_collections.dictamesh.k3s_gitops.docsite.{}:"


def _described(page: str) -> set[str]:
    """Names of the definition-list terms (``name`` alone on a line) of an RST page."""
    return set(re.findall(r"^``([a-z0-9_]+)``$", page, flags=re.M))


def test_every_playbook_is_described():
    shipped = {p.stem for p in (REPO / "playbooks").glob("*.yml")}
    assert "site" in shipped
    described = _described((DOCSITE / "rst" / "playbooks.rst").read_text())
    assert described == shipped, (f"not described: {sorted(shipped - described)}; "
                                  f"no such playbook: {sorted(described - shipped)}")


def test_extra_docs_pages_exist_with_their_labels():
    extra = yaml.safe_load((DOCSITE / "extra-docs.yml").read_text())
    pages = [page for section in extra["sections"] for page in section["toctree"]]
    assert {"playbooks", "execution_environment", "monitoring"} <= set(pages)
    for page in pages:
        text = (DOCSITE / "rst" / f"{page}.rst").read_text()
        assert text.splitlines()[0] == LABEL.format(page), page
    assert {p.stem for p in (DOCSITE / "rst").glob("*.rst")} == set(pages)


def test_monitoring_page_names_only_metrics_the_dashboard_queries():
    dashboard = json.loads((REPO / "roles" / "argocd" / "files" / "argocd-dashboard.json").read_text())
    queried = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    role_variables = yaml.safe_load((REPO / "roles" / "argocd" / "defaults" / "main.yml").read_text())
    named = set(re.findall(r"``(argocd_[a-z_]+)``", (DOCSITE / "rst" / "monitoring.rst").read_text())) - set(role_variables)
    assert named, "the monitoring page names no metric"
    assert {m for m in named if m not in queried} == set()


def test_execution_environment_page_matches_the_definition():
    page = (DOCSITE / "rst" / "execution_environment.rst").read_text()
    definition = yaml.safe_load((REPO / "meta" / "ee" / "execution-environment.yml").read_text())
    core = definition["dependencies"]["ansible_core"]["package_pip"].split("==")[1]
    assert f"ansible-core {core}" in page
    assert definition["options"]["tags"][0] in page
    for dependency in yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"]:
        assert f"``{dependency}``" in page
