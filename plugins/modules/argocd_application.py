#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: argocd_application
short_description: Create, update or delete an Argo CD application
version_added: 0.1.0
description:
  - Manages an Argo CD C(Application) through the Argo CD API.
  - Only the fields given in O(spec), O(labels) and O(annotations) are compared with the server's
    application, so that defaults the server adds never cause a change. Lists compare as a whole.
    On update the given fields are merged into the current application (lists replace); a field
    left out is not removed.
  - C(changed) and the diff list exactly the differing fields.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  project:
    description:
      - Argo CD project of the application (C(spec.project)). Required with O(state=present) unless
        O(spec) has C(project).
      - Also used to look the application up. Argo CD answers 404 both for a missing application and
        for one in another project, so the module looks again without the project; an application in
        another project is found and, with O(state=present) and O(upsert), moved to this project.
      - With O(state=absent) an application found in another project is not deleted; the task fails
        naming its project.
    type: str
  state:
    description: V(present) creates or updates the application, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  spec:
    description:
      - The application's C(spec) as in an Application manifest (camelCase keys C(source),
        C(destination), C(syncPolicy), ...).
      - Required with O(state=present) when the application does not exist.
    type: dict
  labels:
    description: Labels of the application (compared as a subset).
    type: dict
  annotations:
    description: Annotations of the application (compared as a subset).
    type: dict
  finalizers:
    description:
      - Finalizers of the application, compared as a whole, for example
        V(resources-finalizer.argocd.argoproj.io) to delete the resources with the application.
    type: list
    elements: str
  upsert:
    description:
      - Update an existing application whose fields differ. With V(false) such an application makes the
        task fail (like the server's answer without C(upsert)).
    type: bool
    default: true
  validate:
    description: Let the server validate the spec (repository, path, destination) on create and update.
    type: bool
    default: true
  cascade:
    description: With O(state=absent), delete the application's resources too (C(?cascade=true)).
    type: bool
    default: true
  propagation_policy:
    description: Kubernetes propagation policy for a cascaded delete.
    type: str
    choices: [foreground, background]
  wait:
    description: With O(state=absent), wait until the application is gone (finalizers done).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 300
extends_documentation_fragment:
  - dictamesh.k3s_gitops.argocd
  - dictamesh.k3s_gitops.argocd.application
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: all
  action_group:
    membership:
      - dictamesh.k3s_gitops.argocd
"""

EXAMPLES = r"""
- name: App of apps for dev (from the GitOps design)
  dictamesh.k3s_gitops.argocd_application:
    server_url: https://argocd.example.com
    auth_token: "{{ argocd_token }}"
    name: dictamesh-dev
    project: dictamesh
    finalizers:
      - resources-finalizer.argocd.argoproj.io
    spec:
      source:
        repoURL: https://github.com/dictamesh/dictamesh.git
        targetRevision: develop
        path: infrastructure/argocd/applications/dev
      destination:
        server: https://kubernetes.default.svc
        namespace: argocd
      syncPolicy:
        automated:
          prune: true
          selfHeal: true
        syncOptions:
          - CreateNamespace=true

- name: Delete an application but keep its resources
  dictamesh.k3s_gitops.argocd_application:
    name: customer-adapter-dev
    project: dictamesh
    state: absent
    cascade: false
"""

RETURN = r"""
application:
  description: The application after the task (before it, in check mode). Absent after a delete.
  returned: when it exists
  type: dict
diff:
  description: Differing fields before and after.
  returned: when changed and diff mode is on
  type: dict
"""

import copy
import time

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDError
from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_module import (
    ArgoCDModule,
    DifferenceTracker,
    application_argument_spec,
    merge,
)


class ApplicationError(Exception):
    pass


def lookup(client, params):
    """The application or None, whichever project it is in.

    With ``project`` Argo CD answers 404 both for a missing application and for one in another
    project (getAppEnforceRBAC), and 403 when the token may not read it in that project: look
    again without the project (a missing application then answers 403 and comes back as None).
    """
    if params.get("project"):
        try:
            found = client.get_application(params["name"], project=params["project"],
                                           app_namespace=params.get("app_namespace"))
        except ArgoCDError as exc:
            if exc.status != 403:
                raise
            found = None
        if found is not None:
            return found
    return client.get_application(params["name"], app_namespace=params.get("app_namespace"))


def project_of(app):
    return (app.get("spec") or {}).get("project") or "default"


def desired_spec(params):
    spec = copy.deepcopy(params.get("spec") or {})
    if params.get("project"):
        spec["project"] = params["project"]
    return spec


def new_application(params):
    metadata = {"name": params["name"]}
    if params.get("app_namespace"):
        metadata["namespace"] = params["app_namespace"]
    for key in ("labels", "annotations", "finalizers"):
        if params.get(key) is not None:
            metadata[key] = copy.deepcopy(params[key])
    return {"metadata": metadata, "spec": desired_spec(params)}


def differences(params, current):
    tracker = DifferenceTracker()
    metadata = current.get("metadata") or {}
    tracker.compare("spec", desired_spec(params), current.get("spec") or {})
    tracker.compare("labels", params.get("labels"), metadata.get("labels") or {})
    tracker.compare("annotations", params.get("annotations"), metadata.get("annotations") or {})
    if params.get("finalizers") is not None and list(params["finalizers"]) != list(metadata.get("finalizers") or []):
        tracker.add("finalizers", metadata.get("finalizers") or [], params["finalizers"])
    return tracker


def updated_application(params, current):
    metadata = copy.deepcopy(current.get("metadata") or {})
    for key in ("labels", "annotations"):
        if params.get(key) is not None:
            metadata[key] = merge(metadata.get(key) or {}, params[key])
    if params.get("finalizers") is not None:
        metadata["finalizers"] = list(params["finalizers"])
    keep = ("name", "namespace", "labels", "annotations", "finalizers", "resourceVersion")
    metadata = dict((k, v) for k, v in metadata.items() if k in keep)
    return {"metadata": metadata, "spec": merge(current.get("spec") or {}, desired_spec(params))}


def ensure_present(client, params, check_mode):
    current = lookup(client, params)
    if current is None:
        if not params.get("spec"):
            raise ApplicationError("spec is required to create application %r" % params["name"])
        if not desired_spec(params).get("project"):
            raise ApplicationError("project (or spec.project) is required to create application %r" % params["name"])
        wanted = new_application(params)
        result = dict(changed=True, diff=dict(before={}, after=wanted))
        if check_mode:
            return result
        result["application"] = client.create_application(wanted, upsert=False, validate=params["validate"])
        return result
    tracker = differences(params, current)
    if tracker.empty:
        return dict(changed=False, application=current)
    if not params["upsert"]:
        moving = params.get("project") and params["project"] != project_of(current)
        raise ApplicationError("application %r exists with different %s and upsert is false%s"
                               % (params["name"], ", ".join(tracker.names),
                                  " (it is in project %r, not %r)" % (project_of(current), params["project"])
                                  if moving else ""))
    before, after = tracker.get_before_after()
    result = dict(changed=True, diff=dict(before=before, after=after), application=current)
    if not check_mode:
        result["application"] = client.update_application(
            updated_application(params, current), validate=params["validate"], project=project_of(current),
        )
    return result


def ensure_absent(client, params, check_mode, clock=time.monotonic, sleep=time.sleep):
    current = lookup(client, params)
    if current is None:
        return dict(changed=False)
    if params.get("project") and params["project"] != project_of(current):
        raise ApplicationError("application %r is in project %r, not %r: not deleted (give its project, or none)"
                               % (params["name"], project_of(current), params["project"]))
    result = dict(changed=True, diff=dict(before={"name": params["name"]}, after={}))
    if check_mode:
        return result
    client.delete_application(
        params["name"], cascade=params["cascade"], propagation_policy=params.get("propagation_policy"),
        app_namespace=params.get("app_namespace"),
    )
    if params["wait"]:
        deadline = clock() + params["wait_timeout"]
        while client.get_application(params["name"], app_namespace=params.get("app_namespace")) is not None:
            if clock() >= deadline:
                raise ApplicationError("application %r still exists after %ss" % (params["name"], params["wait_timeout"]))
            sleep(1)
    return result


def run(client, params, check_mode=False):
    if params["state"] == "absent":
        return ensure_absent(client, params, check_mode)
    return ensure_present(client, params, check_mode)


def main():
    module = ArgoCDModule(
        argument_spec=application_argument_spec(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            spec=dict(type="dict"),
            labels=dict(type="dict"),
            annotations=dict(type="dict"),
            finalizers=dict(type="list", elements="str"),
            upsert=dict(type="bool", default=True),
            validate=dict(type="bool", default=True),
            cascade=dict(type="bool", default=True),
            propagation_policy=dict(type="str", choices=["foreground", "background"]),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module.client, module.params, module.check_mode)
    except ApplicationError as exc:
        module.fail_json(msg=str(exc))
    except ArgoCDError as exc:
        module.fail_api(exc, "application %r" % module.params["name"])
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
