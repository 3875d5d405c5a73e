"""rotate_argocd_admin.yml end to end against the Argo CD API stand-in, in both ingress modes.

Traefik (the default): argocd-server runs with server.insecure and serves plain HTTP on the
Service's http port. ingress-nginx (SSL passthrough): argocd-server serves TLS itself, on the https
port. The playbook finds the API through the GitOps bootstrap's discovery (no gitops_server_url),
opens a session with the old password, writes the new hash with the argocd role, logs in with the
new password and checks that the old session is refused; a second run changes nothing.
The first server is the controller (local connection); kubectl is tests/integration/day2/fake_kubectl.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from tests.integration.playbook_runner import FAST_STANDIN
from tests.standins.argocd_api import ArgoCDStandIn

REPO = Path(__file__).resolve().parents[3]
ROTATE = str(REPO / "playbooks/rotate_argocd_admin.yml")
OLD, NEW = "old-admin-password", "new-admin-password-2026"
# the prod inventory's platform values: the shared base (_common, linked) and prod's own, as Ansible loads them
PLATFORM = {k: v for p in ("_common/platform.yml", "platform.yml")
            for k, v in yaml.safe_load((REPO / "inventories/prod/group_vars/all" / p).read_text(encoding="utf-8")).items()}


def setup(tmp_path: Path, standin: ArgoCDStandIn, mode: str, base_path: str = "") -> str:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    kubectl = tmp_path / "kubectl"
    kubectl.write_text("#!%s\nimport sys\nsys.path.insert(0, %r)\nimport fake_kubectl\nsys.exit(fake_kubectl.main(sys.argv[1:]))\n"
                       % (sys.executable, str(Path(__file__).parent)), encoding="utf-8")
    kubectl.chmod(0o755)
    (tmp_path / "kubectl.json").write_text(json.dumps({
        "manifests_dir": str(manifests), "standin_url": standin.server_url, "cluster_ip": "127.0.0.1",
        "http_port": standin.port if mode == "traefik" else 1, "https_port": standin.port if mode != "traefik" else 1,
        "insecure": mode == "traefik"}), encoding="utf-8")
    host: Dict[str, Any] = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "platform_argocd_enabled": True, "platform_argocd_admin_password": NEW,
        "platform_argocd_version": PLATFORM["platform_argocd_version"],
        "platform_argocd_chart_version": PLATFORM["platform_argocd_chart_version"],
        "platform_argocd_hostname": "argocd.example.com", "platform_ingress_controller": mode,
        "platform_ingress_class": "traefik" if mode == "traefik" else "nginx",
        "platform_argocd_cluster_issuer": "letsencrypt-prod", "platform_argocd_extra_accounts": [],
        "platform_argocd_metrics": False,
        "argocd_manifests_dir": str(manifests), "argocd_kubectl": str(kubectl), "cluster_kube_client": "server",
        "gitops_bootstrap_kubectl": str(kubectl), "gitops_bootstrap_api_timeout": 10,
        "gitops_base_path": base_path,
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"k3s_servers": {"hosts": {"s1": host}}}}}),
                         encoding="utf-8")
    return str(inventory)


def logins(standin: ArgoCDStandIn) -> int:
    with standin.store.cond:
        return len([r for r in standin.store.requests if r["path"] == "/api/v1/session" and r["method"] == "POST"])


@pytest.mark.parametrize("mode, tls, base_path", [("traefik", False, ""), ("ingress-nginx", True, "/argocd")],
                         ids=["traefik-plain-http", "ingress-nginx-tls-passthrough"])
def test_rotation_end_to_end(playbook, tmp_path: Path, mode: str, tls: bool, base_path: str) -> None:
    with ArgoCDStandIn(tls=tls, base_path=base_path, users={"admin": OLD}, config=dict(FAST_STANDIN)) as standin:
        inventory = setup(tmp_path, standin, mode, base_path)
        env = {"ARGOCD_OLD_PASSWORD": OLD, "FAKE_KUBECTL_CONFIG": str(tmp_path / "kubectl.json")}
        run = playbook(ROTATE, {}, inventory=inventory, env=env, timeout=240)
        assert run.rc == 0, [(t["_task"], t.get("msg")) for t in run.tasks("s1") if t.get("failed")]
        scheme = "https" if tls else "http"
        report = run.task("Report", host="s1")["msg"]
        assert report.startswith("The admin password of %s://127.0.0.1:%d%s is the vault's" % (
            scheme, standin.port, base_path)), report
        assert "refused now" in report
        check = run.task("Check that the old session is refused", host="s1")
        assert not check.get("skipped") and not check.get("failed"), check
        with standin.store.cond:
            assert standin.store.accounts["admin"]["hash"].startswith("$2")
        assert OLD not in run.proc.stdout and NEW not in run.proc.stdout

        before = logins(standin)
        again = playbook(ROTATE, {}, inventory=inventory, env={"FAKE_KUBECTL_CONFIG": env["FAKE_KUBECTL_CONFIG"]},
                         timeout=240)
        assert again.rc == 0, [(t["_task"], t.get("msg")) for t in again.tasks("s1") if t.get("failed")]
        assert again.stats("s1").get("changed", 0) == 0, again.stats("s1")
        assert logins(standin) == before + 1  # the new password once, no retries
        assert standin.store.violations == []


def test_wrong_old_password_stops_with_the_server_answer(playbook, tmp_path: Path) -> None:
    with ArgoCDStandIn(users={"admin": OLD}, config=dict(FAST_STANDIN)) as standin:
        inventory = setup(tmp_path, standin, "traefik")
        env = {"ARGOCD_OLD_PASSWORD": "not-the-old-one", "FAKE_KUBECTL_CONFIG": str(tmp_path / "kubectl.json")}
        run = playbook(ROTATE, {}, inventory=inventory, env=env, timeout=240)
        assert run.rc != 0
        message = run.task("Stop when the old password does not log in (nothing was changed)", host="s1")["msg"]
        assert "Invalid username or password" in message and "censored" not in message
        assert not (tmp_path / "manifests" / "argocd.yaml").exists()
        assert logins(standin) == 1
