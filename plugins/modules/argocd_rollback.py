#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: argocd_rollback
short_description: Roll an Argo CD application back to an earlier entry of its history and wait
version_added: 0.1.0
description:
  - Rolls an Argo CD application back to an entry of its deployment history
    (C(POST /api/v1/applications/{name}/rollback) with C(id), C(prune) and C(dryRun)) and waits until the
    operation this task started has finished with phase C(Succeeded), then until the application is C(Healthy).
  - The history entry is selected by its O(id) or by the newest entry deployed at O(revision).
  - Nothing is requested when the newest history entry already has the revision and source of the selected
    entry (the application runs what was asked for), so running the task again changes nothing.
  - Argo CD refuses a rollback while automated sync is enabled on the application (it would sync back to
    the target revision at once); the module fails early with a message saying so.
  - Waiting uses the same logic as M(dictamesh.k3s_gitops.argocd_sync); after a rollback the application is
    usually C(OutOfSync) with its target revision, so only the operation and the health are waited for.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  id:
    description:
      - C(id) of the history entry (C(status.history[].id)) to roll back to.
      - Exactly one of O(id) and O(revision) is required.
    type: int
  revision:
    description:
      - Roll back to the newest history entry deployed at this revision (the full commit SHA or chart
        version Argo CD recorded).
    type: str
  prune:
    description: Delete resources that the history entry does not have.
    type: bool
    default: false
  dry_run:
    description: Ask Argo CD for a dry run. A dry run never reports a change.
    type: bool
    default: false
  wait_for:
    description:
      - Conditions to wait for, in this order. V(operation) waits for the rollback operation to succeed,
        V(health) for C(Healthy) (implies V(operation)). An empty list only requests the rollback.
    type: list
    elements: str
    choices: [operation, health]
    default: [operation, health]
  timeout:
    description: Seconds to wait in total before failing.
    type: int
    default: 300
extends_documentation_fragment:
  - dictamesh.k3s_gitops.argocd
  - dictamesh.k3s_gitops.argocd.application
  - dictamesh.k3s_gitops.argocd.operation
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details:
      - In check mode no rollback is requested; the history entry and the automated sync policy are still
        checked, and C(changed) predicts whether a rollback would be requested.
  diff_mode:
    support: none
  platform:
    platforms: all
  action_group:
    membership:
      - dictamesh.k3s_gitops.argocd
notes:
  - Argo CD keeps C(spec.revisionHistoryLimit) entries (default 10); older ids cannot be rolled back to.
  - A rollback does not change the application's target revision in Git; the next sync (manual or
    automated, once re-enabled) goes back to it.
"""

EXAMPLES = r"""
- name: Roll dictamesh-dev back to history entry 4 and wait until it is healthy
  dictamesh.k3s_gitops.argocd_rollback:
    server_url: https://argocd.example.com
    auth_token: "{{ argocd_token }}"
    name: dictamesh-dev
    project: dictamesh
    id: 4

- name: Roll back to the deployment of a given commit, pruning what it did not have
  dictamesh.k3s_gitops.argocd_rollback:
    name: customer-adapter-dev
    revision: 0c4e1a9d0b3f6e8f2a7c5d9e1b2a3c4d5e6f7a8b
    prune: true
    timeout: 600
"""

RETURN = r"""
application:
  description: The application as last seen.
  returned: success
  type: dict
history_entry:
  description: The history entry rolled back to (C(id), C(revision), C(source), C(deployedAt)).
  returned: success
  type: dict
operation_state:
  description: C(status.operationState) of the operation this task started.
  returned: when a rollback was requested and waited for
  type: dict
revision:
  description: Revision of the history entry.
  returned: success
  type: str
sync_status:
  description: C(status.sync.status) as last seen (usually C(OutOfSync) after a rollback).
  returned: success
  type: str
health_status:
  description: C(status.health.status) as last seen.
  returned: success
  type: str
  sample: Healthy
resource_messages:
  description: One line per resource result with a message (failures first).
  returned: when a rollback was requested and waited for
  type: list
  elements: str
wait_method:
  description: V(stream) or V(poll), how the module waited.
  returned: success
  type: str
terminated_operation:
  description: Whether an operation in progress was terminated.
  returned: success
  type: bool
"""

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_module import (
    ArgoCDModule,
    operation_argument_spec,
)
from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_wait import (
    OperationError,
    OperationRunner,
    OperationTracker,
    status_of,
)

AUTO_SYNC = "rollback cannot be initiated when auto-sync is enabled"


class RollbackError(OperationError):
    pass


def history_of(app):
    """``status.history`` sorted by id (ids may come as strings: int64 in JSON)."""
    entries = status_of(app).get("history") or []
    return sorted(entries, key=lambda e: int(e.get("id") or 0))


def select_entry(app, entry_id=None, revision=None):
    """The history entry with ``entry_id``, or the newest one at ``revision``; RollbackError when none."""
    history = history_of(app)
    name = (app.get("metadata") or {}).get("name")
    if entry_id is not None:
        for entry in history:
            if int(entry.get("id") or 0) == entry_id:
                return entry
        raise RollbackError("application %r has no history entry with id %s (ids: %s)" % (
            name, entry_id, ", ".join(str(e.get("id")) for e in history) or "none"), app)
    for entry in reversed(history):
        if entry.get("revision") == revision:
            return entry
    raise RollbackError("application %r has no history entry at revision %r (revisions: %s)" % (
        name, revision, ", ".join(str(e.get("revision")) for e in history) or "none"), app)


def already_deployed(app, entry):
    """True when the newest history entry has the revision and source of ``entry``."""
    history = history_of(app)
    if not history:
        return False
    latest = history[-1]
    return latest.get("revision") == entry.get("revision") and (latest.get("source") or {}) == (entry.get("source") or {})


def auto_sync_enabled(app):
    automated = ((app.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    if not isinstance(automated, dict):
        return bool(automated)
    return automated.get("enabled", True) is not False


def build_rollback_request(params, entry_id):
    """The ApplicationRollbackRequest body (only fields given)."""
    body = {"name": params["name"], "id": int(entry_id), "prune": params["prune"], "dryRun": params["dry_run"]}
    if params.get("project"):
        body["project"] = params["project"]
    if params.get("app_namespace"):
        body["appNamespace"] = params["app_namespace"]
    return body


class RollbackRunner(OperationRunner):
    """Runs one argocd_rollback task (waiting as argocd_sync does); ``clock``/``sleep`` injectable for tests."""

    error = RollbackError
    kind = "rollback"

    def refusal(self, exc):
        if exc.status == 400 and AUTO_SYNC in (exc.message or "").lower():
            return auto_sync_message(self.params["name"])
        return None

    def request_rollback(self, app, entry):
        """POST the rollback; returns (app, tracker)."""
        body = build_rollback_request(self.params, entry["id"])
        app, previous, answer = self.request(app, lambda: self.client.rollback_application(self.params["name"], body))
        # a rollback request cannot carry an info marker: recognise the operation the server
        # recorded by its revision and source, with a tolerance for clock skew
        return app, OperationTracker(previous, self.client.last_response_date,
                                     expected=(answer or {}).get("operation") or None)

    def run(self):
        params = self.params
        before = self.get()
        entry = select_entry(before, params.get("id"), params.get("revision"))
        if auto_sync_enabled(before):
            raise RollbackError(auto_sync_message(params["name"]), before)
        result = dict(changed=False, terminated_operation=False, wait_method=self.waiter.method,
                      history_entry=entry, revision=entry.get("revision"))
        if already_deployed(before, entry):
            return self.finish(result, before)
        if self.check_mode:
            result["changed"] = not params["dry_run"]
            return self.finish(result, before)
        wait_for = params["wait_for"]
        app, tracker = self.request_rollback(before, entry)
        result["changed"] = not params["dry_run"]
        if wait_for:
            dummy, app = self.follow(tracker, [c for c in ("health",) if c in wait_for], result)
        return self.finish(result, app)


def auto_sync_message(name):
    return ("%s on %r: disable automated sync first (for example with dictamesh.k3s_gitops.argocd_application "
            "and no syncPolicy.automated), then roll back" % (AUTO_SYNC, name))


def argument_spec():
    return operation_argument_spec(
        id=dict(type="int"),
        revision=dict(type="str"),
        prune=dict(type="bool", default=False),
        dry_run=dict(type="bool", default=False),
        wait_for=dict(type="list", elements="str", choices=["operation", "health"], default=["operation", "health"]),
        timeout=dict(type="int", default=300),
    )


def main():
    module = ArgoCDModule(
        argument_spec=argument_spec(), supports_check_mode=True,
        mutually_exclusive=[("id", "revision")], required_one_of=[("id", "revision")],
    )
    RollbackRunner.exit(module)


if __name__ == "__main__":
    main()
