# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module base for the Argo CD modules: common options, client, diff helpers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDClient

ARGOCD_COMMON_ARGS = dict(
    server_url=dict(type="str", required=True, fallback=(env_fallback, ["ARGOCD_SERVER"])),
    auth_token=dict(type="str", no_log=True, fallback=(env_fallback, ["ARGOCD_AUTH_TOKEN"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    base_path=dict(type="str", default=""),
    request_timeout=dict(type="int", default=30),
)


# Options naming one application (doc fragment dictamesh.k3s_gitops.argocd.application).
ARGOCD_APPLICATION_ARGS = dict(
    name=dict(type="str", required=True),
    project=dict(type="str"),
    app_namespace=dict(type="str"),
)

# Waiting for an operation the module started (doc fragment dictamesh.k3s_gitops.argocd.operation).
ARGOCD_OPERATION_ARGS = dict(
    poll_interval=dict(type="float", default=2.0),
    watch=dict(type="bool", default=True),
    on_running_operation=dict(type="str", choices=["wait", "terminate", "fail"], default="wait"),
)


def application_argument_spec(**extra):
    """Return the options naming one application merged with the module's own (which win)."""
    spec = copy.deepcopy(ARGOCD_APPLICATION_ARGS)
    spec.update(extra)
    return spec


def operation_argument_spec(**extra):
    """Return the application options and the operation-waiting options merged with the module's own."""
    spec = application_argument_spec(**copy.deepcopy(ARGOCD_OPERATION_ARGS))
    spec.update(extra)
    return spec


def argocd_argument_spec(**extra):
    """Return the common connection options merged with the module's own."""
    spec = copy.deepcopy(ARGOCD_COMMON_ARGS)
    spec.update(extra)
    return spec


class ArgoCDModule(AnsibleModule):
    """AnsibleModule with the common Argo CD options and a client."""

    def __init__(self, argument_spec=None, require_token=True, **kwargs):
        super(ArgoCDModule, self).__init__(argument_spec=argocd_argument_spec(**(argument_spec or {})), **kwargs)
        if require_token and not self.params.get("auth_token"):
            self.fail_json(msg="auth_token is required (or set ARGOCD_AUTH_TOKEN); "
                               "use dictamesh.k3s_gitops.argocd_login to get one")
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def make_client(self):
        params = self.params
        return ArgoCDClient(
            server_url=params["server_url"],
            auth_token=params.get("auth_token"),
            base_path=params.get("base_path") or "",
            validate_certs=params["validate_certs"],
            ca_path=params.get("ca_path"),
            timeout=params["request_timeout"],
        )

    def fail_api(self, exc, what, **result):
        """Fail with a message naming the action and the API error."""
        self.fail_json(msg="%s: %s" % (what, exc), error=exc.to_dict(), **result)


# ---------------------------------------------------------------- diffing
def is_subset(wanted, current):
    """True when every field of ``wanted`` equals the same field of ``current``.

    Dicts are compared recursively on the keys ``wanted`` gives (server
    defaults in ``current`` are ignored); lists and scalars compare equal
    only when identical (lists of dicts item by item, as subsets). A zero
    value (false, empty) in ``wanted`` equals a missing field in ``current``.
    """
    if current is None and wanted in (False, "", 0) and not isinstance(wanted, dict):
        return True  # the server omits zero values (Go omitempty)
    if isinstance(wanted, dict):
        if current is None and not wanted:
            return True
        if not isinstance(current, dict):
            return False
        return all(is_subset(v, current.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        if current is None and not wanted:
            return True
        if not isinstance(current, list) or len(wanted) != len(current):
            return False
        return all(is_subset(w, c) for w, c in zip(wanted, current))
    if wanted is None:
        return current in (None, "", [], {}, False, 0)
    return wanted == current


def merge(current, wanted):
    """Recursively merge ``wanted`` into a copy of ``current`` (lists replace)."""
    if not isinstance(current, dict) or not isinstance(wanted, dict):
        return copy.deepcopy(wanted)
    result = copy.deepcopy(current)
    for key, value in wanted.items():
        result[key] = merge(result.get(key), value) if isinstance(value, dict) else copy.deepcopy(value)
    return result


def project_paths(obj, shape):
    """Keep only the keys of ``obj`` that ``shape`` has (recursively for dicts)."""
    if not isinstance(shape, dict) or not isinstance(obj, dict):
        return copy.deepcopy(obj)
    return dict((k, project_paths(obj.get(k), v)) for k, v in shape.items() if k in obj)


class DifferenceTracker:
    """Record field differences so that ``changed`` and ``diff`` agree exactly."""

    def __init__(self):
        self._diffs = []

    def add(self, name, before, after):
        self._diffs.append({"name": name, "before": before, "after": after})

    def compare(self, name, wanted, current):
        """Record a difference unless ``wanted`` is None or a subset of ``current``."""
        if wanted is None or is_subset(wanted, current):
            return False
        self.add(name, project_paths(current, wanted) if isinstance(wanted, dict) else current, wanted)
        return True

    @property
    def empty(self):
        return not self._diffs

    @property
    def names(self):
        return [d["name"] for d in self._diffs]

    def get_before_after(self):
        before = dict((d["name"], d["before"]) for d in self._diffs)
        after = dict((d["name"], d["after"]) for d in self._diffs)
        return before, after
