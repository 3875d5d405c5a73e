"""playbooks/gitops_bootstrap.yml (issue 18, items 4 and 5) against the Argo CD API stand-in.

The first server is the controller (local connection, no become). The stand-in serves TLS with its
own CA under a --rootpath base path: the playbook must pass gitops_ca_path and gitops_base_path to
the role as sync.yml and rollback.yml do, and a failed login must show Argo CD's answer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict

import yaml

from tests.integration.playbook_runner import FAST_STANDIN
from tests.standins.argocd_api import ArgoCDStandIn

REPO = Path(__file__).resolve().parents[3]
BOOTSTRAP = str(REPO / "playbooks/gitops_bootstrap.yml")
# the prod inventory's gitops values: the shared base (_common, linked) and prod's own, as Ansible loads them
GITOPS = {k: v for p in ("_common/gitops.yml", "gitops.yml")
          for k, v in yaml.safe_load((REPO / "inventories/prod/group_vars/all" / p).read_text(encoding="utf-8")).items()}


def inventory(tmp_path: Path, standin: ArgoCDStandIn, password: str) -> str:
    host: Dict[str, Any] = dict(GITOPS)
    host.update({
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
        "platform_argocd_enabled": False,
        "gitops_server_url": standin.server_url, "gitops_base_path": standin.base_path,
        "gitops_ca_path": str(standin.cert_path) if standin.cert_path else "", "gitops_validate_certs": True,
        "gitops_admin_password": password, "gitops_repo_username": "", "gitops_repo_password": "",
        "gitops_repo_ssh_private_key": "", "gitops_app_name": "dictamesh-dev",
        "gitops_app_path": "infrastructure/argocd/applications/dev", "gitops_sync": False,
    })
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"k3s_servers": {"hosts": {"s1": host}}}}}), encoding="utf-8")
    return str(path)


def failures(run: Any) -> list:
    return [(t["_task"], str(t.get("msg"))) for t in run.tasks("s1") if t.get("failed")]


def test_private_ca_and_base_path_reach_the_api(playbook, tmp_path: Path) -> None:
    with ArgoCDStandIn(tls=True, base_path="/argocd", config=dict(FAST_STANDIN)) as standin:
        run = playbook(BOOTSTRAP, {}, inventory=inventory(tmp_path, standin, "admin-password"), timeout=240)
        assert run.rc == 0, failures(run)
        with standin.store.cond:
            assert standin.store.apps["dictamesh-dev"]["spec"]["project"] == "dictamesh"
        assert standin.store.violations == []


def test_failed_login_shows_the_server_answer(playbook, tmp_path: Path) -> None:
    with ArgoCDStandIn(config=dict(FAST_STANDIN)) as standin:
        run = playbook(BOOTSTRAP, {}, inventory=inventory(tmp_path, standin, "wrong-password-1"), timeout=240)
        assert run.rc != 0
        messages = " ".join(m for _t, m in failures(run))
        assert "Invalid username or password" in messages and "censored" not in messages, failures(run)
        assert "wrong-password-1" not in run.proc.stdout
        with standin.store.cond:
            logins = [r for r in standin.store.requests if r["path"] == "/api/v1/session" and r["method"] == "POST"]
        assert len(logins) == 1  # never retried (5 failures lock the account)
