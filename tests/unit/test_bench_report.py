"""The benchmark's parsing and rendering (tests/bench), in seconds, from recorded output.

data/bench_upgrade_callback.json was recorded from ansible-playbook's ansible.posix.json callback
(ansible-core 2.19, host results trimmed to what the bench reads): a play over two hosts, serial 1,
with the upgrade's maintenance task names (each a `sleep`: cordon 0.3 s, drain 1.0 s, keep the
binary 0.2 s, restart 0.5 s, Ready wait 0.8 s, uncordon 0.2 s), then a play whose task name also
starts with "Uncordon the node" (the final safety net of upgrade_k3s.yml, not a window's end).
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "bench"))

import common  # noqa: E402  pylint: disable=wrong-import-position
import vm_bench  # noqa: E402  pylint: disable=wrong-import-position


def _bench_module(name: str) -> types.ModuleType:
    """tests/bench/<name>.py under its own module name: tests/unit/manifests has a render.py too,
    and whichever is imported first as `render` wins in one pytest run."""
    spec = importlib.util.spec_from_file_location("bench_" + name, REPO / "tests" / "bench" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _bench_module("render")

RECORDED = Path(__file__).resolve().parent / "data" / "bench_upgrade_callback.json"


@pytest.fixture(name="doc")
def fixture_doc():
    # ansible-playbook may print warnings before the JSON document.
    return common.parse_json_output("[WARNING]: something\n" + RECORDED.read_text(encoding="utf-8"))


def test_task_rows_recap_and_slowest(doc):
    rows = common.task_rows(doc)
    assert len(rows) == 13  # 6 tasks x 2 batches + the final play's task
    summary = common.recap(doc)
    assert summary["tasks_run"] == 13
    assert summary["totals"]["changed"] == 10 and summary["totals"]["failures"] == 0
    slowest = common.slowest_tasks(doc, count=3)
    durations = sorted((round(r["end"] - r["start"], 1) for r in rows), reverse=True)
    assert [s["seconds"] for s in slowest] == durations[:3]
    # Recorded at load ~20: ansible's own cost per task (about 1.2 s) came on top of each sleep.
    assert slowest[0] == {"task": "Wait until the node is Ready at the new version", "play": "Agents, one at a time",
                          "seconds": 2.2}


def test_overhead_rows_per_node_with_the_load_of_the_window(doc):
    rows_by_task = common.task_rows(doc)
    start = min(r["start"] for r in rows_by_task)
    end = max(r["end"] for r in rows_by_task)
    # A load sample every 0.5 s: 1.0 during the whole run, 9.0 from the second node's cordon on.
    second_cordon = [r["start"] for r in rows_by_task
                     if r["name"] == "Cordon the node" and "bench-agent-2" in r["hosts"]][0]
    samples = [[start + i * 0.5, 9.0 if start + i * 0.5 >= second_cordon else 1.0]
               for i in range(int((end - start) / 0.5) + 2)]
    rows = {r["host"]: r for r in vm_bench.overhead_rows(doc, [], {}, samples)}
    assert set(rows) == {"bench-agent-1", "bench-agent-2"}
    for row in rows.values():
        assert row["window_s"] == pytest.approx(row["drain_s"] + row["restart_to_ready_s"] + row["overhead_s"], abs=0.02)
        assert 1.0 <= row["drain_s"] < 5 and 1.3 <= row["restart_to_ready_s"] < 6
        # Cordon, keeping the binary and uncordon (0.7 s of sleep) plus ansible's per-task cost;
        # the later "Uncordon the nodes left cordoned by this run" is not the window's end.
        assert 0.7 <= row["overhead_s"] < 8
        assert row["standin_cordon_to_uncordon_s"] is None
    assert rows["bench-agent-1"]["load1_mean"] == 1.0 and rows["bench-agent-1"]["load1_max"] == 1.0
    assert rows["bench-agent-2"]["load1_mean"] == 9.0


def test_load_between_a_window_shorter_than_the_sampling():
    samples = [[100.0, 2.0], [105.0, 4.0], [110.0, 6.0]]
    assert common.load_between(samples, 101.0, 104.0) == {"load1_mean": 2.0, "load1_max": 2.0}
    assert common.load_between(samples, 100.0, 110.0) == {"load1_mean": 4.0, "load1_max": 6.0}
    assert common.load_between([], 1.0, 2.0) == {"load1_mean": None, "load1_max": None}


def run_figures(wall, changed=0, load=3.0):
    return {"wall_s": wall, "cpu_s": wall / 10, "load1_mean": load, "load1_max": load * 2, "qemu_vms": 3,
            "recap": {"totals": {"ok": 10, "changed": changed, "skipped": 2}, "tasks_run": 12, "host_task_results": 12},
            "slowest": [{"task": "helm_chart : Write the manifest argocd.yaml", "play": "Install the platform add-ons",
                         "seconds": 3.5}]}


def results(doc):
    nodes = vm_bench.overhead_rows(doc, [], {}, [[0.0, 1.0]])
    site = {"when": "2026-11-28T15:00:00Z", "commit": "abc+changes", "servers": 1, "agents": 2, "accel": "tcg",
            "boot_s": 40, "memory_mib": 2048, "converge": run_figures(1000.0, changed=40),
            "rerun": run_figures(200.0), "idempotent": True}
    site["rerun_ratio"] = vm_bench.rerun_ratio(site["converge"], site["rerun"])
    upgrade = {"target": "v1.35.0+k3s1", "wiring": "molecule/site", "servers": 1, "agents": 2,
               "run": run_figures(300.0, changed=12), "nodes": nodes,
               "median_overhead_s": render.median([r["overhead_s"] for r in nodes])}
    base_site = dict(site, commit="def", rerun=run_figures(500.0), rerun_ratio=0.5)
    return {"machine": {"cores": 2}, "site": site, "upgrade": upgrade,
            "baseline": {"rev": "HEAD~1", "commit": "def", "when": "2026-11-28T16:00:00Z",
                         "vms": "fresh VMs of the same spec", "site": base_site, "upgrade": upgrade}}


def test_render_reports_the_ratio_per_node_load_and_the_baseline_side_by_side(doc):
    text = render.render_doc(results(doc))
    assert "Re-run / first converge (wall): **0.2** (target 0.25)" in text
    assert "| site | re-run wall s | 200 | 500 |" in text
    assert "| site | re-run / first | 0.2 | 0.5 |" in text
    assert "| upgrade | median overhead s |" in text
    assert "bench-agent-2: window / drain / restart / overhead s" in text
    assert "Baseline HEAD~1 (commit def)" in text and "this checkout: commit abc+changes" in text
    assert "load1 in window mean (max)" in text and "| 1.0 (max 1.0) |" in text
    assert "Slowest tasks of the baseline's re-run:" in text


def test_render_without_a_baseline_says_how_to_get_one(doc):
    data = results(doc)
    del data["baseline"]
    text = render.render_doc(data)
    assert "BENCH_BASELINE=<rev> make bench" in text


def test_worktree_of_a_revision_is_a_collection_and_goes_away(tmp_path):
    with common.Worktree("HEAD", tmp_path) as tree:
        assert (tree.path / "playbooks" / "site.yml").is_file()
        link = tree.path / ".collections" / "ansible_collections" / "dictamesh" / "k3s_gitops"
        assert link.resolve() == tree.path.resolve()
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert tree.commit == head  # a fresh checkout of HEAD: no local changes
    assert not tree.path.exists()
    listed = subprocess.run(["git", "-C", str(REPO), "worktree", "list", "--porcelain"], capture_output=True,
                            text=True, check=True).stdout
    assert str(tree.path) not in listed


def test_recorded_results_json_still_renders():
    recorded = json.loads((REPO / "docs" / "bench" / "results.json").read_text(encoding="utf-8"))
    text = render.render_doc(recorded)
    assert "## 5. Side by side with a baseline commit" in text and "Median overhead per node" in text
