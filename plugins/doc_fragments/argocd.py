# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  server_url:
    description:
      - URL of the Argo CD API server, for example C(https://argocd.example.com).
      - A value without a scheme gets C(https://).
      - If not set, the environment variable E(ARGOCD_SERVER) is used.
    type: str
    required: true
  auth_token:
    description:
      - Argo CD session or account token, sent in the C(Authorization) header as a bearer token.
      - Get one with M(dictamesh.k3s_gitops.argocd_login).
      - If not set, the environment variable E(ARGOCD_AUTH_TOKEN) is used.
    type: str
  validate_certs:
    description:
      - Verify the server's TLS certificate. Set to V(false) only for lab servers with self-signed certificates.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) that signed the server's certificate.
    type: path
  base_path:
    description:
      - Path prefix of an Argo CD server started with C(--rootpath), for example V(/argocd).
    type: str
    default: ''
  request_timeout:
    description:
      - Timeout in seconds of each HTTP request.
    type: int
    default: 30
notes:
  - Requests that are safe to repeat (GET, PUT, DELETE) are retried with backoff on HTTP 502, 503, 504,
    connection errors and timeouts. A login is never retried.
  - All modules of this group can take their connection options from C(module_defaults) with the
    action group C(group/dictamesh.k3s_gitops.argocd).
"""

    # Options naming one application: dictamesh.k3s_gitops.argocd.application
    # (argument spec: module_utils.argocd_module.ARGOCD_APPLICATION_ARGS).
    APPLICATION = r"""
options:
  name:
    description: Name of the application.
    type: str
    required: true
  project:
    description:
      - Project of the application. When given, a missing application is reported as missing rather than
        as Argo CD's deliberate C(permission denied).
    type: str
  app_namespace:
    description: Namespace of the Application object when apps-in-any-namespace is used.
    type: str
"""

    # Waiting for an operation the module started: dictamesh.k3s_gitops.argocd.operation
    # (argument spec: module_utils.argocd_module.ARGOCD_OPERATION_ARGS).
    OPERATION = r"""
options:
  poll_interval:
    description: Seconds between two reads when polling.
    type: float
    default: 2.0
  watch:
    description: Wait on the stream endpoint. With V(false), or when the stream is unusable, the module polls.
    type: bool
    default: true
  on_running_operation:
    description:
      - What to do when another operation is already in progress on the application.
      - V(wait) waits for it to finish (within O(timeout)), V(terminate) terminates it
        (C(DELETE /api/v1/applications/{name}/operation)) and then goes on, V(fail) fails.
    type: str
    choices: [wait, terminate, fail]
    default: wait
"""
