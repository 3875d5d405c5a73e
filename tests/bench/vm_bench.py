"""VM benchmarks: `site` (site.yml first converge and an immediate re-run) and `upgrade`
(per-node overhead of playbooks/upgrade_k3s.yml beyond drain and restart), on QEMU VMs booted
by tests/vmlab/vmlab.py, wired to the stand-ins exactly like molecule/site: the inventory's
group_vars and the environment are read from molecule/site/molecule.yml at run time, and
molecule/site/prepare.yml and converge.yml are the playbooks that run (prepare starts the
Argo CD API stand-in, converge fills the K3S mirror and imports the root site.yml).

The upgrade runs on the site's VMs when both are selected (the cluster is then at
cluster_k3s_version and is upgraded one minor up, with the full platform installed);
alone, it boots VMs and installs playbooks/k3s_cluster.yml first.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from common import (OUTPUT, REPO, ansible_env, git_commit, load_between, log, now_iso, parse_json_output,
                    qemu_vms_running, recap, run_timed, slowest_tasks, task_rows, venv_tool)

sys.path.insert(0, str(REPO / "tests" / "standins" / "k3s"))
import audit_timeline  # noqa: E402

VMLAB = REPO / "tests" / "vmlab" / "vmlab.py"
AUDIT_LOG = "/var/lib/rancher/k3s/server/logs/audit.log"
BUILD_MIRROR = REPO / "tests" / "standins" / "k3s" / "build_mirror.py"
UPGRADE_TO = "v1.35.0+k3s1"


class BenchError(RuntimeError):
    pass


class Lab:
    """The VMs, the inventory directory and the environment of one bench run."""

    def __init__(self, state: Path, servers: int, agents: int, scenario: str = "site",
                 repo: Path = REPO) -> None:
        # repo: the checkout whose playbooks, roles, scenario wiring and stand-ins run (a baseline
        # commit's worktree for BENCH_BASELINE); the bench code itself is always this one.
        self.repo = repo
        self.scenario_dir = repo / "molecule" / scenario
        self.state = state
        self.servers = servers
        self.agents = agents
        self.inventory = state / "inventory"
        self.control = state / "cp"
        self.scenario = self._scenario()
        self.env = ansible_env(self._scenario_env(), control_dir=self.control, repo=repo)

    def _substitute(self, text: str) -> str:
        return (text.replace("${MOLECULE_EPHEMERAL_DIRECTORY}", str(self.state))
                .replace("${MOLECULE_PROJECT_DIRECTORY}", str(self.repo)))

    def _scenario(self) -> dict[str, Any]:
        text = (self.scenario_dir / "molecule.yml").read_text(encoding="utf-8")
        return dict(yaml.safe_load(self._substitute(text)))

    def _scenario_env(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.scenario["provisioner"]["env"].items()}

    def up(self) -> dict[str, Any]:
        self.down()
        self.state.mkdir(parents=True, exist_ok=True)
        log(f"booting {self.servers} server(s) + {self.agents} agent(s) in {self.state}")
        proc = subprocess.run(
            [sys.executable, str(VMLAB), "up", "--state", str(self.state), "--name", "bench",
             "--servers", str(self.servers), "--agents", str(self.agents),
             "--mirror-root", self.env["VMLAB_MIRROR_ROOT"]],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise BenchError(f"vmlab up failed:\n{proc.stderr[-3000:]}")
        meta = dict(json.loads(proc.stdout))
        self.inventory.mkdir(parents=True, exist_ok=True)
        (self.inventory / "hosts.yml").write_text(
            (self.state / "inventory.yml").read_text(encoding="utf-8"), encoding="utf-8")
        group_vars = self.scenario["provisioner"]["inventory"]["group_vars"]
        (self.inventory / "group_vars").mkdir(exist_ok=True)
        for group, values in group_vars.items():
            (self.inventory / "group_vars" / f"{group}.yml").write_text(
                "---\n" + yaml.safe_dump(values, sort_keys=False, width=200), encoding="utf-8")
        return meta

    def down(self) -> None:
        standin_pid = self.state / "argocd-standin" / "pid"
        if standin_pid.exists():
            try:
                os.kill(int(standin_pid.read_text().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass
            for name in ("pid", "ready.json"):
                (self.state / "argocd-standin" / name).unlink(missing_ok=True)
        subprocess.run([sys.executable, str(VMLAB), "down", "--state", str(self.state)],
                       capture_output=True, stdin=subprocess.DEVNULL, check=False)

    def playbook(self, label: str, playbook: Path, *extra: str) -> dict[str, Any]:
        """Run one playbook against the lab; figures, recap and the slowest tasks."""
        log(f"{label}: ansible-playbook {playbook.relative_to(self.repo)} {' '.join(extra)}")
        vms = qemu_vms_running()
        timed = run_timed([venv_tool("ansible-playbook"), "-i", str(self.inventory), str(playbook),
                           *extra], env=self.env, cwd=self.repo, control_dir=self.control,
                          log_to=self.state / "logs" / f"{label}.json")
        out: dict[str, Any] = {"label": label, "playbook": str(playbook.relative_to(self.repo)),
                               "args": list(extra), **timed.figures(), "qemu_vms": vms}
        try:
            doc = parse_json_output(timed.stdout)
        except ValueError:
            raise BenchError(f"{label}: rc={timed.rc}, no JSON output:\n{timed.stderr[-3000:]}")
        out.update(recap=recap(doc), slowest=slowest_tasks(doc))
        out["_doc"] = doc
        log(f"{label}: rc={timed.rc} wall={timed.wall_s:.0f}s cpu={timed.cpu_s:.0f}s "
            f"changed={out['recap']['totals']['changed']} load1_mean={timed.load['load1_mean']}")
        if timed.rc != 0:
            failed = [r for r in task_rows(doc) if "failed" in r["hosts"].values()]
            raise BenchError(f"{label} failed (rc={timed.rc}); failed tasks: "
                             f"{[(r['play'], r['name']) for r in failed][:5]}; log: "
                             f"{self.state / 'logs' / (label + '.json')}")
        return out

    def ssh_read(self, host: str, path: str) -> str:
        data = json.loads((self.state / "vmlab.json").read_text(encoding="utf-8"))
        port = [h["ssh_port"] for h in data["hosts"] if h["name"] == host][0]
        key = Path(os.environ.get("VMLAB_CACHE") or Path.home() / ".cache" / "dictamesh-vmlab") / "id_ed25519"
        proc = subprocess.run(
            ["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
             "root@127.0.0.1", "cat", path],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, timeout=120)
        return proc.stdout

    def hosts(self) -> tuple[list[str], list[str]]:
        data = json.loads((self.state / "vmlab.json").read_text(encoding="utf-8"))
        servers = [h["name"] for h in data["hosts"] if h["role"] == "server"]
        agents = [h["name"] for h in data["hosts"] if h["role"] == "agent"]
        return servers, agents


def strip_docs(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "_doc"}


def run_site(lab: Lab) -> dict[str, Any]:
    prepare = lab.playbook("site-prepare", lab.scenario_dir / "prepare.yml")
    first = lab.playbook("site-converge", lab.scenario_dir / "converge.yml")
    second = lab.playbook("site-rerun", lab.scenario_dir / "converge.yml")
    return {"prepare": strip_docs(prepare), "converge": strip_docs(first),
            "rerun": strip_docs(second), "idempotent": second["recap"]["totals"]["changed"] == 0,
            "rerun_ratio": rerun_ratio(first, second)}


def rerun_ratio(first: dict[str, Any], second: dict[str, Any]) -> float | None:
    """Re-run wall time as a fraction of the first converge's (issue 14's target: <= 0.25)."""
    return round(second["wall_s"] / first["wall_s"], 3) if first.get("wall_s") else None


TASK_KEYS = {
    "cordon": "Cordon the node",
    "drain": "Drain the node",
    "restart": "Restart K3S with the new binary",
    "ready": "Wait until the node is Ready at the new version",
    "uncordon": "Uncordon the node",
}


def node_windows(doc: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per host, from the controller's task timings: start/end of the maintenance tasks."""
    found: dict[str, dict[str, float]] = {}
    for row in task_rows(doc):
        task = row["name"].split(" : ", 1)[-1]        # "<role FQCN> : <task name>"
        for key, name in TASK_KEYS.items():
            if not task.startswith(name) or (key == "uncordon" and "this run" in task):
                continue
            for host, status in row["hosts"].items():
                if status in ("ok", "changed"):
                    found.setdefault(host, {})[f"{key}_start"] = row["start"]
                    found.setdefault(host, {})[f"{key}_end"] = row["end"]
    return found


def standin_windows(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per node, from the first server's API audit log (audit_timeline.node_actions, the server's
    clock): cordon, drain begin and end, uncordon."""
    out: dict[str, dict[str, float]] = {}
    for event in events:
        node = out.setdefault(event["node"], {})
        if event["action"] == "drain":
            node.setdefault("drain_begin", event["begin"])
        node.setdefault(event["action"], event["time"])
    return out


def overhead_rows(doc: dict[str, Any], events: list[dict[str, Any]],
                  node_of: dict[str, str], load_samples: list[list[float]] | None = None) -> list[dict[str, Any]]:
    """Per node: maintenance window (cordon start to uncordon end), drain, restart-to-Ready,
    overhead (the rest), the stand-in's own records, and the load average during the window."""
    tasks = node_windows(doc)
    standin = standin_windows(events)
    rows = []
    for host, t in tasks.items():
        needed = [f"{k}_{e}" for k in TASK_KEYS for e in ("start", "end")]
        if any(key not in t for key in needed):
            continue
        window = t["uncordon_end"] - t["cordon_start"]
        drain = t["drain_end"] - t["drain_start"]
        restart = t["ready_end"] - t["restart_start"]
        s = standin.get(node_of.get(host, host), {})
        rows.append({
            "host": host, "window_s": round(window, 2), "drain_s": round(drain, 2),
            "restart_to_ready_s": round(restart, 2), "overhead_s": round(window - drain - restart, 2),
            "standin_cordon_to_uncordon_s": (round(s["uncordon"] - s["cordon"], 2)
                                             if "uncordon" in s and "cordon" in s else None),
            "standin_drain_s": (round(s["drain"] - s["drain_begin"], 2)
                                if "drain" in s and "drain_begin" in s else None),
            **load_between(load_samples or [], t["cordon_start"], t["uncordon_end"]),
        })
    return rows


def reanalyse_upgrade(result: dict[str, Any], log_file: Path) -> dict[str, Any]:
    """Recompute the per-node rows of a recorded upgrade from its saved JSON log."""
    text = log_file.read_text(encoding="utf-8").split("\n--- stderr ---", 1)[0]
    names = {e["node"]: e["node"] for e in result["standin_events"]}
    rows = overhead_rows(parse_json_output(text), result["standin_events"], names,
                         result.get("run", {}).get("load1_samples"))
    overheads = [r["overhead_s"] for r in rows]
    return {**result, "nodes": rows,
            "median_overhead_s": round(statistics.median(overheads), 2) if overheads else None}


def run_upgrade(lab: Lab, installed: bool) -> dict[str, Any]:
    """After the site benchmark: one minor up (UPGRADE_TO), without the etcd snapshot (the site
    scenario's single server keeps the default SQLite datastore, which has no etcd snapshots).
    Alone: molecule/upgrade's wiring (prepare.yml installs upgrade_from_version with embedded
    etcd, the snapshot is taken), to its cluster_k3s_version."""
    extra: list[str] = []
    target = UPGRADE_TO
    if installed:
        subprocess.run([sys.executable, str(lab.repo / BUILD_MIRROR.relative_to(REPO)), "--root",
                        lab.env["VMLAB_MIRROR_ROOT"],
                        "--version", UPGRADE_TO], check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)
        # JSON, so the boolean stays a boolean: the playbook's declared-input check refuses the
        # string "false" that `-e key=false` would pass.
        extra = ["-e", json.dumps({"cluster_k3s_version": UPGRADE_TO, "cluster_upgrade_snapshot": False})]
    else:
        lab.playbook("upgrade-prepare", lab.scenario_dir / "prepare.yml")
        target = lab.scenario["provisioner"]["inventory"]["group_vars"]["all"]["cluster_k3s_version"]
    servers, agents = lab.hosts()
    before = len(lab.ssh_read(servers[0], AUDIT_LOG).splitlines())
    result = lab.playbook("upgrade", lab.repo / "playbooks" / "upgrade_k3s.yml", *extra)
    lines = lab.ssh_read(servers[0], AUDIT_LOG).splitlines()[before:]
    events = audit_timeline.node_actions(audit_timeline.parse(lines))
    starts = {h: lab.ssh_read(h, "/var/lib/rancher/k3s/standin-starts.log").splitlines()
              for h in servers + agents}
    rows = overhead_rows(result["_doc"], events, {h: h for h in servers + agents}, result.get("load1_samples"))
    overheads = [r["overhead_s"] for r in rows]
    return {"target": target, "wiring": f"molecule/{'site' if installed else 'upgrade'}",
            "snapshot": not installed, "run": strip_docs(result), "nodes": rows,
            "median_overhead_s": round(statistics.median(overheads), 2) if overheads else None,
            "standin_events": events, "standin_starts": starts}


def run(selected: list[str], servers: int = 1, agents: int = 2, keep: bool = False,
        repo: Path = REPO, tag: str = "") -> dict[str, Any]:
    """Boot the lab, run the selected VM benchmarks, always remove the lab (unless keep).
    repo: the checkout to measure (this one, or a baseline worktree); tag: suffix of the state dir."""
    alone = "site" not in selected
    lab = Lab(OUTPUT / (("vm-upgrade" if alone else "vm") + tag), servers, agents,
              scenario="upgrade" if alone else "site", repo=repo)
    results: dict[str, Any] = {}
    try:
        meta = lab.up()
        context = {"when": now_iso(), "commit": git_commit(repo), "servers": servers, "agents": agents,
                   "accel": meta.get("accel"), "boot_s": meta.get("boot_seconds"),
                   "memory_mib": meta.get("memory"),
                   "wiring": (f"molecule/{lab.scenario_dir.name}/molecule.yml group_vars + env; "
                              f"molecule/{lab.scenario_dir.name}/prepare.yml"
                              + ("" if alone else ", converge.yml"))}
        installed = False
        if "site" in selected:
            try:
                results["site"] = {**context, **run_site(lab)}
                installed = True
            except BenchError as exc:
                log(f"site: FAILED: {exc}")
                results["site_error"] = {**context, "error": str(exc)}
                return results
        if "upgrade" in selected:
            try:
                results["upgrade"] = {**context, **run_upgrade(lab, installed)}
            except BenchError as exc:
                log(f"upgrade: FAILED: {exc}")
                results["upgrade_error"] = {**context, "error": str(exc)}
    finally:
        if keep:
            log(f"VMs kept in {lab.state} (remove: python3 tests/vmlab/vmlab.py down --state {lab.state})")
        else:
            lab.down()
    return results
