"""Validate Kubernetes manifests: core kinds with kubernetes-validate (strict), custom
resources against the CRD openAPIV3Schema copied into tests/schemas/ (unknown fields rejected).
A kind with no schema is an error, never a silent pass."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
# K3S v1.34 ships Kubernetes 1.34.
KUBERNETES_VERSION = "1.34.0"

# What the API server keeps of a custom resource's metadata (ObjectMeta, the fields we may write).
_METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}


class ManifestError(Exception):
    """A manifest that the API server would reject (or that we cannot check)."""


def _close_objects(node: Any) -> Any:
    """Reject unknown fields: additionalProperties false wherever the structural schema would prune."""
    if isinstance(node, dict):
        node = {k: _close_objects(v) for k, v in node.items()}
        is_object = node.get("type") == "object" or "properties" in node
        if (is_object and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_close_objects(v) for v in node]
    return node


@functools.lru_cache(maxsize=None)
def crd_schemas(schema_dir: Path = SCHEMA_DIR) -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """(apiVersion, kind) -> (closed schema, scope) for every served version of every CRD file."""
    out: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    for path in sorted(schema_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = _METADATA_SCHEMA
                schema = _close_objects(schema)
                schema["properties"]["metadata"] = _METADATA_SCHEMA
                schema.setdefault("required", [])
                schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata"})
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                out[key] = (schema, spec["scope"])
    return out


def _core_schema_file(api_version: str, kind: str) -> Path:
    group, _slash, version = api_version.rpartition("/")
    group = group.split(".")[0] if group else ""
    name = f"{kind.lower()}-{group + '-' if group else ''}{version}.json"
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return base / f"v{KUBERNETES_VERSION}-local-strict" / name


def validate(doc: dict[str, Any], schema_dir: Path = SCHEMA_DIR) -> str:
    """Validate one manifest; return how it was checked ('crd' or 'core'); raise ManifestError.
    schema_dir: the folder of CRD files (default tests/schemas)."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        raise ManifestError(f"not a Kubernetes object: {doc!r:.200}")
    key = (doc["apiVersion"], doc["kind"])
    where = f"{doc['kind']} {doc.get('metadata', {}).get('name', '?')}"
    crds = crd_schemas(schema_dir)
    if key in crds:
        schema, scope = crds[key]
        try:
            jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)
        except jsonschema.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            raise ManifestError(f"{where}: {path}: {exc.message}") from None
        has_ns = "namespace" in doc["metadata"]
        if (scope == "Namespaced") != has_ns:
            raise ManifestError(f"{where}: {scope} resource {'without' if not has_ns else 'with'} metadata.namespace")
        return "crd"
    if not _core_schema_file(*key).is_file():
        raise ManifestError(f"{where}: no schema for {key[0]} {key[1]} (neither a core kind of "
                            f"Kubernetes {KUBERNETES_VERSION} nor a CRD in {schema_dir})")
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        raise ManifestError(f"{where}: {path}: {exc.message}") from None
    return "core"


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True)
