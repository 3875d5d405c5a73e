"""argocd_api_address: the Argo CD API address the bootstrap and the password rotation share."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter.argocd_api import FilterModule, argocd_api_address

# argo-helm argo-cd chart: argocd-server Service ports named http (80) and https (443)
SERVICE = {"spec": {"clusterIP": "10.43.0.20", "ports": [
    {"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 8080}]}}


def test_given_url_wins_and_keeps_validate_certs():
    assert argocd_api_address("https://argocd.example.com/", SERVICE, "true", validate_certs=False) == {
        "url": "https://argocd.example.com", "validate_certs": False}


@pytest.mark.parametrize("insecure", ["true", "True", True])
def test_insecure_server_is_plain_http_on_the_http_port(insecure):
    """Traefik mode: server.insecure true, argocd-server serves no TLS at all."""
    assert argocd_api_address("", json.dumps(SERVICE), insecure) == {"url": "http://10.43.0.20:80",
                                                                     "validate_certs": False}


@pytest.mark.parametrize("insecure", ["", "false", None])
def test_tls_server_on_the_https_port_verified_only_with_a_ca(insecure):
    """ingress-nginx passthrough: argocd-server terminates TLS itself."""
    assert argocd_api_address("", SERVICE, insecure) == {"url": "https://10.43.0.20:443", "validate_certs": False}
    assert argocd_api_address("", SERVICE, insecure, ca_path="/etc/ca.pem")["validate_certs"] is True


def test_ports_are_read_from_the_service():
    ports = [{"name": "http", "port": 8081}, {"name": "https", "port": 8443}]
    service = {"spec": {"clusterIP": "10.43.0.20", "ports": ports}}
    assert argocd_api_address("", service, "true")["url"] == "http://10.43.0.20:8081"
    assert argocd_api_address("", service, "false")["url"] == "https://10.43.0.20:8443"


def test_unnamed_default_ports_and_ipv6():
    service = {"spec": {"clusterIP": "fd00::20", "ports": [{"port": 80}, {"port": 443}]}}
    assert argocd_api_address("", service, "true")["url"] == "http://[fd00::20]:80"


@pytest.mark.parametrize("service, text", [
    ("", "not found"),
    ("{nope", "not the JSON"),
    ({"spec": {"clusterIP": "None", "ports": []}}, "no ClusterIP"),
    ({"spec": {"clusterIP": "10.0.0.1", "ports": [{"name": "grpc", "port": 9000}]}}, "no http port"),
])
def test_bad_service_is_a_clear_error(service, text):
    with pytest.raises(AnsibleFilterError, match=text):
        argocd_api_address("", service, "true")


def test_registered():
    assert FilterModule().filters()["argocd_api_address"] is argocd_api_address
