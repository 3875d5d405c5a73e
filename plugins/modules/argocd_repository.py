#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: argocd_repository
short_description: Connect a Git, Helm or OCI repository to Argo CD
version_added: 0.1.0
description:
  - Creates, updates or removes an Argo CD repository connection, with https (username and password)
    or ssh (private key) credentials.
  - Argo CD never returns credentials (C(GET /api/v1/repositories/{repo}) strips passwords and keys), so
    their drift cannot be detected. O(update_credentials) sets the rule. The settings that can be read
    back (type, name, project, username, insecure, ...) are compared field by field.
  - Credentials are never returned by this module.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  repo:
    description: URL of the repository, for example V(https://github.com/dictamesh/dictamesh.git).
    type: str
    required: true
  state:
    description: V(present) connects the repository, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  type:
    description: Repository type.
    type: str
    choices: [git, helm, oci]
    default: git
  name:
    description: Display name; required by Argo CD for Helm repositories.
    type: str
  project:
    description: Make the repository project-scoped to this Argo CD project.
    type: str
  username:
    description: Username for https access.
    type: str
  password:
    description: Password or token for https access.
    type: str
  ssh_private_key:
    description: Private key (PEM text) for ssh access.
    type: str
  tls_client_cert_data:
    description: TLS client certificate (PEM text).
    type: str
  tls_client_cert_key:
    description: Key of O(tls_client_cert_data) (PEM text).
    type: str
  insecure:
    description: Skip host key (ssh) or certificate (https) verification.
    type: bool
  enable_lfs:
    description: Enable git-lfs.
    type: bool
  enable_oci:
    description: Helm repository in an OCI registry.
    type: bool
  force_http_basic_auth:
    description: Force basic auth for http.
    type: bool
  proxy:
    description: HTTP(S) proxy for this repository.
    type: str
  no_proxy:
    description: Hosts that bypass O(proxy).
    type: str
  update_credentials:
    description:
      - V(on_create) sends the credentials only when the repository is created or another setting
        changes (an update always carries them, as the server replaces the whole connection);
        an unchanged repository reports no change.
      - V(always) sends them on every run and then always reports a change, since they cannot be compared.
    type: str
    choices: [always, on_create]
    default: on_create
extends_documentation_fragment:
  - dictamesh.k3s_gitops.argocd
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Credentials appear in the diff only as C(credentials=changed), never with their values.
  platform:
    platforms: all
  action_group:
    membership:
      - dictamesh.k3s_gitops.argocd
notes:
  - The Argo CD server tests the connection to the repository when it is created or updated.
"""

EXAMPLES = r"""
- name: Private Git repository over https
  dictamesh.k3s_gitops.argocd_repository:
    server_url: https://argocd.example.com
    auth_token: "{{ argocd_token }}"
    repo: https://github.com/controle-digital/dictamesh.git
    username: git
    password: "{{ vault_gitops_repo_token }}"

- name: Git repository over ssh, rotating the key on every run
  dictamesh.k3s_gitops.argocd_repository:
    repo: git@github.com:controle-digital/dictamesh.git
    ssh_private_key: "{{ vault_gitops_deploy_key }}"
    update_credentials: always

- name: Helm repository
  dictamesh.k3s_gitops.argocd_repository:
    repo: https://charts.bitnami.com/bitnami
    type: helm
    name: bitnami
"""

RETURN = r"""
repository:
  description: The repository as the server shows it, without any credentials.
  returned: when it exists
  type: dict
  sample: {"repo": "https://github.com/dictamesh/dictamesh.git", "type": "git", "username": "git"}
credentials_sent:
  description: Whether credentials were sent to the server by this task.
  returned: success
  type: bool
"""

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import (
    ArgoCDError,
    sanitize_repository,
)
from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_module import (
    ArgoCDModule,
    DifferenceTracker,
)

# option -> (API field, zero value the server omits)
READABLE = (
    ("type", "type", ""),
    ("name", "name", ""),
    ("project", "project", ""),
    ("username", "username", ""),
    ("insecure", "insecure", False),
    ("enable_lfs", "enableLfs", False),
    ("enable_oci", "enableOCI", False),
    ("force_http_basic_auth", "forceHttpBasicAuth", False),
    ("proxy", "proxy", ""),
    ("no_proxy", "noProxy", ""),
)
CREDENTIALS = (
    ("password", "password"),
    ("ssh_private_key", "sshPrivateKey"),
    ("tls_client_cert_data", "tlsClientCertData"),
    ("tls_client_cert_key", "tlsClientCertKey"),
)


def request_body(params, with_credentials):
    body = {"repo": params["repo"]}
    for option, field, dummy in READABLE:
        if params.get(option) is not None:
            body[field] = params[option]
    if with_credentials:
        for option, field in CREDENTIALS:
            if params.get(option) is not None:
                body[field] = params[option]
    return body


def differences(params, current):
    tracker = DifferenceTracker()
    for option, field, zero in READABLE:
        wanted = params.get(option)
        have = current.get(field, zero)
        if wanted is not None and wanted != (zero if have is None else have):
            tracker.add(field, have, wanted)
    return tracker


def credentials_given(params):
    return any(params.get(option) is not None for option, dummy in CREDENTIALS)


def run(client, params, check_mode=False):
    current = client.get_repository(params["repo"], app_project=params.get("project"))
    if params["state"] == "absent":
        if current is None:
            return dict(changed=False, credentials_sent=False)
        if not check_mode:
            client.delete_repository(params["repo"], app_project=params.get("project"))
        return dict(changed=True, credentials_sent=False, diff=dict(before={"repo": params["repo"]}, after={}))
    if current is None:
        body = request_body(params, with_credentials=True)
        after = request_body(params, with_credentials=False)
        if credentials_given(params):
            after["credentials"] = "set"
        result = dict(changed=True, credentials_sent=not check_mode and credentials_given(params),
                      diff=dict(before={}, after=after))
        if not check_mode:
            result["repository"] = sanitize_repository(client.create_repository(body, upsert=False))
        return result
    tracker = differences(params, current)
    rotate = credentials_given(params) and params["update_credentials"] == "always"
    if tracker.empty and not rotate:
        return dict(changed=False, credentials_sent=False, repository=sanitize_repository(current))
    before, after = tracker.get_before_after()
    if credentials_given(params):
        before["credentials"] = "(cannot be read)"
        after["credentials"] = "changed"
    result = dict(changed=True, credentials_sent=not check_mode and credentials_given(params),
                  diff=dict(before=before, after=after), repository=sanitize_repository(current))
    if not check_mode:
        answer = client.create_repository(request_body(params, with_credentials=True), upsert=True)
        result["repository"] = sanitize_repository(answer)
    return result


def main():
    module = ArgoCDModule(
        argument_spec=dict(
            repo=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            type=dict(type="str", choices=["git", "helm", "oci"], default="git"),
            name=dict(type="str"),
            project=dict(type="str"),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            ssh_private_key=dict(type="str", no_log=True),
            tls_client_cert_data=dict(type="str"),
            tls_client_cert_key=dict(type="str", no_log=True),
            insecure=dict(type="bool"),
            enable_lfs=dict(type="bool"),
            enable_oci=dict(type="bool"),
            force_http_basic_auth=dict(type="bool"),
            proxy=dict(type="str"),
            no_proxy=dict(type="str"),
            update_credentials=dict(type="str", choices=["always", "on_create"], default="on_create"),
        ),
        mutually_exclusive=[("password", "ssh_private_key")],
        required_together=[("tls_client_cert_data", "tls_client_cert_key")],
        supports_check_mode=True,
    )
    try:
        result = run(module.client, module.params, module.check_mode)
    except ArgoCDError as exc:
        module.fail_api(exc, "repository %s" % module.params["repo"])
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
