#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: argocd_login
short_description: Log in to Argo CD or verify a token
version_added: 0.1.0
description:
  - Checks that the Argo CD API is reachable (and its TLS certificate valid) with C(GET /api/version),
    which needs no login.
  - With O(username) and O(password), creates a session (C(POST /api/v1/session)) and returns its token.
  - Without them, verifies the given O(auth_token) with C(GET /api/v1/session/userinfo).
  - A wrong password is never retried, because Argo CD refuses every login of a user for the rest of a
    300 s window after 5 failed attempts.
author:
  - DictaMesh maintainers (@dictamesh)
options:
  username:
    description:
      - Local Argo CD user, for example V(admin). Requires O(password).
    type: str
  password:
    description:
      - Password of O(username).
    type: str
extends_documentation_fragment:
  - dictamesh.k3s_gitops.argocd
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: A login creates no object, so it runs in check mode too and later tasks get a token.
  diff_mode:
    support: none
  platform:
    platforms: all
  action_group:
    membership:
      - dictamesh.k3s_gitops.argocd
notes:
  - The result carries the token. Set C(no_log=true) on the task and keep the token in a variable
    (or the environment variable E(ARGOCD_AUTH_TOKEN)) for later tasks.
  - The initial admin password is in the secret C(argocd-initial-admin-secret) only when no admin
    password hash was preset.
"""

EXAMPLES = r"""
- name: Log in as admin
  dictamesh.k3s_gitops.argocd_login:
    server_url: https://argocd.example.com
    username: admin
    password: "{{ vault_argocd_admin_password }}"
  register: argocd_session
  no_log: true

- name: Use the token for the following tasks
  module_defaults:
    group/dictamesh.k3s_gitops.argocd:
      server_url: https://argocd.example.com
      auth_token: "{{ argocd_session.token }}"
  block:
    - name: Verify the token
      dictamesh.k3s_gitops.argocd_login:

- name: Server started with --rootpath /argocd and a private CA
  dictamesh.k3s_gitops.argocd_login:
    server_url: https://cluster.example.com
    base_path: /argocd
    ca_path: /etc/ssl/private-ca.pem
    username: admin
    password: "{{ vault_argocd_admin_password }}"
  no_log: true
"""

RETURN = r"""
token:
  description: Session token (the given token when verifying one).
  returned: success
  type: str
  sample: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...
username:
  description: User the token belongs to, as the server reports it.
  returned: success
  type: str
  sample: admin
server_version:
  description: Answer of C(GET /api/version).
  returned: success
  type: dict
  sample: {"Version": "v3.6.0+37ee009"}
"""

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import (
    ArgoCDError,
    ArgoCDTLSError,
    ArgoCDConnectionError,
)
from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_module import ArgoCDModule


class LoginFailed(Exception):
    pass


def check_server(client):
    """GET /api/version; translate failures into a precise message."""
    where = client.url("/api/version")
    try:
        version = client.version()
    except ArgoCDTLSError as exc:
        raise LoginFailed("TLS check of %s failed: %s. Give the CA with ca_path, or validate_certs=false "
                          "for a lab server" % (where, exc.message))
    except ArgoCDConnectionError as exc:
        raise LoginFailed("Argo CD API not reachable at %s: %s" % (where, exc.message))
    except ArgoCDError as exc:
        raise LoginFailed("no Argo CD API at %s (HTTP %s: %s): wrong server_url or base_path?"
                          % (where, exc.status, exc.message))
    if not isinstance(version, dict) or "Version" not in version:
        raise LoginFailed("no Argo CD API at %s (unexpected answer): wrong server_url or base_path?" % where)
    return version


def create_session(client, username, password):
    try:
        token = client.login(username, password)
    except ArgoCDError as exc:
        if exc.status == 401:
            raise LoginFailed("login of %r refused: %s. Not retried: Argo CD refuses a user's logins for "
                              "300 s after 5 failures" % (username, exc.message))
        raise LoginFailed("login of %r failed: %s" % (username, exc))
    if not token:
        raise LoginFailed("login of %r returned no token" % username)
    return token


def verify_token(client):
    try:
        info = client.userinfo() or {}
    except ArgoCDError as exc:
        if exc.status in (401, 403):
            raise LoginFailed("auth_token is not valid: %s" % exc.message)
        raise LoginFailed("token check failed: %s" % exc)
    if not info.get("loggedIn"):
        raise LoginFailed("auth_token is not valid (not logged in)")
    return info.get("username")


def run(params, client):
    """Return the module result for ``params`` using ``client``."""
    version = check_server(client)
    if params.get("username"):
        token = create_session(client, params["username"], params["password"])
        client.auth_token = token
        username = verify_token(client) or params["username"]
    else:
        token = params.get("auth_token")
        if not token:
            raise LoginFailed("give username and password, or auth_token to verify")
        username = verify_token(client)
    return dict(changed=False, token=token, username=username, server_version=version)


def main():
    module = ArgoCDModule(
        argument_spec=dict(
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
        ),
        require_token=False,
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    client = module.make_client()
    try:
        result = run(module.params, client)
    except LoginFailed as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
