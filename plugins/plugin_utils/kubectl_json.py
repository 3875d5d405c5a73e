# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubectl -o json answers as data, for the filters that decide from them (one parser for all)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)


def _registered(value):
    """The answer inside a registered task result of either client: kubernetes.core.k8s_info's
    `resources` (as a List), or a command's stdout (kubectl -o json); None for a result without an
    answer (failed, skipped). Anything else (an object, a List, JSON text) as it is."""
    if not isinstance(value, dict) or any(key in value for key in ("kind", "items", "metadata", "apiVersion")):
        return value
    if isinstance(value.get("resources"), list):
        return {"kind": "List", "items": value["resources"]}
    if "stdout" in value:
        return value.get("stdout")
    if any(key in value for key in ("failed", "skipped", "changed", "msg")):
        return None
    return value


def read_error(value):
    """The error of a registered read that got no answer (a command with a non-zero rc, or a
    kubernetes.core.k8s_info call that failed), else None. A read that answered but whose `until`
    retries ran out is marked failed too: its answer counts, not that mark."""
    if not isinstance(value, dict):
        return None
    if "rc" in value:
        return None if value["rc"] == 0 else str(value.get("stderr") or value.get("msg") or "kubectl failed").strip()
    if isinstance(value.get("resources"), list) or value.get("skipped"):
        return None
    # `failed_when: false` (a polled read) clears the failed mark, not the module's message.
    if value.get("failed") or value.get("msg"):
        return str(value.get("msg") or "the read failed").strip()
    return None


def load_kubectl_json(value, what):
    """A kubectl -o json answer (string or mapping), or the registered result of a `kubectl -o json`
    command or of kubernetes.core.k8s_info, as a mapping; '' (--ignore-not-found, nothing found) and
    None are None. `what` (the filter's name) starts every error message."""
    value = _registered(value)
    if value is None:
        return None
    if isinstance(value, string_types):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise AnsibleFilterError("%s: not the JSON of kubectl -o json: %s" % (what, exc))
    if isinstance(value, dict):
        return value
    raise AnsibleFilterError("%s: expected kubectl -o json output (an object or a List), got %s"
                             % (what, type(value).__name__))


def kubectl_items(data):
    """The objects of an answer: a List's items, or the one object; [] for None or an empty mapping."""
    if not data:
        return []
    if data.get("kind") == "List" or "items" in data:
        return [i for i in data.get("items") or [] if isinstance(i, dict)]
    return [data]
