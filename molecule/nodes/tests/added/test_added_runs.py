"""After add_node.yml: what the two site.yml --limit nd-agent-2,nd-server-1 runs reported."""
from __future__ import annotations

from conftest import changed, run_output


def test_only_the_limited_hosts_were_contacted() -> None:
    for run in ("add-first-run", "add-second-run"):
        assert set(run_output(run)["stats"]) == {"nd-agent-2", "nd-server-1"}, run


def test_first_run_installed_the_new_agent_and_the_second_changed_nothing() -> None:
    assert changed("add-first-run")["nd-agent-2"] > 0
    assert changed("add-second-run") == {"nd-agent-2": 0, "nd-server-1": 0}
