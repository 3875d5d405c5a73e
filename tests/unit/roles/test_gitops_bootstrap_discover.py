"""gitops_bootstrap's discovery (tasks_from discover.yml) through either Kubernetes client, run by
ansible-playbook on localhost against the K3S stand-in's API server (test_platform_waits.Site): the
argocd-server Service and argocd-cmd-params-cm are read with kubernetes.core.k8s_info on the
controller or with a real kubectl, and the argocd_api_address filter picks the address from either
answer. The controller run gets a kubectl that always fails, so it proves kubectl is not used.

The Service is the argo-cd chart's: ClusterIP, ports named `http` and `https` (the filter picks the
port by its name), targetPort 8080. Its ClusterIP is 127.0.0.1 and its port numbers are free ports
of this machine (the chart's servicePortHttp / servicePortHttps; 80 and 443 by default, which only
root may bind), where an HTTP and an HTTPS server answer GET /api/version: the role's final wait
runs as it does on a first server, and the servers' logs show which one it reached.
"""
from __future__ import annotations

import http.server
import json
import ssl
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_platform_waits import Site  # noqa: E402  pylint: disable=wrong-import-position

TASKS = ("    - ansible.builtin.include_role:\n        name: dictamesh.k3s_gitops.gitops_bootstrap\n"
         "        tasks_from: discover.yml\n"
         "    - ansible.builtin.copy:\n        content: \"{{ gitops_bootstrap_api | to_json }}\"\n"
         "        dest: \"{{ discovered_file }}\"\n        mode: \"0600\"\n")


class ArgoCDVersion(http.server.BaseHTTPRequestHandler):
    """argocd-server's GET /api/version, with each request's scheme and path recorded."""

    def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
        self.server.seen.append((self.server.scheme, self.path))  # type: ignore[attr-defined]
        body = json.dumps({"Version": "v3.1.0+standin"}).encode()
        self.send_response(200 if self.path == "/api/version" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


def serve(scheme: str, tls_dir: Path) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArgoCDVersion)
    server.scheme, server.seen = scheme, []  # type: ignore[attr-defined]
    if scheme == "https":  # argocd-server's own certificate (the stand-in's, for 127.0.0.1)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls_dir / "serving-kube-apiserver.crt"), str(tls_dir / "serving-kube-apiserver.key"))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def objects(http_port: int, https_port: int, insecure: str | None) -> str:
    """The objects as `kubectl apply -f` takes them: JSON documents (apply sends JSON; the stand-in
    speaks no protobuf, which `kubectl create` sends)."""
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "argocd-server", "namespace": "argocd"},
         "spec": {"type": "ClusterIP", "clusterIP": "127.0.0.1", "ports": [
             {"name": "http", "port": http_port, "protocol": "TCP", "targetPort": 8080},
             {"name": "https", "port": https_port, "protocol": "TCP", "targetPort": 8080}]}},
    ]
    if insecure is not None:
        items.append({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "argocd-cmd-params-cm", "namespace": "argocd"},
                      "data": {"server.insecure": insecure, "server.rootpath": ""}})
    return "\n---\n".join(json.dumps(item) for item in items)


@pytest.fixture
def site(tmp_path, monkeypatch):
    made = Site(tmp_path, {}, monkeypatch)  # the API server alone: no controller is needed here
    servers = {scheme: serve(scheme, tmp_path / "tls") for scheme in ("http", "https")}
    made.argocd = servers  # type: ignore[attr-defined]
    yield made
    for server in servers.values():
        server.shutdown()
        server.server_close()
    made.close()


def discover(site: Site, client: str) -> tuple:
    discovered = site.root / "discovered.json"
    result, _seconds = site.play(TASKS, {
        "gitops_bootstrap_kubectl": site.kubectl_cmd if client == "server" else "/bin/false",
        "gitops_bootstrap_kube_client": client, "gitops_bootstrap_kubeconfig_path": str(site.kubeconfig),
        "gitops_bootstrap_api_timeout": 5, "discovered_file": str(discovered)})
    return result, json.loads(discovered.read_text()) if discovered.exists() else None


@pytest.mark.parametrize("insecure", ["true", "false", None], ids=["server.insecure", "tls", "no-configmap"])
@pytest.mark.parametrize("client", ["controller", "server"])
def test_address_chosen_from_either_clients_reads(site, client, insecure):
    http_port, https_port = (s.server_address[1] for s in (site.argocd["http"], site.argocd["https"]))
    (site.root / "argocd.yaml").write_text(objects(http_port, https_port, insecure))
    applied = site.kubectl("apply", "-f", str(site.root / "argocd.yaml"))
    assert applied.returncode == 0, applied.stderr
    result, api = discover(site, client)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    if insecure == "true":  # TLS ends at the ingress: plain HTTP on the Service's http port
        assert api == {"url": "http://127.0.0.1:%d" % http_port, "validate_certs": False}
        assert site.argocd["http"].seen == [("http", "/api/version")] and not site.argocd["https"].seen
    else:  # argocd-server's own TLS on the https port, not verified by name without a CA
        assert api == {"url": "https://127.0.0.1:%d" % https_port, "validate_certs": False}
        assert site.argocd["https"].seen == [("https", "/api/version")] and not site.argocd["http"].seen


@pytest.mark.parametrize("client", ["controller", "server"])
def test_missing_service_is_a_clear_error(site, client):
    (site.root / "argocd.json").write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": "argocd"}}))
    applied = site.kubectl("apply", "-f", str(site.root / "argocd.json"))
    assert applied.returncode == 0, applied.stderr
    result, api = discover(site, client)
    assert result.returncode != 0 and api is None
    expected = ("the argocd-server Service was not found" if client == "controller"
                else 'services "argocd-server" not found')  # kubectl fails the read itself
    assert expected in result.stdout, result.stdout[-3000:]
