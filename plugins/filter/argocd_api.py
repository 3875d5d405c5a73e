# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the Argo CD API answers, for the GitOps bootstrap and the admin password rotation.

``argocd_api_address`` takes the configured server URL and, when it is empty, the argocd-server
Service (``kubectl get service -o json``) and the ``server.insecure`` parameter of
argocd-cmd-params-cm. argocd-server started with ``server.insecure: true`` (TLS ends at the
ingress, the default with Traefik) serves plain HTTP only: the Service's ``http`` port. Otherwise
(ingress-nginx with SSL passthrough) it serves TLS with its own certificate: the ``https`` port.
The argo-cd chart names the two Service ports ``http`` and ``https``
(values ``server.service.servicePortHttpName`` / ``servicePortHttpsName``, 80 and 443 by default).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError
from ansible_collections.dictamesh.k3s_gitops.plugins.plugin_utils.kubectl_json import load_kubectl_json

DEFAULT_PORTS = {"http": 80, "https": 443}


def _truthy(value):
    return str(value if value is not None else "").strip().lower() in ("true", "yes", "1", "on")


def _service(value):
    service = load_kubectl_json(value, "argocd_api_address")
    if service is None:
        raise AnsibleFilterError("argocd_api_address: the argocd-server Service was not found (empty answer)")
    return service


def _port(spec, scheme):
    """The Service port named like the scheme; else the chart's default port number if present."""
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    for port in ports:
        if port.get("name") == scheme:
            return int(port["port"])
    for port in ports:
        if int(port.get("port") or 0) == DEFAULT_PORTS[scheme]:
            return DEFAULT_PORTS[scheme]
    raise AnsibleFilterError(
        "argocd_api_address: the argocd-server Service has no %s port (ports: %s); set gitops_server_url"
        % (scheme, ", ".join("%s=%s" % (p.get("name"), p.get("port")) for p in ports) or "none"))


def argocd_api_address(server_url, service=None, insecure=None, validate_certs=True, ca_path=""):
    """``{'url': ..., 'validate_certs': ...}`` of the Argo CD API.

    A given ``server_url`` is used as is with ``validate_certs``. Otherwise the Service's ClusterIP:
    ``http://<ip>:<http port>`` when ``insecure`` (argocd-cmd-params-cm ``server.insecure``) is true,
    else ``https://<ip>:<https port>``, verified only when ``ca_path`` is given (the server's own
    certificate does not name the ClusterIP).
    """
    if server_url:
        return {"url": str(server_url).rstrip("/"), "validate_certs": bool(validate_certs)}
    spec = _service(service).get("spec") or {}
    address = spec.get("clusterIP")
    if not address or address == "None":
        raise AnsibleFilterError("argocd_api_address: the argocd-server Service has no ClusterIP; set gitops_server_url")
    host = "[%s]" % address if ":" in address else address
    if _truthy(insecure):
        return {"url": "http://%s:%d" % (host, _port(spec, "http")), "validate_certs": False}
    return {"url": "https://%s:%d" % (host, _port(spec, "https")), "validate_certs": bool(ca_path)}


class FilterModule(object):
    def filters(self):
        return {"argocd_api_address": argocd_api_address}
