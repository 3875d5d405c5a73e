#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: argocd_sync
short_description: Sync an Argo CD application and wait for the result
version_added: 0.1.0
description:
  - Requests a sync of an Argo CD application (C(POST /api/v1/applications/{name}/sync)) and waits until
    the operation this task started has finished with phase C(Succeeded), then until the application is
    C(Synced) and C(Healthy). Each of the three conditions can be selected with O(wait_for).
  - Fails fast when the operation ends C(Failed) or C(Error) (with each resource's message) or when the
    health turns C(Degraded).
  - The state of an earlier operation is never taken for this one. The sync request carries a unique
    C(dictamesh.k3s_gitops/operation-id) info item (shown with the operation in Argo CD); only the
    operation state carrying it counts, so clocks that disagree (API server or ingress against the
    application controller) do not matter. Sync and health are only read from a comparison made after
    the operation finished (C(status.reconciledAt) >= C(finishedAt)).
  - Waits on the application stream (C(GET /api/v1/stream/applications?name=)); falls back to polling
    when the stream is not available.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  revision:
    description: Git revision, tag or Helm chart version to sync to. Default is the application's target revision.
    type: str
  prune:
    description: Delete resources that are no longer in Git.
    type: bool
    default: false
  dry_run:
    description: Ask Argo CD for a dry run (C(kubectl apply --dry-run)). A dry run never reports a change.
    type: bool
    default: false
  resources:
    description: Sync only these resources.
    type: list
    elements: dict
    suboptions:
      group:
        description: API group, empty for core kinds.
        type: str
        default: ''
      kind:
        description: Kind.
        type: str
        required: true
      name:
        description: Name.
        type: str
        required: true
      namespace:
        description: Namespace.
        type: str
  strategy:
    description: Sync strategy. V(apply) runs C(kubectl apply) without hooks, V(hook) runs hooks too.
    type: str
    choices: [apply, hook]
  force:
    description: Use C(--force) (delete and re-create) with the strategy. Needs O(strategy).
    type: bool
    default: false
  sync_options:
    description: Per-sync options, for example V(ServerSideApply=true) or V(CreateNamespace=true).
    type: list
    elements: str
  retry:
    description: Retry a failed sync.
    type: dict
    suboptions:
      limit:
        description: Maximum number of retries.
        type: int
        required: true
      backoff_duration:
        description: First backoff, for example V(5s).
        type: str
      backoff_factor:
        description: Factor applied to the backoff after each retry.
        type: int
      backoff_max_duration:
        description: Largest backoff, for example V(3m).
        type: str
      refresh:
        description: Use the latest revision on retry.
        type: bool
  wait_for:
    description:
      - Conditions to wait for, in this order. V(operation) waits for the sync operation to succeed,
        V(sync) for C(Synced), V(health) for C(Healthy). V(sync) and V(health) imply V(operation).
      - An empty list only requests the sync.
    type: list
    elements: str
    choices: [operation, sync, health]
    default: [operation, sync, health]
  timeout:
    description: Seconds to wait in total (running operation, sync and health) before failing.
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
      - In check mode no sync is requested; C(changed) predicts whether the application is out of sync.
      - A missing application is not an error in check mode (an earlier task would create it).
  diff_mode:
    support: none
  platform:
    platforms: all
  action_group:
    membership:
      - dictamesh.k3s_gitops.argocd
notes:
  - C(changed) is V(false) for a dry run, and otherwise V(true) unless the application was already
    C(Synced) at the same revision and every resource result says C(unchanged). Without waiting it is V(true).
  - A sync blocked by a sync window fails with a message saying so; a window allowing manual syncs
    (C(manualSync)) lets this module through.
"""

EXAMPLES = r"""
- name: Sync the app-of-apps and wait until Synced and Healthy
  dictamesh.k3s_gitops.argocd_sync:
    server_url: https://argocd.example.com
    auth_token: "{{ argocd_token }}"
    name: dictamesh-dev
    project: dictamesh
    prune: true
    timeout: 600

- name: Sync two resources with the apply strategy, replacing an operation in progress
  dictamesh.k3s_gitops.argocd_sync:
    name: customer-adapter-dev
    strategy: apply
    force: true
    resources:
      - group: apps
        kind: Deployment
        name: customer-adapter
        namespace: dictamesh-dev
    on_running_operation: terminate
    wait_for: [operation]
"""

RETURN = r"""
application:
  description: The application as last seen.
  returned: success
  type: dict
operation_state:
  description: C(status.operationState) of the operation this task started.
  returned: when waited for
  type: dict
sync_status:
  description: C(status.sync.status) as last seen.
  returned: success
  type: str
  sample: Synced
health_status:
  description: C(status.health.status) as last seen.
  returned: success
  type: str
  sample: Healthy
revision:
  description: Revision the operation synced (C(syncResult.revision)).
  returned: when waited for
  type: str
resource_messages:
  description: One line per resource result with a message (failures first).
  returned: when waited for
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
    OPERATION_ID_INFO,
    OperationError,
    OperationRunner,
    OperationTracker,
    new_operation_marker,
    operation_state,
    status_of,
)


class SyncError(OperationError):
    pass


def build_sync_request(params):
    """The ApplicationSyncRequest body for ``params`` (only fields given)."""
    body = {"name": params["name"], "prune": params["prune"], "dryRun": params["dry_run"]}
    if params.get("project"):
        body["project"] = params["project"]
    if params.get("app_namespace"):
        body["appNamespace"] = params["app_namespace"]
    if params.get("revision"):
        body["revision"] = params["revision"]
    if params.get("resources"):
        body["resources"] = [
            dict((k, v) for k, v in res.items() if v is not None) for res in params["resources"]
        ]
    if params.get("strategy"):
        body["strategy"] = {params["strategy"]: {"force": params["force"]}}
    if params.get("sync_options"):
        body["syncOptions"] = {"items": list(params["sync_options"])}
    retry = params.get("retry")
    if retry:
        strategy = {"limit": retry["limit"]}
        backoff = dict(
            (api, retry[opt])
            for opt, api in (("backoff_duration", "duration"), ("backoff_factor", "factor"),
                             ("backoff_max_duration", "maxDuration"))
            if retry.get(opt) is not None
        )
        if backoff:
            strategy["backoff"] = backoff
        if retry.get("refresh") is not None:
            strategy["refresh"] = retry["refresh"]
        body["retryStrategy"] = strategy
    return body


def sync_changed(before, after, dry_run):
    """Exact ``changed`` rule (see the module notes)."""
    if dry_run:
        return False
    before_sync = status_of(before).get("sync") or {}
    result = operation_state(after).get("syncResult") or {}
    if before_sync.get("status") != "Synced" or before_sync.get("revision") != result.get("revision"):
        return True
    return any("unchanged" not in (res.get("message") or "") for res in result.get("resources") or [])


class SyncRunner(OperationRunner):
    """Runs one argocd_sync task; ``clock``/``sleep`` are injectable for tests."""

    error = SyncError
    kind = "sync"

    def refusal(self, exc):
        if exc.status == 403 and "sync window" in (exc.message or "").lower():
            return "sync of %r blocked by a sync window: %s" % (self.params["name"], exc.message)
        return None

    def request_sync(self, app):
        """POST the sync (marked with a new operation id); returns (app, tracker)."""
        body = build_sync_request(self.params)
        marker = new_operation_marker()
        body["infos"] = [{"name": OPERATION_ID_INFO, "value": marker}]
        app, previous, dummy = self.request(app, lambda: self.client.sync_application(self.params["name"], body))
        return app, OperationTracker(previous, self.client.last_response_date, marker=marker)

    def run(self):
        params = self.params
        result = dict(changed=False, terminated_operation=False, wait_method=self.waiter.method)
        if self.check_mode and self.client.get_application(
                params["name"], project=params.get("project"), app_namespace=params.get("app_namespace")) is None:
            result.update(changed=not params["dry_run"], warnings=[
                "application %r does not exist (yet): in check mode a sync is predicted" % params["name"]])
            return result
        before = self.get()
        if self.check_mode:
            sync = (status_of(before).get("sync") or {}).get("status")
            result.update(changed=(sync != "Synced") and not params["dry_run"], application=before,
                          sync_status=sync, health_status=(status_of(before).get("health") or {}).get("status"))
            return result
        wait_for = params["wait_for"]
        app, tracker = self.request_sync(before)
        if not wait_for:
            result.update(changed=not params["dry_run"], application=app)
            return self.finish(result, app)
        done, app = self.follow(tracker, [c for c in ("sync", "health") if c in wait_for], result)
        result.update(
            revision=(operation_state(done).get("syncResult") or {}).get("revision"),
            changed=sync_changed(before, done, params["dry_run"]),
        )
        return self.finish(result, app)


def argument_spec():
    return operation_argument_spec(
        revision=dict(type="str"),
        prune=dict(type="bool", default=False),
        dry_run=dict(type="bool", default=False),
        resources=dict(type="list", elements="dict", options=dict(
            group=dict(type="str", default=""),
            kind=dict(type="str", required=True),
            name=dict(type="str", required=True),
            namespace=dict(type="str"),
        )),
        strategy=dict(type="str", choices=["apply", "hook"]),
        force=dict(type="bool", default=False),
        sync_options=dict(type="list", elements="str"),
        retry=dict(type="dict", options=dict(
            limit=dict(type="int", required=True),
            backoff_duration=dict(type="str"),
            backoff_factor=dict(type="int"),
            backoff_max_duration=dict(type="str"),
            refresh=dict(type="bool"),
        )),
        wait_for=dict(type="list", elements="str", choices=["operation", "sync", "health"],
                      default=["operation", "sync", "health"]),
        timeout=dict(type="int", default=300),
    )


def main():
    module = ArgoCDModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["force"] and not module.params["strategy"]:
        module.fail_json(msg="force needs strategy (apply or hook)")
    SyncRunner.exit(module)


if __name__ == "__main__":
    main()
