"""Kubernetes API server stand-in for tests: NOT kube-apiserver. Never ships in roles/ or plugins/.

An in-memory object store (optionally persisted to one JSON file) served over HTTPS with
client-certificate authentication, so that real clients (kubectl, the kubernetes Python client,
kubernetes.core) run their own logic against it. Python 3.11 standard library only: it runs in
the Debian 12 VMs next to core.py, which can embed it (KubeAPI.handle() from its own handler).

What it serves, with the upstream file each behaviour was read from, is listed in
tests/standins/FIDELITY.md, section "Kubernetes API server stand-in (`standin/kubeapi.py`)".
In short: discovery (/api, /apis, /api/v1, /apis/G/V; legacy documents only), get, list (label
and field selectors), watch (chunked JSON events, resourceVersion, timeoutSeconds,
sendInitialEvents), create, update (409 on a stale resourceVersion), JSON patch, JSON merge patch,
strategic merge patch (merge keys of the fields kubectl and the roles touch), delete (finalizers),
status subresources, pods/eviction with PodDisruptionBudgets (429), CRDs and their custom
resources, Status bodies for every error.

There are no controllers: nothing schedules, starts or deletes pods, and nothing writes status.
Tests (and the K3S stand-in, later) write status through the status subresources themselves.

Run alone:  python3 -m standin.kubeapi --port 6443 --cert C --key K --client-ca CA [--state F]
"""

import argparse
import bisect
import copy
import datetime
import http.server
import json
import os
import random
import re
import signal
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

# --------------------------------------------------------------------------- resource types


class ResourceType:
    """One REST resource: group/version/plural, kind, scope and what it supports."""

    def __init__(self, group, version, plural, kind, namespaced, short=(), status=False,
                 generation=False, fields=(), custom=False, categories=()):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.short = list(short)
        self.status = status          # has a /status subresource (main-resource writes keep status)
        self.generation = generation  # metadata.generation counts spec changes
        self.fields = ("metadata.name", "metadata.namespace") + tuple(fields)  # field selectors
        self.custom = custom
        self.categories = list(categories)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def qualified(self):
        """plural.group, as error messages name a resource."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    def discovery(self):
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        entry = {"name": self.plural, "singularName": self.kind.lower(), "namespaced": self.namespaced,
                 "kind": self.kind, "verbs": verbs}
        if self.short:
            entry["shortNames"] = self.short
        if self.categories:
            entry["categories"] = self.categories
        return entry


POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
              "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName")
# pkg/registry/*/strategy.go (v1.34.1): which kinds keep status out of main-resource writes
# (PrepareForUpdate copies the old status) and bump metadata.generation on spec changes.
BUILTIN = [
    ResourceType("", "v1", "namespaces", "Namespace", False, ["ns"], status=True, fields=("status.phase",)),
    ResourceType("", "v1", "nodes", "Node", False, ["no"], status=True, fields=("spec.unschedulable",)),
    ResourceType("", "v1", "pods", "Pod", True, ["po"], status=True, fields=POD_FIELDS, categories=["all"]),
    ResourceType("", "v1", "secrets", "Secret", True, fields=("type",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ["cm"]),
    ResourceType("", "v1", "services", "Service", True, ["svc"], status=True, categories=["all"]),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"]),
    ResourceType("", "v1", "events", "Event", True, ["ev"], fields=(
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type")),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], status=True),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ["deploy"], status=True, generation=True,
                 categories=["all"]),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], status=True, generation=True,
                 categories=["all"]),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ["sts"], status=True, generation=True,
                 categories=["all"]),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"], status=True, generation=True,
                 categories=["all"]),
    ResourceType("batch", "v1", "jobs", "Job", True, status=True, generation=True, fields=("status.successful",),
                 categories=["all"]),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], status=True,
                 generation=True),
    ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ["sc"]),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                 ["crd", "crds"], status=True, generation=True),
]

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ENCODING = "application/json"
# What the eviction REST handler returns; handlers/create.go sets code 201 on a Status without one.
EVICTED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
HEALTH_PATHS = ("/readyz", "/livez", "/healthz")
# Status fields without `omitempty` in k8s.io/api (apps/v1, policy/v1, core/v1 types.go, v0.34.1): a
# Go server always encodes them, as 0 / {} when unset. Clients rely on it (the Python client's models
# refuse a DaemonSetStatus without numberReady).
STATUS_REQUIRED = {
    "daemonsets": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                   "numberReady": 0},
    "statefulsets": {"replicas": 0, "availableReplicas": 0},
    "replicasets": {"replicas": 0},
    "poddisruptionbudgets": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    "services": {"loadBalancer": {}},
}
# Built-in kinds whose spec is a struct (not a pointer) in k8s.io/api: always encoded, `{}` when empty
# (kubernetes.core k8s_drain reads node.spec.unschedulable and fails on a Node without spec).
HAS_SPEC = {"namespaces", "nodes", "pods", "services", "persistentvolumeclaims", "deployments", "daemonsets",
            "statefulsets", "replicasets", "jobs", "poddisruptionbudgets", "customresourcedefinitions"}
# Registries with ReturnDeletedObject: true (pkg/registry/core/pod/storage/storage.go and the
# storage.go of the others, v1.34.1): DELETE answers with the object, others with a Status.
RETURNS_DELETED = {"pods", "services", "serviceaccounts", "storageclasses", "persistentvolumeclaims"}


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A metav1.Status failure (staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go)."""

    def __init__(self, code, reason, message, details=None, retry_after=0):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def body(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def _details(rt, name, **extra):
    details = {"name": name, "kind": rt.plural} if name else {"kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    details.update(extra)
    return details


def not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rt.qualified, name), _details(rt, name))


def already_exists(rt, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (rt.qualified, name), _details(rt, name))


def conflict(rt, name, why="the object has been modified; please apply your changes to the latest version and try again"):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (rt.qualified, name, why),
                    _details(rt, name))


def invalid(rt, kind, name, causes):
    """causes: [(field, message)] -> 422 Invalid, message as errors.NewInvalid builds it."""
    text = "; ".join("%s: %s" % c for c in causes)
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, text),
                    _details(rt, name, causes=[{"reason": "FieldValueInvalid", "message": m, "field": f}
                                               for f, m in causes]))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def unknown_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def too_many_requests(message, cause, retry_after=0):
    return ApiError(429, "TooManyRequests", message,
                    {"causes": [{"reason": "DisruptionBudget", "message": cause}],
                     "retryAfterSeconds": retry_after} if retry_after else
                    {"causes": [{"reason": "DisruptionBudget", "message": cause}]}, retry_after=retry_after)


# --------------------------------------------------------------------------- selectors


def _lookup(obj, path):
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _field_text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


LABEL_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|"
                        r"\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_selector(text):
    """Split on commas that are not inside a set's parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_label_selector(text):
    """labels.Parse (apimachinery/pkg/labels/selector.go): =, ==, !=, in, notin, exists, !exists."""
    terms = []
    for part in _split_selector(text or ""):
        match = LABEL_TERM.match(part)
        if not match:
            raise bad_request("unable to parse requirement: %s" % part.strip())
        negate, key, op, value, set_op, values = match.groups()
        if negate and (op or set_op):
            raise bad_request("unable to parse requirement: %s" % part.strip())
        if set_op:
            terms.append((key, set_op, {v.strip() for v in values.split(",") if v.strip()}))
        elif op:
            terms.append((key, "!=" if op == "!=" else "=", value))
        else:
            terms.append((key, "!" if negate else "exists", None))
    return terms


def label_match(terms, labels):
    labels = labels or {}
    for key, op, value in terms:
        present = key in labels
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and present and labels[key] == value:
            return False
        if op == "in" and (not present or labels[key] not in value):
            return False
        if op == "notin" and present and labels[key] in value:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
    return True


def selector_from_label_selector(selector):
    """metav1.LabelSelector (matchLabels, matchExpressions) -> terms; None for an empty selector."""
    if not selector:
        return None
    terms = [(k, "=", v) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(expr.get("operator"))
        if op is None:
            return None
        terms.append((expr.get("key"), op, set(expr.get("values") or [])))
    return terms or None


def parse_field_selector(rt, text):
    """fields.ParseSelector plus the per-kind supported labels (pkg/apis/*/v1/conversion.go)."""
    terms = []
    for part in [p for p in (text or "").split(",") if p.strip()]:
        match = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, part))
        field, op, value = match.groups()
        if field not in rt.fields:
            if rt.custom:
                raise bad_request('"%s" is not a known field selector: only "metadata.name", "metadata.namespace"'
                                  % field)
            raise bad_request("field label not supported: %s" % field)
        terms.append((field, op != "!=", value))
    return terms


# Fields a Go server formats from a non-pointer value even when unset (strconv.Itoa / FormatBool).
FIELD_ZERO = {"status.successful": "0", "spec.unschedulable": "false", "spec.hostNetwork": "false"}


def field_match(terms, obj):
    return all(((_field_text(_lookup(obj, field)) or FIELD_ZERO.get(field, "")) == value) == equal
               for field, equal, value in terms)


# --------------------------------------------------------------------------- patches


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# patchMergeKey of the list fields the collection and kubectl touch (k8s.io/api core/v1, apps/v1
# types.go `patchStrategy:"merge" patchMergeKey:"..."`). Other lists are replaced, as upstream does
# for lists without a patch strategy.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "conditions": "type", "imagePullSecrets": "name",
    "ownerReferences": "uid", "addresses": "type", "tolerations": None, "ports": "containerPort",
    "hostAliases": "ip", "volumeDevices": "devicePath", "topologySpreadConstraints": "topologyKey",
}
# Lists of primitives merged as sets (patchStrategy:"merge" on []string).
MERGE_PRIMITIVE = {"finalizers"}


def strategic_merge_patch(target, patch, rt_custom=False):
    """The parts of strategicpatch.StrategicMergePatch (apimachinery/pkg/util/strategicpatch/patch.go)
    that kubectl cordon/uncordon/drain/label/annotate and rollout restart send: maps merge, null
    deletes, lists with a merge key merge by that key ($patch: delete removes one element),
    $setElementOrder/$retainKeys directives are accepted for ordering only."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if key.startswith("$"):
            raise bad_request("unknown patch directive %s" % key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and MERGE_KEYS.get(key) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in MERGE_PRIMITIVE and isinstance(result.get(key), list):
            result[key] = result[key] + [v for v in value if v not in result[key]]
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current, patch, key):
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request("map: %s does not contain declared merge key: %s" % (item, key))
        index = next((i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
            continue
        if index is None:
            merged.append({k: v for k, v in item.items() if not k.startswith("$")})
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request("JSON pointer must start with /: %s" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc, ops):
    """RFC 6902: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    for op in ops:
        name, parts = op.get("op"), _pointer(op.get("path", ""))
        if name in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_jp_get(doc, source))
            if name == "move":
                doc = _jp_remove(doc, source)
            doc = _jp_add(doc, parts, value)
        elif name == "add":
            doc = _jp_add(doc, parts, copy.deepcopy(op.get("value")))
        elif name == "remove":
            doc = _jp_remove(doc, parts)
        elif name == "replace":
            _jp_get(doc, parts)
            doc = _jp_add(_jp_remove(doc, parts), parts, copy.deepcopy(op.get("value")))
        elif name == "test":
            if _jp_get(doc, parts) != op.get("value"):
                raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                               {"causes": [{"message": "testing value %s failed" % op.get("path")}]})
        else:
            raise bad_request("Unexpected kind: %s" % name)
    return doc


def _jp_get(doc, parts):
    for part in parts:
        try:
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request: "
                           "doc is missing path: /%s" % "/".join(parts))
    return doc


def _jp_add(doc, parts, value):
    if not parts:
        return value
    parent = _jp_get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(int(last), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, "Invalid", "doc is missing path: /%s" % "/".join(parts))
    return doc


def _jp_remove(doc, parts):
    parent = _jp_get(doc, parts[:-1])
    _jp_get(doc, parts)
    if isinstance(parent, list):
        parent.pop(int(parts[-1]))
    else:
        del parent[parts[-1]]
    return doc


# --------------------------------------------------------------------------- store

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apiserver/pkg/storage/names/generate.go


def now_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stale(meta):
    return {k: v for k, v in meta.items() if k not in ("resourceVersion",)}


class Store:
    """Objects keyed by (group, plural, namespace, name); one resourceVersion counter for all,
    an event log for watches; optional JSON persistence of objects and counter."""

    EVENT_LOG = 20000

    def __init__(self, path=None):
        self.path = path
        self.cond = threading.Condition()
        self.objects = {}
        self.logs = {}  # (namespace, pod, container) -> text
        self.rv = 1
        self.events = []  # (rv, type, (group, plural, namespace), object)
        self.closed = False
        self.types = {(rt.group, rt.version, rt.plural): rt for rt in BUILTIN}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            self.rv = int(data["rv"])
            self.objects = {tuple(json.loads(k)): v for k, v in data["objects"].items()}
            self.logs = {tuple(json.loads(k)): v for k, v in data.get("logs", {}).items()}
            for key, obj in list(self.objects.items()):
                if key[1] == "customresourcedefinitions":
                    self._register_crd(obj)
        for name in INITIAL_NAMESPACES:
            if ("", "namespaces", "", name) not in self.objects:
                self.create(self.resource("", "v1", "namespaces"), "", {"metadata": {"name": name}})
        self.first_rv = self.rv  # watches from before this are gone (410), as after etcd compaction

    # -- types
    def resource(self, group, version, plural):
        with self.cond:
            rt = self.types.get((group, version, plural))
        if rt is None:
            raise unknown_path()
        return rt

    def type_list(self):
        """A snapshot of the resource types (CRD writes change them while other requests read)."""
        with self.cond:
            return list(self.types.values())

    def groups(self):
        """{group: [versions]} in registration order (core group '' first)."""
        found = {}
        for rt in self.type_list():
            versions = found.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return found

    def _register_crd(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group")
        for version in spec.get("versions") or []:
            if not version.get("served"):
                continue
            subresources = version.get("subresources") or {}
            self.types[(group, version["name"], names.get("plural"))] = ResourceType(
                group, version["name"], names.get("plural"), names.get("kind"), spec.get("scope") == "Namespaced",
                names.get("shortNames") or (), status="status" in subresources, generation=True, custom=True,
                categories=names.get("categories") or ())

    def _unregister_crd(self, crd):
        spec = crd.get("spec") or {}
        for version in spec.get("versions") or []:
            self.types.pop((spec.get("group"), version["name"], (spec.get("names") or {}).get("plural")), None)

    # -- persistence and events
    def _save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"rv": self.rv, "objects": {json.dumps(list(k)): v for k, v in self.objects.items()},
                       "logs": {json.dumps(list(k)): v for k, v in self.logs.items()}}, handle)
        os.replace(tmp, self.path)

    def _record(self, kind, key, obj):
        self.events.append((int(obj["metadata"]["resourceVersion"]), kind, key[:3], copy.deepcopy(obj)))
        del self.events[:-self.EVENT_LOG]
        self._save()
        self.cond.notify_all()

    def _bump(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    # -- helpers
    @staticmethod
    def key(rt, namespace, name):
        return (rt.group, rt.plural, namespace if rt.namespaced else "", name)

    def view(self, rt, obj):
        """The object as served at rt's version (custom resources of several versions: None conversion)."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def _check_namespace(self, rt, namespace):
        if rt.namespaced and ("", "namespaces", "", namespace) not in self.objects:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % namespace,
                           {"name": namespace, "kind": "namespaces"})

    def _validate_meta(self, rt, obj):
        """Name and label checks of apimachinery/pkg/api/validation/objectmeta.go (422 Invalid)."""
        name = obj["metadata"].get("name", "")
        label_only = rt.plural in ("namespaces", "services")  # DNS-1123 label names, others subdomains
        causes = []
        if not name:
            causes.append(("metadata.name", "Required value: name or generateName is required"))
        elif len(name) > 253 or not (LABEL_NAME_RE if label_only else NAME_RE).match(name):
            causes.append(("metadata.name", 'Invalid value: "%s": a lowercase RFC 1123 %s must consist of lower '
                           "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                           "character" % (name, "label" if label_only else "subdomain")))
        for field in ("labels", "annotations"):
            for value in (obj["metadata"].get(field) or {}).values():
                if not isinstance(value, str):
                    causes.append(("metadata.%s" % field, "Invalid value: %r: must be a string" % (value,)))
                elif field == "labels" and value and (len(value) > 63 or not LABEL_VALUE_RE.match(value)):
                    causes.append(("metadata.labels", 'Invalid value: "%s": a valid label must be an empty string or '
                                   "consist of alphanumeric characters, '-', '_' or '.'" % value))
        if causes:
            raise invalid(rt, rt.kind, name, causes)

    def _decode(self, rt, body, namespace):
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if kind and kind != rt.kind:
            raise bad_request('%s in version "%s" cannot be handled as a %s: no kind "%s" is registered'
                              % (kind, rt.version, rt.kind, kind))
        served = {t.api_version for t in self.type_list() if (t.group, t.plural) == (rt.group, rt.plural)}
        if api_version and api_version not in served:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (api_version, rt.api_version))
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        for field in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
            if field in meta and not meta[field]:  # ObjectMeta's omitempty maps and slices
                del meta[field]
        if rt.plural in HAS_SPEC:  # a Go struct field: encoded even when empty
            obj.setdefault("spec", {})
        if rt.status and not rt.custom:
            status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
            obj["status"] = dict(STATUS_REQUIRED.get(rt.plural, {}), **status)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        return obj

    # -- verbs
    def get(self, rt, namespace, name):
        with self.cond:
            obj = self.objects.get(self.key(rt, namespace, name))
            if obj is None:
                raise not_found(rt, name)
            return self.view(rt, obj)

    def list(self, rt, namespace, label_selector="", field_selector=""):
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(rt, field_selector)
        with self.cond:
            items = []
            for key, obj in sorted(self.objects.items()):
                if key[:2] != (rt.group, rt.plural) or (namespace and rt.namespaced and key[2] != namespace):
                    continue
                if label_match(labels, obj["metadata"].get("labels")) and field_match(fields, obj):
                    item = self.view(rt, obj)
                    if not rt.custom:  # typed lists carry no TypeMeta per item; unstructured ones do
                        item.pop("apiVersion")
                        item.pop("kind")
                    items.append(item)
            return {"kind": rt.kind + "List", "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    def create(self, rt, namespace, body, dry_run=False):
        with self.cond:
            obj = self._decode(rt, body, namespace)
            meta = obj["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(random.choices(GENERATE_CHARS, k=5))
            if meta.get("resourceVersion"):
                raise bad_request("resourceVersion should not be set on objects to be created")
            self._validate_meta(rt, obj)
            self._check_namespace(rt, namespace)
            key = self.key(rt, namespace, meta["name"])
            if key in self.objects:
                raise already_exists(rt, meta["name"])
            for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                meta.pop(field, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_stamp()
            if rt.generation:
                meta["generation"] = 1
            self._prepare_create(rt, obj)
            if dry_run:
                obj["metadata"]["resourceVersion"] = ""
                return self.view(rt, obj)
            self._bump(obj)
            self.objects[key] = obj
            if rt.plural == "customresourcedefinitions":
                self._register_crd(obj)
            self._record("ADDED", key, obj)
            return self.view(rt, obj)

    def _prepare_create(self, rt, obj):
        """Status on create, per pkg/registry/*/strategy.go PrepareForCreate (v1.34.1)."""
        if rt.plural == "jobs":
            self._job_selector(obj)
        if rt.plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rt.plural == "customresourcedefinitions":
            # No apiextensions controller: names are accepted and the CRD Established at once (lenient).
            names = (obj.get("spec") or {}).get("names") or {}
            self._validate_crd(rt, obj)
            obj["status"] = {"acceptedNames": names, "storedVersions": [
                v["name"] for v in obj["spec"].get("versions") or [] if v.get("storage")],
                "conditions": [{"type": t, "status": "True", "reason": r, "message": m,
                                "lastTransitionTime": now_stamp()} for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]}
        elif rt.status and rt.custom:  # customResourceStrategy drops status when it is a subresource
            obj.pop("status", None)
        elif rt.status and rt.plural != "nodes":  # Node: kubelets register with status
            obj["status"] = dict(STATUS_REQUIRED.get(rt.plural, {}))  # a reset Go status struct

    @staticmethod
    def _job_selector(job):
        """generateSelector (pkg/registry/batch/job/strategy.go): unless spec.manualSelector, the pod
        template gets job-name and controller-uid labels (legacy and batch.kubernetes.io/ forms, the
        latter since 1.27) and the selector matches batch.kubernetes.io/controller-uid."""
        spec = job.setdefault("spec", {})
        if spec.get("manualSelector"):
            return
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        for key, value in (("batch.kubernetes.io/controller-uid", uid), ("batch.kubernetes.io/job-name", name),
                           ("controller-uid", uid), ("job-name", name)):
            labels.setdefault(key, value)
        selector = spec.setdefault("selector", {})
        selector.setdefault("matchLabels", {}).setdefault("batch.kubernetes.io/controller-uid", uid)

    # -- container logs: no kubelet, so whoever embeds the server writes them (set_log)
    def set_log(self, namespace, pod, container, text, previous=False):
        """The log of a container (previous=True: of its last terminated instance; None: none)."""
        with self.cond:
            key = (namespace, pod, container + ("#previous" if previous else ""))
            if text is None:
                self.logs.pop(key, None)
            else:
                self.logs[key] = text
            self._save()

    def log(self, namespace, name, container, tail_lines, previous=False):
        """pods/log (pkg/registry/core/pod/rest/log.go and the kubelet): text of one container;
        `previous` without a terminated instance is 400 (pkg/kubelet/kubelet_pods.go
        validateContainerLogStatus)."""
        pods = self.resource("", "v1", "pods")
        with self.cond:
            pod = self.objects.get(self.key(pods, namespace, name))
            if pod is None:
                raise not_found(pods, name)
            names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
            if not container:
                if len(names) != 1:
                    raise bad_request("a container name must be specified for pod %s, choose one of: [%s]"
                                      % (name, " ".join(names)))
                container = names[0]
            elif container not in names:
                raise bad_request("container %s is not valid for pod %s" % (container, name))
            if previous:
                text = self.logs.get((namespace, name, container + "#previous"))
                if text is None:
                    raise bad_request('previous terminated container "%s" in pod "%s" not found' % (container, name))
            else:
                text = self.logs.get((namespace, name, container), "")
        if tail_lines is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail_lines:]) if tail_lines > 0 else ""
        return text

    def _validate_crd(self, rt, obj):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        name = obj["metadata"]["name"]
        causes = []
        if name != "%s.%s" % (names.get("plural"), spec.get("group")):
            causes.append(("metadata.name", 'Invalid value: "%s": must be spec.names.plural+"."+spec.group' % name))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(("spec.scope", "Unsupported value: %r" % spec.get("scope")))
        if not names.get("kind"):
            causes.append(("spec.names.kind", "Required value"))
        versions = spec.get("versions") or []
        if len([v for v in versions if v.get("storage")]) != 1:
            causes.append(("spec.versions", "Invalid value: must have exactly one version marked as storage version"))
        if causes:
            raise invalid(rt, "CustomResourceDefinition.apiextensions.k8s.io", name, causes)

    def update(self, rt, namespace, name, body, subresource=None, dry_run=False):
        with self.cond:
            obj = self._decode(rt, body, namespace)
            meta = obj["metadata"]
            if meta.get("name") and meta["name"] != name:
                raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (meta["name"], name))
            meta["name"] = name
            key = self.key(rt, namespace, name)
            old = self.objects.get(key)
            if old is None:
                raise not_found(rt, name)
            given = meta.get("resourceVersion")
            if not given and rt.custom:  # customResourceStrategy.AllowUnconditionalUpdate() is false
                raise invalid(rt, rt.kind, name, [("metadata.resourceVersion",
                                                   "Invalid value: 0: must be specified for an update")])
            if given and given != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            return self._replace(rt, key, old, obj, subresource, dry_run)

    def _replace(self, rt, key, old, obj, subresource, dry_run):
        name = old["metadata"]["name"]
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = obj.get("status")
            if new["status"] is None:
                new.pop("status")
        else:
            new = obj
            for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation", "namespace"):
                if field in old["metadata"]:
                    new["metadata"][field] = old["metadata"][field]
                else:
                    new["metadata"].pop(field, None)
            if rt.status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            self._validate_meta(rt, new)
            if rt.generation and new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        if rt.plural == "customresourcedefinitions" and subresource != "status":
            self._validate_crd(rt, new)
        if old.get("metadata", {}).get("deletionTimestamp") and \
                len(new["metadata"].get("finalizers") or []) > len(old["metadata"].get("finalizers") or []):
            raise invalid(rt, rt.kind, name, [("metadata.finalizers",
                                              "Forbidden: no new finalizers can be added if the object is being deleted")])
        unchanged = {k: v for k, v in new.items() if k != "metadata"} == \
            {k: v for k, v in old.items() if k != "metadata"} and \
            _stale(new["metadata"]) == _stale(old["metadata"])
        if dry_run or unchanged:  # an update that changes nothing keeps the resourceVersion (no event)
            out = copy.deepcopy(new)
            out["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self.view(rt, out)
        self._bump(new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            del self.objects[key]
            self._after_delete(rt, key, new)
            self._record("DELETED", key, new)
            return self.view(rt, new)
        self.objects[key] = new
        if rt.plural == "customresourcedefinitions":
            self._register_crd(new)
        self._record("MODIFIED", key, new)
        return self.view(rt, new)

    def patch(self, rt, namespace, name, content_type, patch, subresource=None, dry_run=False):
        with self.cond:
            key = self.key(rt, namespace, name)
            old = self.objects.get(key)
            if old is None:
                raise not_found(rt, name)
            current = self.view(rt, old)
            if content_type == "application/merge-patch+json":
                new = merge_patch(current, patch)
            elif content_type == "application/strategic-merge-patch+json":
                if rt.custom:  # CRs have no Go struct with patch strategies
                    raise ApiError(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - accepted media types "
                                   "include: application/json-patch+json, application/merge-patch+json, "
                                   "application/apply-patch+yaml")
                if not isinstance(patch, dict):
                    raise bad_request("strategic merge patch must be a JSON object")
                new = strategic_merge_patch(current, patch)
            elif content_type == "application/json-patch+json":
                new = json_patch(current, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/strategic-merge-patch+json")
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise bad_request("the patch removed the object's metadata")
            given = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
            if given and given != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if (new["metadata"].get("name") or name) != name:
                raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (new["metadata"].get("name"), name))
            obj = self._decode(rt, new, namespace)
            return self._replace(rt, key, old, obj, subresource, dry_run)

    def delete(self, rt, namespace, name, options=None, dry_run=False):
        options = options or {}
        with self.cond:
            key = self.key(rt, namespace, name)
            old = self.objects.get(key)
            if old is None:
                raise not_found(rt, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise conflict(rt, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (pre["uid"], old["metadata"]["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name, "Precondition failed: ResourceVersion in precondition: %s, "
                               "ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], old["metadata"]["resourceVersion"]))
            if dry_run:
                return self.view(rt, old)
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return self.view(rt, old)
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_stamp()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                self._bump(new)
                self.objects[key] = new
                self._record("MODIFIED", key, new)
                return self.view(rt, new)
            gone = copy.deepcopy(old)
            del self.objects[key]
            self._bump(gone)
            self._after_delete(rt, key, gone)
            self._record("DELETED", key, gone)
            if rt.plural in RETURNS_DELETED:
                return self.view(rt, gone)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": _details(rt, name, uid=old["metadata"]["uid"])}

    def _after_delete(self, rt, key, obj):
        """Deleting a namespace removes its objects at once (no namespace controller: lenient);
        deleting a CRD removes its resources and their objects."""
        if rt.plural == "namespaces":
            for other in [k for k in self.objects if k[2] == key[3] and k[1] != "namespaces"]:
                self._drop(other)
        if rt.plural == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            for other in [k for k in self.objects
                          if k[:2] == (spec.get("group"), (spec.get("names") or {}).get("plural"))]:
                self._drop(other)
            self._unregister_crd(obj)

    def _drop(self, key):
        gone = self.objects.pop(key)
        self._bump(gone)
        self._record("DELETED", key, gone)

    # -- eviction (pkg/registry/core/pod/storage/eviction.go, v1.34.1)
    def evict(self, namespace, name, body):
        pods = self.resource("", "v1", "pods")
        if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
            raise bad_request("not a Eviction object")
        if (body.get("metadata") or {}).get("name") != name:
            raise bad_request("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        dry_run = bool(options.get("dryRun"))
        with self.cond:
            pod = self.objects.get(self.key(pods, namespace, name))
            if pod is None:
                raise not_found(pods, name)
            status = pod.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
                self.delete(pods, namespace, name, options, dry_run)
                return EVICTED
            pdb_rt = self.resource("policy", "v1", "poddisruptionbudgets")
            matching = []
            for key, pdb in sorted(self.objects.items()):
                if key[:3] != ("policy", "poddisruptionbudgets", namespace):
                    continue
                terms = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
                if terms and label_match(terms, pod["metadata"].get("labels")):
                    matching.append((key, pdb))
            if len(matching) > 1:
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500,
                        "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                                   "does not support."}
            if matching:
                key, pdb = matching[0]
                pstatus = pdb.get("status") or {}
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
                skip = not ready and pstatus.get("currentHealthy", 0) >= pstatus.get("desiredHealthy", 0) > 0
                if not skip:
                    self._check_and_decrement(pdb_rt, key, pdb, name, dry_run)
            self.delete(pods, namespace, name, options, dry_run)
            return EVICTED

    def _check_and_decrement(self, pdb_rt, key, pdb, pod_name, dry_run):
        status = pdb.get("status") or {}
        pdb_name = pdb["metadata"]["name"]
        if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 0):
            raise too_many_requests("Cannot evict pod as it would violate the pod's disruption budget.",
                                    "The disruption budget %s is still being processed by the server." % pdb_name, 10)
        allowed = status.get("disruptionsAllowed", 0)
        if allowed < 0:
            raise ApiError(403, "Forbidden", 'poddisruptionbudget.policy "%s" is forbidden: pdb disruptions allowed '
                           "is negative" % pdb_name, {"name": pdb_name, "group": "policy",
                                                      "kind": "poddisruptionbudget"})
        if allowed == 0:
            raise too_many_requests("Cannot evict pod as it would violate the pod's disruption budget.",
                                    "The disruption budget %s needs %d healthy pods and has %d currently"
                                    % (pdb_name, status.get("desiredHealthy", 0), status.get("currentHealthy", 0)))
        if dry_run:
            return
        new = copy.deepcopy(pdb)
        new_status = new.setdefault("status", {})
        new_status["disruptionsAllowed"] = allowed - 1
        new_status.setdefault("disruptedPods", {})[pod_name] = now_stamp()
        if allowed - 1 == 0:  # pdbhelper.UpdateDisruptionAllowedCondition
            conditions = [c for c in new_status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
            conditions.append({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                               "message": "", "lastTransitionTime": now_stamp(),
                               "observedGeneration": new_status.get("observedGeneration", 0)})
            new_status["conditions"] = conditions
        self._bump(new)
        self.objects[key] = new
        self._record("MODIFIED", key, new)

    # -- watch
    def watch(self, rt, namespace, name_hint, label_selector, field_selector, resource_version,
              send_initial, deadline, stop):
        """Yield watch events ({type, object}) until deadline or stop; raises ApiError before the first."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(rt, field_selector)
        del name_hint

        def wanted(key3, obj):
            return key3[:2] == (rt.group, rt.plural) and (not namespace or not rt.namespaced or key3[2] == namespace) \
                and label_match(labels, obj["metadata"].get("labels")) and field_match(fields, obj)

        with self.cond:
            initial = []
            if resource_version in ("", "0") or send_initial:
                initial = [self.view(rt, obj) for key, obj in sorted(self.objects.items()) if wanted(key[:3], obj)]
                start = self.rv
            else:
                try:
                    start = int(resource_version)
                except ValueError:
                    raise bad_request("invalid resource version: %s" % resource_version)
                if start < self.first_rv - 1 or (self.events and start < self.events[0][0] - 1
                                                 and len(self.events) >= self.EVENT_LOG):
                    raise ApiError(410, "Expired", "too old resource version: %d (%d)" % (start, self.rv))
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        if send_initial:
            yield {"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {
                "resourceVersion": str(start), "annotations": {"k8s.io/initial-events-end": "true"}}}}
        seen = start
        while not stop.is_set() and not self.closed:
            batch = []
            with self.cond:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if not self.events or self.events[-1][0] <= seen:
                    self.cond.wait(min(remaining, 1.0))
                for rv, kind, key3, obj in self.events[bisect.bisect_right(self.events, seen, key=lambda e: e[0]):]:
                    seen = rv
                    if wanted(key3, obj):
                        batch.append({"type": kind, "object": self.view(rt, obj)})
            yield from batch

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


# --------------------------------------------------------------------------- HTTP


PATH_RE = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                     r"(?:/namespaces/(?P<ns>[^/]+)(?=/))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$")


class KubeAPI:
    """The API server; embed with `handle(handler)` from an http.server handler, or `serve()`."""

    def __init__(self, state_path=None, version=None, audit_path=None):
        self.store = Store(state_path)
        self.audit = AuditLog(audit_path) if audit_path else None
        self.version = version or {"major": "1", "minor": "34", "gitVersion": "v1.34.1+k3s1",
                                   "platform": "linux/amd64"}
        self.stop = threading.Event()
        self.httpd = None

    # -- serving
    def serve(self, host, port, certfile, keyfile, client_ca):
        """Start serving HTTPS in a thread; returns the bound port."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
        context.set_alpn_protocols(["http/1.1"])  # no HTTP/2: Go clients fall back to HTTP/1.1
        httpd = http.server.ThreadingHTTPServer((host, port), self.handler_class())
        httpd.daemon_threads = True
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.httpd = httpd
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd.server_address[1]

    def handler_class(self, base=None):
        """A handler class bound to this server. An embedder (core.py) passes its own subclass of
        BaseHandler whose do_GET/do_POST answer their own paths first and call
        `self.api().handle(self)` (or BaseHandler._dispatch) for the rest."""
        api = self
        return type("BoundKubeAPIHandler", (base or BaseHandler,), {"api": lambda _handler: api})

    def shutdown(self):
        self.stop.set()
        self.store.close()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    # -- requests
    def handle(self, req):
        """Answer one request on an http.server handler whose TLS peer is already authenticated."""
        parsed = urllib.parse.urlsplit(req.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        try:
            if req.command == "GET" and parsed.path in HEALTH_PATHS:
                return req.send_text(200, "ok")
            if req.command == "GET":
                answer = self._discovery(parsed.path)
                if answer is not None:
                    return req.send_json(200, answer)
            match = PATH_RE.match(parsed.path)
            if not match:
                raise unknown_path()
        except ApiError as exc:
            return req.send_error_status(exc)
        received = time.time()
        req.body_read, req.status_sent = b"", 0  # one handler serves every request of a connection
        try:
            self._resource(req, match, query)
        except ApiError as exc:
            req.send_error_status(exc)
        finally:
            if self.audit:
                self.audit.record(req, match, query, received)
        return None

    def _discovery(self, path):
        """Legacy discovery documents (apiserver/pkg/endpoints/discovery/{legacy,root,group,version}.go).
        The aggregated form (apidiscovery.k8s.io/v2) is not served: clients that ask for it with
        `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...,application/json`
        get application/json and fall back to legacy discovery (client-go discovery_client.go)."""
        path = path.rstrip("/") or "/"
        if path == "/version":
            return self.version
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}
        groups = self.store.groups()
        if path.startswith("/openapi/v3"):
            return self._openapi_v3(path, groups)
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                self._group(g, v) for g, v in groups.items() if g]}
        match = re.match(r"^/apis/([^/]+)$", path)
        if match and match.group(1) in groups:
            return dict(self._group(match.group(1), groups[match.group(1)]), kind="APIGroup", apiVersion="v1")
        match = re.match(r"^/(?:api/(v1)|apis/([^/]+)/([^/]+))$", path)
        if match:
            group, version = ("", "v1") if match.group(1) else (match.group(2), match.group(3))
            types = [rt for rt in self.store.type_list() if (rt.group, rt.version) == (group, version)]
            if not types:
                return None
            resources = []
            for rt in types:
                resources.append(rt.discovery())
                if rt.status:
                    resources.append({"name": rt.plural + "/status", "singularName": "", "namespaced": rt.namespaced,
                                      "kind": rt.kind, "verbs": ["get", "patch", "update"]})
                if rt.plural == "pods":  # drain.CheckEvictionSupport looks for this entry
                    resources.append({"name": "pods/eviction", "singularName": "", "namespaced": True,
                                      "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
                    resources.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                                      "verbs": ["get"]})
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group + "/" + version
                    if group else version, "resources": resources}
        return None

    def _openapi_v3(self, path, groups):
        """Only what kubectl reads before create/replace/patch: whether each kind's PATCH operation
        takes the `fieldValidation` query parameter (cli-runtime resource/query_param_verifier_v3.go),
        so that kubectl sends fieldValidation=Strict instead of validating against a schema it would
        download. No component schemas are served (kubectl explain and client-side apply of built-in
        kinds need them: not supported)."""
        names = ["api/v1"] + ["apis/%s/%s" % (g, v) for g, versions in groups.items() if g for v in versions]
        if path == "/openapi/v3":
            return {"paths": {n: {"serverRelativeURL": "/openapi/v3/" + n} for n in names}}
        name = path[len("/openapi/v3/"):]
        if name not in names:
            return None
        group, version = ("", "v1") if name == "api/v1" else tuple(name.split("/")[1:3])
        paths = {}
        for rt in [rt for rt in self.store.type_list() if (rt.group, rt.version) == (group, version)]:
            item = "/%s/%s%s/{name}" % (name, "namespaces/{namespace}/" if rt.namespaced else "", rt.plural)
            paths[item] = {"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
                "parameters": [{"name": p, "in": "query", "schema": {"type": "string"}}
                               for p in ("dryRun", "fieldManager", "fieldValidation", "force")]}}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": self.version["gitVersion"]},
                "paths": paths}

    @staticmethod
    def _group(name, versions):
        entries = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": entries[0]}

    def _resource(self, req, match, query):
        group, version = ("", "v1") if match.group("core") else (match.group("group"), match.group("version"))
        namespace, plural = match.group("ns"), match.group("plural")
        name, sub = match.group("name"), match.group("sub")
        rt = self.store.resource(group, version, plural)
        if namespace and not rt.namespaced:
            raise unknown_path()
        if rt.namespaced and name and namespace is None:
            raise unknown_path()
        namespace = namespace or ""
        if sub not in (None, "status") and not (sub in ("eviction", "log") and plural == "pods"):
            raise unknown_path()
        if sub == "status" and not rt.status:
            raise unknown_path()
        dry_run = query.get("dryRun") == "All"
        store = self.store
        method = req.command
        if method == "GET" and name and sub == "log":
            tail = query.get("tailLines")
            return req.send_text(200, store.log(namespace, name, query.get("container"),
                                                int(tail) if tail not in (None, "") else None,
                                                query.get("previous") in ("true", "1")))
        if sub == "log":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if method == "GET" and name:
            return req.send_json(200, store.get(rt, namespace, name))
        if method == "GET":
            if query.get("watch") in ("true", "1"):
                return self._watch(req, rt, namespace, query)
            return req.send_json(200, store.list(rt, namespace, query.get("labelSelector", ""),
                                                 query.get("fieldSelector", "")))
        body = req.read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
        body_type = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        if method in ("POST", "PUT") and body_type in ("application/vnd.kubernetes.protobuf", "application/cbor"):
            # Only JSON is served: 415, on which client-go retries with JSON (what kubectl's typed
            # clients, e.g. `kubectl create configmap`, send first).
            raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - '
                           'accepted media types include: application/json, application/yaml')
        if method == "POST" and sub == "eviction" and name:
            result = store.evict(namespace, name, self._json(body))
            return req.send_json(result["code"], result)
        if method == "POST" and not name:
            return req.send_json(201, store.create(rt, namespace, self._json(body), dry_run))
        if method == "PUT" and name:
            return req.send_json(200, store.update(rt, namespace, name, self._json(body), sub, dry_run))
        if method == "PATCH" and name:
            content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type == "application/apply-patch+yaml":
                raise ApiError(415, "UnsupportedMediaType", "server-side apply is not implemented by the stand-in")
            return req.send_json(200, store.patch(rt, namespace, name, content_type, self._json(body), sub, dry_run))
        if method == "DELETE" and name and not sub:
            options = self._json(body) if body and body.strip() else {}
            result = store.delete(rt, namespace, name, options, dry_run)
            return req.send_json(200, result)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _json(body):
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise bad_request("the body of the request could not be decoded as JSON: %s" % exc)

    def _watch(self, req, rt, namespace, query):
        """Chunked stream of JSON watch events (apiserver/pkg/endpoints/handlers/watch.go): one
        object per chunk; ends after timeoutSeconds (default 1800 s, the min-request-timeout)."""
        timeout = float(query.get("timeoutSeconds") or 1800)
        if "sendInitialEvents" in query and query.get("resourceVersionMatch") != "NotOlderThan":
            raise ApiError(422, "Invalid", "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                           "resourceVersionMatch to NotOlderThan", {})
        if query.get("sendInitialEvents") == "true" and query.get("allowWatchBookmarks") != "true":
            raise ApiError(422, "Invalid", "allowWatchBookmarks: Forbidden: allowWatchBookmarks needs to be set to "
                           "true when sendInitialEvents is provided", {})
        events = self.store.watch(rt, namespace, None, query.get("labelSelector", ""),
                                  query.get("fieldSelector", ""), query.get("resourceVersion", ""),
                                  query.get("sendInitialEvents") == "true", time.monotonic() + timeout, self.stop)
        first = None
        try:
            first = next(events)
        except StopIteration:
            pass
        req.start_chunked()
        try:
            if first is not None:
                req.write_chunk(first)
            for event in events:
                req.write_chunk(event)
            req.end_chunked()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            req.close_connection = True


class AuditLog:
    """What kube-apiserver writes with --audit-log-path and a policy that logs resource requests
    (apiserver/pkg/apis/audit/v1/types.go Event, one JSON object per line, stage ResponseComplete;
    the verb from apiserver/pkg/endpoints/request/requestinfo.go). K3S writes none unless given
    `kube-apiserver-arg: audit-log-path=...`; the stand-in always does, as the tests' record of
    what clients asked (cordon, drain, uncordon). Level Request (the request body) for writes,
    Metadata for reads and for Secrets (as the upstream audit policy examples advise)."""

    WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    @classmethod
    def verb(cls, method, name, query):
        if method == "GET":
            return "watch" if query.get("watch") in ("true", "1") else ("get" if name else "list")
        verb = cls.WRITE_VERBS.get(method, method.lower())
        return "deletecollection" if verb == "delete" and not name else verb

    @staticmethod
    def user(req):
        subject = [pair for rdn in (req.connection.getpeercert() or {}).get("subject", ()) for pair in rdn]
        return {"username": dict(subject).get("commonName", "system:anonymous"),
                "groups": [value for key, value in subject if key == "organizationName"]}

    def record(self, req, match, query, received):
        group = "" if match.group("core") else match.group("group")
        version = match.group("core") or match.group("version")
        verb = self.verb(req.command, match.group("name"), query)
        ref = {key: value for key, value in (
            ("resource", match.group("plural")), ("namespace", match.group("ns")), ("name", match.group("name")),
            ("apiGroup", group), ("apiVersion", version), ("subresource", match.group("sub"))) if value}
        event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                 "auditID": str(uuid.uuid4()), "stage": "ResponseComplete", "requestURI": req.path,
                 "verb": verb, "user": self.user(req), "sourceIPs": [req.client_address[0]],
                 "userAgent": req.headers.get("User-Agent", ""), "objectRef": ref,
                 "responseStatus": {"metadata": {}, "code": getattr(req, "status_sent", 0)},
                 "requestReceivedTimestamp": rfc3339_micro(received), "stageTimestamp": rfc3339_micro(time.time())}
        body = getattr(req, "body_read", b"")
        if verb not in ("get", "list", "watch") and ref["resource"] != "secrets" and body:
            try:
                event["requestObject"] = json.loads(body)
                event["level"] = "Request"
            except ValueError:
                pass
        line = json.dumps(event, sort_keys=True) + "\n"
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(line)


def rfc3339_micro(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BaseHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 handler with client-certificate authentication (anonymous auth is off in K3S)."""

    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-standin"

    def api(self):  # overridden by KubeAPI.serve
        raise NotImplementedError

    def setup(self):
        self.request.settimeout(30)
        self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        if os.environ.get("KUBEAPI_STANDIN_DEBUG"):
            sys.stderr.write("kubeapi: %s\n" % (fmt % args))

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.body_read = self.rfile.read(length) if length else b""
        return self.body_read

    def send_response(self, code, message=None):
        self.status_sent = code
        super().send_response(code, message)

    def send_json(self, code, body, headers=None):
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ENCODING)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def send_text(self, code, text):
        raw = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def send_error_status(self, exc):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        self.send_json(exc.code, exc.body(), headers)

    def start_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", ENCODING)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, event):
        raw = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
        self.wfile.flush()

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _dispatch(self):
        if not self.connection.getpeercert():
            return self.send_error_status(ApiError(401, "Unauthorized", "Unauthorized"))
        return self.api().handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815 (http.server API)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Kubernetes API server stand-in (tests only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", required=True)
    parser.add_argument("--state")
    args = parser.parse_args(argv)
    api = KubeAPI(args.state)
    port = api.serve(args.host, args.port, args.cert, args.key, args.client_ca)
    sys.stderr.write("kubeapi stand-in serving on %s:%d\n" % (args.host, port))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
