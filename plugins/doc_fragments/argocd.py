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
