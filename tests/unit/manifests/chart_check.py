"""Check rendered chart values against the charts the roles pin.

The reference data (Chart.yaml, values.yaml, values.schema.json, the argo-cd chart's CRDs and
its chart -> app version table) is read from tests/schemas/charts, a copy of the project's
shared/reference/charts (CHART_REFERENCE_DIR overrides it). Its provenance (repository, path, tag,
commit, sha256) is in that folder's SOURCE.md; test_chart_check.py checks the copy against
shared/reference/charts when that folder is beside the clone. A chart
version with no reference data there is an error: a pin can only move to a chart that was read.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import os
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[3]
SHARED_CHARTS_DIR = REPO.parent / "shared" / "reference" / "charts"
CHARTS_DIR = Path(os.environ.get("CHART_REFERENCE_DIR", REPO / "tests" / "schemas" / "charts"))

# HelmChart metadata.name (what the roles write) -> chart name in its repository.
CHART_OF_HELMCHART = {"argocd": "argo-cd", "cert-manager": "cert-manager", "longhorn": "longhorn",
                      "ingress-nginx": "ingress-nginx"}

# Maps whose keys are not chart values but are passed through by the chart's templates into
# something else (a ConfigMap, a command line, labels). Path -> (where its keys are documented,
# how a key is checked). A key the chart's values.yaml does not list is accepted when it is one of
# `keys`, or is one of `prefixes` followed by a non-empty name; `any` accepts every key.
FREE_FORM: dict[str, dict[str, Any]] = {
    # argo-helm templates/argocd-configs/argocd-cm.yaml copies configs.cm into argocd-cm.
    # Keys: argoproj/argo-cd docs/operator-manual/argocd-cm.yaml at v3.4.4 (commit 443415b):
    # accounts.<name> (line 299), accounts.<name>.enabled (line 301),
    # resource.customizations.health.<group_kind> (line 90).
    "argo-cd:configs.cm": {
        "source": "argoproj/argo-cd docs/operator-manual/argocd-cm.yaml v3.4.4",
        "prefixes": ["accounts.", "resource.customizations.health."],
        "keys": [],
    },
    # argo-helm templates/argocd-configs/argocd-cmd-params-cm.yaml copies configs.params into
    # argocd-cmd-params-cm. Keys: argoproj/argo-cd docs/operator-manual/argocd-cmd-params-cm.yaml
    # at v3.4.4 (server.insecure: line 137). Chart 10.x no longer lists the params in values.yaml.
    "argo-cd:configs.params": {
        "source": "argoproj/argo-cd docs/operator-manual/argocd-cmd-params-cm.yaml v3.4.4",
        "prefixes": [],
        "keys": ["server.insecure"],
    },
    # ingress-nginx templates/_params.tpl turns controller.extraArgs into --<key>=<value> flags of
    # the controller. Flags: kubernetes/ingress-nginx pkg/flags/flags.go
    # (flags.Bool("enable-ssl-passthrough", false, ...)).
    "ingress-nginx:controller.extraArgs": {
        "source": "kubernetes/ingress-nginx pkg/flags/flags.go",
        "prefixes": [],
        "keys": ["enable-ssl-passthrough"],
    },
    # Label maps copied as they are onto ServiceMonitor metadata.labels: any label is valid.
    "argo-cd:server.metrics.serviceMonitor.additionalLabels": {"any": True},
    "argo-cd:controller.metrics.serviceMonitor.additionalLabels": {"any": True},
    "argo-cd:repoServer.metrics.serviceMonitor.additionalLabels": {"any": True},
    "argo-cd:applicationSet.metrics.serviceMonitor.additionalLabels": {"any": True},
}


class ReferenceMissing(AssertionError):
    """No reference data for a chart version the roles pin."""


def chart_dir(chart: str, version: str) -> Path:
    path = CHARTS_DIR / chart / version
    if not path.is_dir():
        have = sorted(p.name for p in (CHARTS_DIR / chart).glob("*")) if (CHARTS_DIR / chart).is_dir() else []
        raise ReferenceMissing(f"no reference data for chart {chart} {version} in {CHARTS_DIR} "
                               f"(have: {', '.join(have) or 'none'}); read the chart and add it before pinning it")
    return path


@functools.lru_cache(maxsize=None)
def chart_values(chart: str, version: str) -> dict[str, Any]:
    return yaml.safe_load((chart_dir(chart, version) / "values.yaml").read_text()) or {}


@functools.lru_cache(maxsize=None)
def chart_yaml(chart: str, version: str) -> dict[str, Any] | None:
    path = chart_dir(chart, version) / "Chart.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


@functools.lru_cache(maxsize=None)
def values_schema(chart: str, version: str) -> dict[str, Any] | None:
    path = chart_dir(chart, version) / "values.schema.json"
    return json.loads(path.read_text()) if path.is_file() else None


def app_version(chart: str, version: str) -> str:
    """The app version a chart installs: Chart.yaml appVersion. cert-manager's repository has no
    Chart.yaml (it is generated at release from Chart.template.yaml with version = appVersion =
    the release tag: cert-manager/cert-manager deploy/charts/cert-manager/Chart.template.yaml)."""
    meta = chart_yaml(chart, version)
    if meta is None:
        if chart == "cert-manager":
            chart_dir(chart, version)
            return version
        raise ReferenceMissing(f"no Chart.yaml for {chart} {version}")
    assert str(meta["version"]) == version, f"{chart} {version}: Chart.yaml says version {meta['version']}"
    return str(meta["appVersion"])


@functools.lru_cache(maxsize=None)
def argocd_chart_app_versions() -> dict[str, str]:
    """argo-helm chart version -> Argo CD version, from argo-cd/chart-app-versions.csv."""
    with (CHARTS_DIR / "argo-cd" / "chart-app-versions.csv").open() as fh:
        return {row["chart_version"]: row["app_version"] for row in csv.DictReader(fh)}


def chart_crds(chart: str, version: str, dest: Path, files: tuple[str, ...]) -> Path:
    """Write the chart's CRD templates (templates/crds/*.yaml of argo-helm) into dest as plain
    YAML: their only template lines are whole-line `{{- if/with/end }}` guards around metadata,
    dropped here (crds.install is true by default: chart values.yaml `crds.install: true`)."""
    src = chart_dir(chart, version) / "crds"
    if not src.is_dir():
        raise ReferenceMissing(f"no CRDs of {chart} {version} in the reference data ({src})")
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        lines = [line for line in (src / name).read_text().splitlines()
                 if not (line.strip().startswith("{{") and line.strip().endswith("}}"))]
        text = "\n".join(lines) + "\n"
        assert "{{" not in text, f"{src / name}: template left after dropping the guard lines"
        (dest / name).write_text(text)
    return dest


def minor(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "null"


def unknown_keys(chart: str, ours: dict[str, Any], theirs: dict[str, Any], path: str = "") -> list[str]:
    """Every key path of `ours` that the chart's values.yaml does not have (or has with another
    type). Maps listed in FREE_FORM are checked one level down against their documented keys;
    any other empty map in the chart is reported, so that each free-form use is listed above."""
    problems = []
    for key, value in ours.items():
        here = f"{path}.{key}" if path else str(key)
        free = FREE_FORM.get(f"{chart}:{path}") if path else None
        if free is not None and key not in theirs:
            if free.get("any"):
                continue
            if key in free["keys"] or any(str(key).startswith(p) and len(str(key)) > len(p) for p in free["prefixes"]):
                continue
            problems.append(f"{here}: not a documented key of {path} ({free['source']})")
            continue
        if key not in theirs:
            problems.append(f"{here}: no such value in {chart}'s values.yaml")
            continue
        default = theirs[key]
        if default is None:
            continue  # documented with no default: any type
        if _kind(value) != _kind(default):
            problems.append(f"{here}: {_kind(value)} given, the chart's default is a {_kind(default)} ({default!r:.60})")
            continue
        if isinstance(value, dict):
            if not default and f"{chart}:{here}" not in FREE_FORM:
                problems.append(f"{here}: an empty map in the chart, not listed in FREE_FORM with its documented keys")
                continue
            problems.extend(unknown_keys(chart, value, default, here))
    return problems


def merge(base: Any, over: Any) -> Any:
    """Helm's coalescing of user values over the chart's defaults (maps merge, the rest replaces)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for key, value in over.items():
            out[key] = merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def schema_errors(chart: str, version: str, values: dict[str, Any]) -> list[str] | None:
    """Errors of the merged values against the chart's values.schema.json (None: the chart has none).
    Helm validates the coalesced values (defaults + user values) against the schema."""
    schema = values_schema(chart, version)
    if schema is None:
        return None
    cls = jsonschema.validators.validator_for(schema)
    merged = merge(chart_values(chart, version), values)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message:.200}"
            for e in cls(schema).iter_errors(merged)]


@functools.lru_cache(maxsize=None)
def questions(chart: str, version: str) -> dict[str, dict[str, Any]]:
    """variable path -> question of the chart's questions.yaml (Rancher's form for the chart: type
    int/boolean/string/enum..., enum options), {} when the chart has none."""
    path = chart_dir(chart, version) / "questions.yaml"
    if not path.is_file():
        return {}
    out: dict[str, dict[str, Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items or []:
            out[item["variable"]] = item
            walk(item.get("subquestions", []))
    walk((yaml.safe_load(path.read_text()) or {}).get("questions", []))
    return out


def question_errors(chart: str, version: str, values: dict[str, Any]) -> list[str]:
    """Values that do not fit the type or the options the chart's questions.yaml gives them."""
    errors = []
    types = {"int": (int,), "boolean": (bool,), "string": (str,), "password": (str,)}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
            return
        question = questions(chart, version).get(path)
        if question is None:
            return
        kind = question.get("type")
        if kind == "enum" and node not in question.get("options", []):
            errors.append(f"{path}: {node!r} is not one of {question.get('options')}")
        elif kind in types and (not isinstance(node, types[kind]) or (kind == "int" and isinstance(node, bool))):
            errors.append(f"{path}: {node!r} is not of type {kind}")
    walk(values, "")
    return errors


def image_tags(values: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, tag) of every non-empty image tag set in values (`image: {tag: ...}`)."""
    if isinstance(values, dict):
        for key, value in values.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "image" and isinstance(value, dict) and value.get("tag"):
                yield f"{here}.tag", str(value["tag"])
            yield from image_tags(value, here)
