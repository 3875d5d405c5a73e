#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: argocd_project
short_description: Manage an Argo CD project (AppProject)
version_added: 0.1.0
description:
  - Creates (C(POST /api/v1/projects) with C({project, upsert})), updates (C(PUT) carrying the current
    C(resourceVersion)) or deletes an Argo CD C(AppProject).
  - Only the options given are managed; each given option replaces the whole field on the server, and a
    field is compared as a whole (list order counts). Values the server leaves out (false, empty) equal
    a missing field.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  name:
    description: Name of the project.
    type: str
    required: true
  state:
    description: V(present) or V(absent). Argo CD refuses to delete a project that applications still use.
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Description (at most 255 characters).
    type: str
  source_repos:
    description: Repository URLs (globs allowed) that applications of the project may use.
    type: list
    elements: str
  source_namespaces:
    description: Namespaces where Application objects of this project may live.
    type: list
    elements: str
  destinations:
    description: Clusters and namespaces applications may deploy to.
    type: list
    elements: dict
    suboptions:
      server:
        description: API server URL, for example V(https://kubernetes.default.svc).
        type: str
      name:
        description: Cluster name (instead of O(destinations[].server)).
        type: str
      namespace:
        description: Namespace (globs allowed).
        type: str
  cluster_resource_whitelist:
    description: Cluster-scoped kinds applications may create.
    type: list
    elements: dict
    suboptions: &group_kind_name
      group:
        description: API group (V('') for core).
        type: str
        default: ''
      kind:
        description: Kind (globs allowed).
        type: str
        required: true
      name:
        description: Resource name (glob); only for cluster resources.
        type: str
  cluster_resource_blacklist:
    description: Cluster-scoped kinds applications may not create.
    type: list
    elements: dict
    suboptions: *group_kind_name
  namespace_resource_whitelist:
    description: Namespaced kinds applications may create.
    type: list
    elements: dict
    suboptions: &group_kind
      group:
        description: API group (V('') for core).
        type: str
        default: ''
      kind:
        description: Kind (globs allowed).
        type: str
        required: true
  namespace_resource_blacklist:
    description: Namespaced kinds applications may not create.
    type: list
    elements: dict
    suboptions: *group_kind
  sync_windows:
    description: Time windows that allow or deny syncs.
    type: list
    elements: dict
    suboptions:
      kind:
        description: V(allow) or V(deny).
        type: str
        choices: [allow, deny]
        required: true
      schedule:
        description: Cron schedule of the window start, for example V(0 9-17 * * 1-5).
        type: str
        required: true
      duration:
        description: Length of the window, for example V(8h).
        type: str
        required: true
      applications:
        description: Application name globs the window applies to.
        type: list
        elements: str
      namespaces:
        description: Namespace globs the window applies to.
        type: list
        elements: str
      clusters:
        description: Cluster globs the window applies to.
        type: list
        elements: str
      manual_sync:
        description: Allow manual syncs when the window blocks.
        type: bool
      time_zone:
        description: Time zone of O(sync_windows[].schedule), for example V(Europe/Lisbon).
        type: str
      description:
        description: Free text.
        type: str
  orphaned_resources:
    description: Monitoring of resources in the destination namespaces that no application manages.
    type: dict
    suboptions:
      warn:
        description: Raise a warning condition on applications with orphaned resources.
        type: bool
      ignore:
        description: Resources to leave out of the monitoring.
        type: list
        elements: dict
        suboptions:
          group:
            description: API group.
            type: str
          kind:
            description: Kind.
            type: str
          name:
            description: Name (glob).
            type: str
extends_documentation_fragment:
  - dictamesh.k3s_gitops.argocd
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
- name: The dictamesh project of the GitOps design
  dictamesh.k3s_gitops.argocd_project:
    server_url: https://argocd.example.com
    auth_token: "{{ argocd_token }}"
    name: dictamesh
    description: DictaMesh Data Mesh Platform
    source_repos:
      - https://github.com/controle-digital/dictamesh.git
      - https://charts.bitnami.com/bitnami
    destinations:
      - namespace: dictamesh-*
        server: https://kubernetes.default.svc
      - namespace: argocd
        server: https://kubernetes.default.svc
    cluster_resource_whitelist:
      - group: ''
        kind: Namespace
    namespace_resource_whitelist:
      - group: '*'
        kind: '*'
    namespace_resource_blacklist:
      - kind: ResourceQuota
      - kind: LimitRange
    sync_windows:
      - kind: allow
        schedule: 0 9-17 * * 1-5
        duration: 8h
        applications: ['*-prod']
        manual_sync: true
    orphaned_resources:
      warn: true
"""

RETURN = r"""
project:
  description: The project after the task (before it, in check mode).
  returned: when it exists
  type: dict
diff:
  description: Differing fields before and after.
  returned: when changed and diff mode is on
  type: dict
"""

import copy

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDError
from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_module import (
    ArgoCDModule,
    DifferenceTracker,
)

# option -> spec field
FIELDS = (
    ("description", "description"),
    ("source_repos", "sourceRepos"),
    ("source_namespaces", "sourceNamespaces"),
    ("destinations", "destinations"),
    ("cluster_resource_whitelist", "clusterResourceWhitelist"),
    ("cluster_resource_blacklist", "clusterResourceBlacklist"),
    ("namespace_resource_whitelist", "namespaceResourceWhitelist"),
    ("namespace_resource_blacklist", "namespaceResourceBlacklist"),
    ("sync_windows", "syncWindows"),
    ("orphaned_resources", "orphanedResources"),
)
CAMEL = {"manual_sync": "manualSync", "time_zone": "timeZone"}


class ProjectError(Exception):
    pass


def to_api(value):
    """Options -> API: drop None, camelCase the few snake_case keys."""
    if isinstance(value, dict):
        return dict((CAMEL.get(k, k), to_api(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [to_api(v) for v in value]
    return value


def wanted_spec(params):
    return dict((field, to_api(params[option])) for option, field in FIELDS if params.get(option) is not None)


def differences(wanted, current_spec):
    tracker = DifferenceTracker()
    for field, value in wanted.items():
        tracker.compare(field, value, current_spec.get(field))
    return tracker


def run(client, params, check_mode=False):
    current = client.get_project(params["name"])
    if params["state"] == "absent":
        if current is None:
            return dict(changed=False)
        if not check_mode:
            client.delete_project(params["name"])
        return dict(changed=True, diff=dict(before={"name": params["name"]}, after={}))
    wanted = wanted_spec(params)
    if current is None:
        project = {"metadata": {"name": params["name"]}, "spec": wanted}
        result = dict(changed=True, diff=dict(before={}, after=wanted))
        if not check_mode:
            result["project"] = client.create_project(project, upsert=False)
        return result
    tracker = differences(wanted, current.get("spec") or {})
    if tracker.empty:
        return dict(changed=False, project=current)
    before, after = tracker.get_before_after()
    result = dict(changed=True, diff=dict(before=before, after=after), project=current)
    if not check_mode:
        metadata = dict((k, v) for k, v in (current.get("metadata") or {}).items()
                        if k in ("name", "namespace", "labels", "annotations", "finalizers", "resourceVersion"))
        spec = copy.deepcopy(current.get("spec") or {})
        spec.update(wanted)
        try:
            result["project"] = client.update_project({"metadata": metadata, "spec": spec})
        except ArgoCDError as exc:
            if exc.status == 409:
                raise ProjectError("project %r was changed by someone else meanwhile (resourceVersion %s is stale): "
                                   "run again" % (params["name"], metadata.get("resourceVersion")))
            raise
    return result


GROUP_KIND_NAME = dict(group=dict(type="str", default=""), kind=dict(type="str", required=True), name=dict(type="str"))
GROUP_KIND = dict(group=dict(type="str", default=""), kind=dict(type="str", required=True))


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        source_repos=dict(type="list", elements="str"),
        source_namespaces=dict(type="list", elements="str"),
        destinations=dict(type="list", elements="dict", options=dict(
            server=dict(type="str"), name=dict(type="str"), namespace=dict(type="str"))),
        cluster_resource_whitelist=dict(type="list", elements="dict", options=copy.deepcopy(GROUP_KIND_NAME)),
        cluster_resource_blacklist=dict(type="list", elements="dict", options=copy.deepcopy(GROUP_KIND_NAME)),
        namespace_resource_whitelist=dict(type="list", elements="dict", options=copy.deepcopy(GROUP_KIND)),
        namespace_resource_blacklist=dict(type="list", elements="dict", options=copy.deepcopy(GROUP_KIND)),
        sync_windows=dict(type="list", elements="dict", options=dict(
            kind=dict(type="str", choices=["allow", "deny"], required=True),
            schedule=dict(type="str", required=True),
            duration=dict(type="str", required=True),
            applications=dict(type="list", elements="str"),
            namespaces=dict(type="list", elements="str"),
            clusters=dict(type="list", elements="str"),
            manual_sync=dict(type="bool"),
            time_zone=dict(type="str"),
            description=dict(type="str"),
        )),
        orphaned_resources=dict(type="dict", options=dict(
            warn=dict(type="bool"),
            ignore=dict(type="list", elements="dict", options=dict(
                group=dict(type="str"), kind=dict(type="str"), name=dict(type="str"))),
        )),
    )


def main():
    module = ArgoCDModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.client, module.params, module.check_mode)
    except ProjectError as exc:
        module.fail_json(msg=str(exc))
    except ArgoCDError as exc:
        module.fail_api(exc, "project %r" % module.params["name"])
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
