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


@pytest.mark.parametrize("insecure", ["true", "True", "TRUE", True])
def test_insecure_server_is_plain_http_on_the_http_port(insecure):
    """Traefik mode: server.insecure true, argocd-server serves no TLS at all."""
    assert argocd_api_address("", json.dumps(SERVICE), insecure) == {"url": "http://10.43.0.20:80",
                                                                     "validate_certs": False}


# argocd-server parses the value as argo-cd util/env/env.go ParseBoolFromEnv: "true" in any case, else
# its default false (Go's strconv.ParseBool would take "1" and "t"; argocd-server does not use it)
@pytest.mark.parametrize("insecure", ["", "false", None, "yes", "on", "1", " true", "t"])
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


# What each Kubernetes client registers (roles/gitops_bootstrap/tasks/discover.yml): kubernetes.core.k8s_info
# gives the objects in `resources` ([] when not found); `kubectl get ... -o json` gives the object's JSON in
# stdout (nothing with --ignore-not-found when not found).
SERVICE_OBJ = dict(SERVICE, kind="Service", apiVersion="v1", metadata={"name": "argocd-server", "namespace": "argocd"})
PARAMS = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "argocd-cmd-params-cm", "namespace": "argocd"},
          "data": {"server.insecure": "true", "server.rootpath": ""}}


def k8s_info(*objects):
    return {"changed": False, "failed": False, "api_found": True, "resources": list(objects)}


def command(obj=None):
    return {"changed": False, "rc": 0, "stdout": json.dumps(obj, indent=4) if obj else "", "stderr": "",
            "cmd": ["k3s", "kubectl"]}


@pytest.mark.parametrize("read", [k8s_info, command], ids=["controller", "server"])
def test_either_clients_answer(read):
    service = read(SERVICE_OBJ)
    assert argocd_api_address("", service, read(PARAMS)) == {"url": "http://10.43.0.20:80", "validate_certs": False}
    no_params = read() if read is k8s_info else command()
    assert argocd_api_address("", service, no_params) == {"url": "https://10.43.0.20:443", "validate_certs": False}
    tls = dict(PARAMS, data={"server.insecure": "false"})
    assert argocd_api_address("", service, read(tls))["url"] == "https://10.43.0.20:443"
    assert argocd_api_address("", service, read(dict(PARAMS, data={})))["url"] == "https://10.43.0.20:443"
    yes = dict(PARAMS, data={"server.insecure": "yes"})  # argocd-server keeps TLS on: not "true"
    assert argocd_api_address("", service, read(yes))["url"] == "https://10.43.0.20:443"
    assert argocd_api_address("", service, read(dict(PARAMS, data=None)), ca_path="/ca.pem") == {
        "url": "https://10.43.0.20:443", "validate_certs": True}


def test_configmap_as_json_text_or_mapping():
    assert argocd_api_address("", SERVICE, json.dumps(PARAMS))["url"] == "http://10.43.0.20:80"
    assert argocd_api_address("", SERVICE, PARAMS)["url"] == "http://10.43.0.20:80"


def test_skipped_reads_are_not_needed_with_a_server_url():
    skipped = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
    assert argocd_api_address("https://argocd.example.com", skipped, skipped) == {
        "url": "https://argocd.example.com", "validate_certs": True}


@pytest.mark.parametrize("service, params, text", [
    (k8s_info(), k8s_info(), "the argocd-server Service was not found"),
    (command(), command(), "the argocd-server Service was not found"),
    ({"failed": True, "msg": "Failed to load kubeconfig"}, k8s_info(),
     "reading the argocd-server Service failed: Failed to load kubeconfig"),
    ({"rc": 1, "stdout": "", "stderr": "The connection to the server was refused", "failed": True}, command(),
     "reading the argocd-server Service failed: The connection to the server was refused"),
    (k8s_info(SERVICE_OBJ), {"failed": True, "msg": "Unauthorized"},
     "reading the argocd-cmd-params-cm ConfigMap failed: Unauthorized"),
    (command(SERVICE_OBJ), {"rc": 1, "stdout": "", "stderr": "forbidden"},
     "reading the argocd-cmd-params-cm ConfigMap failed: forbidden"),
    (command(SERVICE_OBJ), {"rc": 0, "stdout": "{not json", "stderr": ""}, "ConfigMap.*not the JSON"),
])
def test_failed_or_empty_reads_name_what_failed(service, params, text):
    with pytest.raises(AnsibleFilterError, match=text):
        argocd_api_address("", service, params)


def test_registered():
    assert FilterModule().filters()["argocd_api_address"] is argocd_api_address
