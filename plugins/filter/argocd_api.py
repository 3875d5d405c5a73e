# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the Argo CD API answers, for the GitOps bootstrap and the admin password rotation.

``argocd_api_address`` takes the configured server URL and, when it is empty, the argocd-server
Service and the argocd-cmd-params-cm ConfigMap (its ``server.insecure`` parameter), each as read by
either Kubernetes client: the registered result of kubernetes.core.k8s_info (``resources``) or of
``kubectl get ... -o json`` (``stdout``), read by plugin_utils/kubectl_json.py. argocd-server
started with ``server.insecure: true`` (TLS ends at the ingress, the default with Traefik) serves
plain HTTP only: the Service's ``http`` port. Otherwise (ingress-nginx with SSL passthrough) it
serves TLS with its own certificate: the ``https`` port.
The argo-cd chart names the two Service ports ``http`` and ``https``
(values ``server.service.servicePortHttpName`` / ``servicePortHttpsName``, 80 and 443 by default).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError
from ansible_collections.dictamesh.k3s_gitops.plugins.plugin_utils.kubectl_json import (
    kubectl_items,
    load_kubectl_json,
    read_error,
)

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)

DEFAULT_PORTS = {"http": 80, "https": 443}


def _server_insecure(value):
    """argocd-server's reading of ARGOCD_SERVER_INSECURE (the chart maps server.insecure to it):
    argoproj/argo-cd util/env/env.go ParseBoolFromEnv takes only "true" and "false", in any case and
    untrimmed; anything else ("yes", "1", "on", " true") leaves the default, false."""
    return str(value if value is not None else "").lower() == "true"


def _objects(value, what):
    """The objects of a read of `what`: a registered result of either client, kubectl JSON text or a
    mapping; a read that failed is an error naming `what`."""
    why = read_error(value)
    if why:
        raise AnsibleFilterError("argocd_api_address: reading %s failed: %s" % (what, why))
    return kubectl_items(load_kubectl_json(value, "argocd_api_address (%s)" % what))


def _service(value):
    services = _objects(value, "the argocd-server Service")
    if not services:
        raise AnsibleFilterError("argocd_api_address: the argocd-server Service was not found (empty answer)")
    return services[0]


def _insecure(value):
    """Whether argocd-server runs with server.insecure: from argocd-cmd-params-cm as either client read
    it (no ConfigMap: false, argocd-server's default), or the parameter's value itself."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, string_types) and not value.lstrip().startswith("{"):
        return _server_insecure(value)
    configmaps = _objects(value, "the argocd-cmd-params-cm ConfigMap")
    return bool(configmaps) and _server_insecure((configmaps[0].get("data") or {}).get("server.insecure"))


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
    ``http://<ip>:<http port>`` when ``insecure`` (argocd-cmd-params-cm, or its ``server.insecure``
    value) is true, else ``https://<ip>:<https port>``, verified only when ``ca_path`` is given (the
    server's own certificate does not name the ClusterIP). ``service`` and ``insecure`` are
    read only without ``server_url`` (their reads are skipped then).
    """
    if server_url:
        return {"url": str(server_url).rstrip("/"), "validate_certs": bool(validate_certs)}
    spec = _service(service).get("spec") or {}
    address = spec.get("clusterIP")
    if not address or address == "None":
        raise AnsibleFilterError("argocd_api_address: the argocd-server Service has no ClusterIP; set gitops_server_url")
    host = "[%s]" % address if ":" in address else address
    if _insecure(insecure):
        return {"url": "http://%s:%d" % (host, _port(spec, "http")), "validate_certs": False}
    return {"url": "https://%s:%d" % (host, _port(spec, "https")), "validate_certs": bool(ca_path)}


class FilterModule(object):
    def filters(self):
        return {"argocd_api_address": argocd_api_address}
