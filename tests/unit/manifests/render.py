"""Render the manifests the platform roles write, with real Ansible templating.

A generated playbook runs, on localhost, the roles' validation and manifest task
files (`tasks_from`; charts go through the helm_chart role with helm_chart_wait=false)
with the same role variables playbooks/platform.yml maps from the inventory, writing into a temporary directory instead of K3S's manifests directory."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
COLLECTION = "dictamesh.k3s_gitops"

# Task files that only render (no kubectl, no waiting), per role, in order.
RENDER_TASKS: dict[str, list[str]] = {
    "ingress": ["validate.yml", "manifests.yml"],
    "cert_manager": ["validate.yml", "manifests.yml", "issuers_manifest.yml"],
    "longhorn": ["validate.yml", "manifests.yml"],
    "argocd": ["validate.yml", "admin_password.yml", "manifests.yml"],
    # No manifests: its AppProject and Application (what it sends to the Argo CD API) are
    # written out by the test playbook so that they can be checked against the CRDs.
    "gitops_bootstrap": ["validate.yml"],
}
GITOPS_OBJECTS = {"gitops-appproject.yaml": "gitops_bootstrap__project_object",
                  "gitops-application.yaml": "gitops_bootstrap__application_object"}

SECRETS = {
    "vault_argocd_admin_password": "s3cret-Admin-pw",
    "vault_gitops_repo_username": "git-bot",
    "vault_gitops_repo_password": "git-token",
    "vault_gitops_repo_ssh_private_key": "",
    "vault_cluster_token": "token-for-tests",
}

# What the defaults scenario must still give (no usable default exists for these).
REQUIRED_INPUTS = {
    "cert_manager_acme_email": "ops@example.com",
    "argocd_admin_password": SECRETS["vault_argocd_admin_password"],
    "gitops_bootstrap_admin_password": SECRETS["vault_argocd_admin_password"],
}


@dataclass
class Rendered:
    rc: int
    output: str
    manifests: Path
    recap: dict[str, int]

    def files(self) -> dict[str, Path]:
        return {p.name: p for p in sorted(self.manifests.glob("*.yaml"))}


def platform_role_vars() -> dict[str, dict[str, Any]]:
    """role short name -> the `vars` the playbooks pass to it (unrendered)."""
    out: dict[str, dict[str, Any]] = {}
    for playbook in ("platform.yml", "gitops_bootstrap.yml"):
        play = yaml.safe_load((REPO / "playbooks" / playbook).read_text())[0]
        for task in play["tasks"]:
            inc = task.get("ansible.builtin.include_role")
            if inc and "{{" not in inc["name"]:
                role = inc["name"].rsplit(".", 1)[1]
                mapped = {k: v for k, v in play.get("vars", {}).items() if k.startswith(role + "_")}
                out[role] = dict(mapped, **task.get("vars", {}))
    return out


def platform_vars_files() -> list[str]:
    """The vars_files of those plays (absolute paths): the mapping reads names they define."""
    out: list[str] = []
    for playbook in ("platform.yml", "gitops_bootstrap.yml"):
        play = yaml.safe_load((REPO / "playbooks" / playbook).read_text())[0]
        out += [str(REPO / "playbooks" / f) for f in play.get("vars_files", []) if str(REPO / "playbooks" / f) not in out]
    return out


def _parse_recap(output: str) -> dict[str, int]:
    for line in output.splitlines():
        if line.startswith("testhost") and "ok=" in line:
            return {k: int(v) for k, v in (f.split("=") for f in line.split()[2:])}
    return {}


def render(tmp: Path, *, inventory_env: str | None, extra: dict[str, Any] | None = None,
           roles: list[str] | None = None, manifests: Path | None = None,
           check: bool = False) -> Rendered:
    """Run the render playbook. inventory_env: 'prod' (its group_vars + the playbook mapping) or None (role defaults)."""
    tmp.mkdir(parents=True, exist_ok=True)
    manifests = manifests or tmp / "manifests"
    manifests.mkdir(exist_ok=True)
    inv_dir = tmp / "inventory"
    inv_dir.mkdir(exist_ok=True)
    (inv_dir / "hosts.yml").write_text(yaml.safe_dump({"k3s_cluster": {"children": {
        "k3s_servers": {"hosts": {"testhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "k3s_agents": {"hosts": {}}}}}))
    if inventory_env and not (inv_dir / "group_vars").exists():
        (inv_dir / "group_vars").symlink_to(REPO / "inventories" / inventory_env / "group_vars")
    mapping = platform_role_vars() if inventory_env else {}
    owner = getpass.getuser()
    tasks = []
    for role in roles or list(RENDER_TASKS):
        role_vars = dict(mapping.get(role, {}))
        role_vars.update({f"{role}_manifests_dir": str(manifests), f"{role}_manifest_owner": owner,
                          # The roles write their charts through dictamesh.k3s_gitops.helm_chart:
                          # write only, no helm-controller to wait for here.
                          "helm_chart_wait": False})
        for task_file in RENDER_TASKS[role]:
            tasks.append({"name": f"{role} {task_file}", "ansible.builtin.include_role": {
                "name": f"{COLLECTION}.{role}", "tasks_from": task_file, "public": True}, "vars": role_vars})
        if role == "gitops_bootstrap":
            for name, var in GITOPS_OBJECTS.items():
                tasks.append({"name": f"Write {name}", "ansible.builtin.copy": {
                    "content": "{{ %s | to_nice_yaml }}" % var, "dest": str(manifests / name),
                    "mode": "0600"}, "vars": role_vars})
    playbook = tmp / "render.yml"
    play = {"name": "Render", "hosts": "k3s_servers[0]", "gather_facts": False, "tasks": tasks}
    if inventory_env:
        play["vars_files"] = platform_vars_files()
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    extra_vars = dict(SECRETS)
    if not inventory_env:
        extra_vars.update(REQUIRED_INPUTS)
    extra_vars.update(extra or {})
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp / ".ansible-tmp"), ANSIBLE_HOME=str(tmp / ".ansible"))
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inv_dir / "hosts.yml"), str(playbook),
           "-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    return Rendered(proc.returncode, output, manifests, _parse_recap(output))
