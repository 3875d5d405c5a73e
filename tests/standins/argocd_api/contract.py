"""Swagger 2.0 contract of the Argo CD API for the stand-in.

Loads ``reference/argocd/swagger.json`` and validates request and response
bodies against its ``#/definitions``. The stand-in is stricter than the real
server on purpose: an object with declared properties accepts no other
property (the real server silently drops unknown fields, which hides a typo in
a module), and query parameters must be declared for the operation with the
declared type.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import jsonschema

# A copy of argoproj/argo-cd 3.6.0 assets/swagger.json (commit 37ee009) sits next to this file.
VENDORED_SWAGGER = Path(__file__).resolve().parent / "swagger.json"
SHARED_SWAGGER = Path("/work/shared/reference/argocd/swagger.json")


class ContractError(Exception):
    """A body or query violates the swagger contract."""


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        if out.get("type") == "array":
            out["type"] = ["array", "null"]  # Go encodes a nil slice as null ("items": null)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def swagger_path() -> Path:
    override = os.environ.get("ARGOCD_SWAGGER")
    for candidate in ([Path(override)] if override else []) + [VENDORED_SWAGGER, SHARED_SWAGGER]:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("swagger.json not found (set ARGOCD_SWAGGER)")


class Contract:
    def __init__(self, path: Optional[Path] = None) -> None:
        self.spec = json.loads((path or swagger_path()).read_text())
        self.definitions = _strict(self.spec["definitions"])
        self._validators: Dict[str, jsonschema.Draft4Validator] = {}

    def operation(self, template: str, method: str) -> Dict[str, Any]:
        return self.spec["paths"][template][method.lower()]

    def _validator(self, key: str, schema: Dict[str, Any]) -> jsonschema.Draft4Validator:
        if key not in self._validators:
            full = dict(_strict(copy.deepcopy(schema)))
            full["definitions"] = self.definitions
            self._validators[key] = jsonschema.Draft4Validator(full)
        return self._validators[key]

    def _check(self, key: str, schema: Dict[str, Any], value: Any, what: str) -> None:
        errors = sorted(self._validator(key, schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(root)"
            raise ContractError("%s violates the swagger schema at %s: %s" % (what, where, first.message))

    def validate_definition(self, name: str, value: Any, what: str = "body") -> None:
        self._check("def:" + name, {"$ref": "#/definitions/" + name}, value, what)

    def validate_request(self, template: str, method: str, body: Any, query: Dict[str, List[str]]) -> None:
        op = self.operation(template, method)
        params = {p["name"]: p for p in op.get("parameters", [])}
        for name, values in query.items():
            param = params.get(name)
            if param is None or param.get("in") != "query":
                raise ContractError("query parameter %r is not declared for %s %s" % (name, method, template))
            if param.get("type") == "boolean" and any(v not in ("true", "false") for v in values):
                raise ContractError("query parameter %r must be true or false, got %r" % (name, values))
            if param.get("type") != "array" and len(values) > 1:
                raise ContractError("query parameter %r given %d times" % (name, len(values)))
        body_param = next((p for p in op.get("parameters", []) if p.get("in") == "body"), None)
        if body_param is None:
            if body is not None:
                raise ContractError("%s %s takes no body" % (method, template))
            return
        if body is None:
            raise ContractError("%s %s needs a JSON body" % (method, template))
        self._check("req:%s:%s" % (method, template), body_param["schema"], body, "request body")

    def validate_response(self, template: str, method: str, status: int, body: Any) -> None:
        op = self.operation(template, method)
        response = op["responses"].get(str(status)) or op["responses"]["default"]
        self._check("resp:%s:%s:%s" % (method, template, status if str(status) in op["responses"] else "default"),
                    response["schema"], body, "response body")
