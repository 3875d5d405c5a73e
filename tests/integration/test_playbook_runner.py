"""The shared ansible-playbook runner (tests/integration/playbook_runner.py) on a tiny local playbook."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.playbook_runner import run_playbook

PLAY = """\
- name: Runner self-test
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Environment seen by the play
      ansible.builtin.debug:
        msg: "{{ lookup('ansible.builtin.env', 'ARGOCD_PASSWORD') }}|{{ lookup('ansible.builtin.env', 'RUNNER_EXTRA') }}"
    - name: A change
      ansible.builtin.command: "true"
      changed_when: true
    - name: Fails when told to
      ansible.builtin.fail:
        msg: "asked to fail: {{ fail_now }}"
      when: fail_now | bool
"""


@pytest.fixture
def play(tmp_path: Path) -> Path:
    path = tmp_path / "play.yml"
    path.write_text(PLAY)
    return path


def test_results_env_scrub_and_extra_env(play, monkeypatch):
    monkeypatch.setenv("ARGOCD_PASSWORD", "from-the-caller")
    run = run_playbook(play, {"fail_now": False}, env={"RUNNER_EXTRA": "given"}, connection="local")
    assert run.rc == 0, run
    assert run.task("Environment seen by the play")["msg"] == "|given"
    assert [t["_task"] for t in run.tasks()] == ["Environment seen by the play", "A change", "Fails when told to"]
    assert run.changed == 1 and run.failed == 0 and run.failure_messages() == []
    assert run.stats()["ok"] == 2 and run.stats("other") == {}
    with pytest.raises(KeyError, match="not run on localhost"):
        run.task("No such task")


def test_failure_and_check_mode(play):
    run = run_playbook(play, {"fail_now": True}, connection="local")
    assert run.rc == 2 and run.failed == 1
    assert run.failure_messages() == ["asked to fail: True"]
    checked = run_playbook(play, {"fail_now": False}, check=True, connection="local")
    assert checked.rc == 0 and checked.task("A change").get("skipped") is True
