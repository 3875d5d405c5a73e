#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: argocd_application_info
short_description: Read Argo CD applications
version_added: 0.1.0
description:
  - Returns one application by O(name), or the applications matching O(projects), O(selector) and O(repo).
  - A missing application gives an empty list. Without O(project), Argo CD answers a missing application
    with 403 (deliberately, CVE-2022-41354); this module reports it as missing too.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  name:
    description: Name of one application.
    type: str
  project:
    description: Project of the application named O(name) (a missing one is then a clean 404).
    type: str
  app_namespace:
    description: Namespace of the Application objects when apps-in-any-namespace is used.
    type: str
  projects:
    description: Only applications of these projects (listing only).
    type: list
    elements: str
  selector:
    description: Label selector, for example V(env=dev) (listing only).
    type: str
  repo:
    description: Only applications with this repository URL (listing only).
    type: str
  refresh:
    description: Ask the server to refresh the application before answering (with O(name) only).
    type: str
    choices: [normal, hard]
extends_documentation_fragment:
  - dictamesh.k3s_gitops.argocd
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: N/A
  platform:
    platforms: all
  action_group:
    membership:
      - dictamesh.k3s_gitops.argocd
"""

EXAMPLES = r"""
- name: Read one application
  dictamesh.k3s_gitops.argocd_application_info:
    server_url: https://argocd.example.com
    auth_token: "{{ argocd_token }}"
    name: dictamesh-dev
    project: dictamesh
  register: app

- name: Show its health
  ansible.builtin.debug:
    msg: "{{ app.applications[0].status.health.status | default('missing') }}"

- name: Every dev application
  dictamesh.k3s_gitops.argocd_application_info:
    selector: environment=dev
  register: dev_apps
"""

RETURN = r"""
applications:
  description: The applications found (empty when none).
  returned: success
  type: list
  elements: dict
"""

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDError
from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_module import ArgoCDModule


def run(client, params):
    if params.get("name"):
        app = client.get_application(params["name"], project=params.get("project"),
                                     app_namespace=params.get("app_namespace"), refresh=params.get("refresh"))
        return dict(changed=False, applications=[app] if app is not None else [])
    apps = client.list_applications(
        projects=params.get("projects"), selector=params.get("selector"), repo=params.get("repo"),
        app_namespace=params.get("app_namespace"),
    )
    return dict(changed=False, applications=apps)


def main():
    module = ArgoCDModule(
        argument_spec=dict(
            name=dict(type="str"),
            project=dict(type="str"),
            app_namespace=dict(type="str"),
            projects=dict(type="list", elements="str"),
            selector=dict(type="str"),
            repo=dict(type="str"),
            refresh=dict(type="str", choices=["normal", "hard"]),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module.client, module.params)
    except ArgoCDError as exc:
        module.fail_api(exc, "reading applications")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
