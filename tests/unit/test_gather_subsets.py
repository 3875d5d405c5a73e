"""Fact gathering limited to what the plays use (issue 14), and still enough for them.

site.yml gathers facts once, in the first play of k3s_cluster.yml, with a narrow gather_subset;
the later plays (node_prep, the K3S roles, the Argo CD CLI plays of platform.yml) read those facts
and gather only when a fact they need is missing (platform.yml run alone). The setup module runs
here on the controller with each subset read from the playbooks, and every fact the roles and
those playbooks read must come out of it: a subset narrowed too far fails this test.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FACT_RE = re.compile(r"""ansible_facts\[['"]([a-z0-9_]+)['"]\]|ansible_facts\.([a-z0-9_]+)""")


def facts_read(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        for match in FACT_RE.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1) or match.group(2))
    return found


def gathered(subset: list[str], tmp_path: Path) -> set[str]:
    out = tmp_path / "facts.json"
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.setup": {"gather_subset": subset}},
        {"ansible.builtin.copy": {"content": "{{ ansible_facts | to_json }}", "dest": str(out), "mode": "0600"}}]}]
    playbook = tmp_path / "gather.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, str(playbook)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return set(json.loads(out.read_text()))


def plays(name: str) -> list[dict]:
    return yaml.safe_load((REPO / "playbooks" / name).read_text(encoding="utf-8"))


def test_site_gathers_once_what_every_role_reads(tmp_path):
    first = plays("k3s_cluster.yml")[0]
    assert first["gather_facts"] is True
    subset = first["gather_subset"]
    assert "!all" in subset and "!min" in subset, "the first play gathers more than it needs: %s" % subset
    read = facts_read(sorted((REPO / "roles").rglob("*.yml")) + [REPO / "playbooks" / "k3s_cluster.yml",
                                                                 REPO / "playbooks" / "platform.yml"])
    assert {"architecture", "nodename", "default_ipv4", "pkg_mgr", "os_family"} <= read, read
    missing = read - gathered(subset, tmp_path)
    assert not missing, "facts read by the roles but not gathered by %s: %s" % (subset, sorted(missing))


def test_later_plays_gather_nothing_in_a_site_run_and_enough_alone(tmp_path):
    for play in plays("k3s_cluster.yml")[1:] + plays("platform.yml"):
        assert play.get("gather_facts") is False, play["name"]
    setups = [task for play in plays("platform.yml") for task in play.get("tasks", [])
              if "ansible.builtin.setup" in task]
    assert len(setups) == 2  # one per Argo CD CLI play
    read_by_cli = facts_read(sorted((REPO / "roles" / "argocd_cli").rglob("*.yml")))
    assert read_by_cli == {"architecture", "system"}, read_by_cli
    for task in setups:
        # Gathered only when missing: a site.yml run has them from k3s_cluster.yml's first play.
        assert any("is not defined" in cond for cond in task["when"]), task
        assert read_by_cli <= gathered(task["ansible.builtin.setup"]["gather_subset"], tmp_path)
