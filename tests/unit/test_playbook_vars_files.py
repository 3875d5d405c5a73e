"""The playbooks' shared vars files (playbooks/vars/) are loaded by every play that reads their names.

A play that reads `kube_api_client` (or any other name a vars file defines) without loading the
file fails only when it runs, with "'kube_api_client' is undefined"; --syntax-check does not see it
(molecule/upgrade found the first one). This test reads each play, the task files it includes from
playbooks/tasks/ and the vars files it loads, and requires every vars/ name they read to come from a
file the play loads.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VARS = {path.name: set(yaml.safe_load(path.read_text(encoding="utf-8")))
        for path in sorted((PLAYBOOKS / "vars").glob("*.yml"))}
TASK_FILE = re.compile(r"""include_tasks:\s*["']?(tasks/[A-Za-z0-9_.]+\.yml)""")


def names_read(text: str) -> set[str]:
    return {name for names in VARS.values() for name in names if re.search(r"\b%s\b" % re.escape(name), text)}


def plays() -> list[tuple[str, int, dict]]:
    out = []
    for path in sorted(PLAYBOOKS.glob("*.yml")):
        for index, play in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")) or []):
            if isinstance(play, dict) and "hosts" in play:
                out.append((path.name, index, play))
    return out


@pytest.mark.parametrize("playbook, index, play", plays(), ids=["%s-%d" % (p, i + 1) for p, i, _play in plays()])
def test_every_vars_name_a_play_reads_comes_from_a_file_it_loads(playbook: str, index: int, play: dict) -> None:
    loaded = [Path(f).name for f in play.get("vars_files", []) if str(f).startswith("vars/")]
    text = yaml.safe_dump({k: v for k, v in play.items() if k != "vars_files"})
    for task_file in TASK_FILE.findall(text):
        text += (PLAYBOOKS / task_file).read_text(encoding="utf-8")
    for name in loaded:
        text += (PLAYBOOKS / "vars" / name).read_text(encoding="utf-8")
    defined = set().union(*(VARS[name] for name in loaded)) if loaded else set()
    missing = sorted(names_read(text) - defined)
    assert not missing, "%s play %d (%s) reads %s without loading the vars file that defines it" % (
        playbook, index + 1, play.get("name"), ", ".join(missing))


def test_the_vars_files_are_read_somewhere() -> None:
    assert VARS and all(VARS.values())
    everything = "".join(path.read_text(encoding="utf-8") for path in PLAYBOOKS.glob("*.yml"))
    for name in VARS:
        assert "vars/%s" % name in everything, name


def test_every_play_that_drains_loads_the_drain_settings() -> None:
    # The drain's inputs are k3s_upgrade_drain_* from vars/drain.yml; a play that includes k3s_upgrade
    # without it drains with the role's own defaults whatever the inventory says (remove_node.yml did).
    def drains(task: dict) -> bool:
        include = task.get("ansible.builtin.include_role") or {}
        return (include.get("name") == "dictamesh.k3s_gitops.k3s_upgrade"
                and include.get("tasks_from", "main") in ("main", "drain"))
    draining = [(playbook, index, play) for playbook, index, play in plays()
                if any(drains(task) for task in play.get("tasks") or [] if isinstance(task, dict))]
    assert {playbook for playbook, _index, _play in draining} == {"remove_node.yml", "upgrade_k3s.yml"}
    for playbook, index, play in draining:
        assert "vars/drain.yml" in play.get("vars_files", []), "%s play %d (%s) drains without vars/drain.yml" % (
            playbook, index + 1, play.get("name"))
