"""Shared helpers of the benchmarks (tests/bench/run.py): timed runs, load sampling, the
machine description, ansible-playbook runs through the ansible.posix.json callback."""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "tests" / "output" / "bench"          # git-ignored work area (VM state, logs)
VENV_BIN = REPO / ".venv" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"bench: {time.strftime('%H:%M:%S')} {msg}", flush=True)


def venv_tool(name: str) -> str:
    path = VENV_BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


class LoadSampler:
    """Samples the 1-minute load average every `every` seconds while a run is going on."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self.timed: list[list[float]] = []     # [epoch seconds, load1]: per-window figures
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.before: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            load = os.getloadavg()[0]
            self.samples.append(load)
            self.timed.append([round(time.time(), 1), round(load, 2)])
            self._stop.wait(self.every)

    def __enter__(self) -> "LoadSampler":
        self.before = os.getloadavg()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = os.getloadavg()

    def summary(self) -> dict[str, Any]:
        values = self.samples or [self.before[0]]
        return {"load1_before": round(self.before[0], 2), "load1_after": round(self.after[0], 2),
                "load1_mean": round(sum(values) / len(values), 2), "load1_max": round(max(values), 2),
                "load5_after": round(self.after[1], 2), "load1_samples": self.timed}


def load_between(samples: list[list[float]], start: float, end: float) -> dict[str, Any]:
    """Mean and maximum of the 1-minute load samples taken between start and end (epoch
    seconds); a window shorter than the sampling interval gets the sample nearest its middle."""
    inside = [load for when, load in samples if start <= when <= end]
    if not inside and samples:
        middle = (start + end) / 2
        inside = [min(samples, key=lambda sample: abs(sample[0] - middle))[1]]
    if not inside:
        return {"load1_mean": None, "load1_max": None}
    return {"load1_mean": round(sum(inside) / len(inside), 2), "load1_max": round(max(inside), 2)}


def qemu_vms_running() -> int:
    """QEMU processes on the machine (ours and other jobs'): context for every figure."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"qemu-system"):
                count += 1
        except OSError:
            continue
    return count


def proc_cpu_seconds(marker: str) -> tuple[float, list[int]]:
    """user+sys seconds of live processes whose command line contains `marker` (the SSH
    ControlPersist masters of one run: they detach, so the run's rusage misses them)."""
    total, pids = 0.0, []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime
        pids.append(int(entry.name))
    return total, pids


@dataclasses.dataclass
class Timed:
    rc: int
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    ssh_master_cpu_s: float
    load: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s + self.ssh_master_cpu_s

    def figures(self) -> dict[str, Any]:
        return {"rc": self.rc, "wall_s": round(self.wall_s, 2),
                "cpu_user_s": round(self.cpu_user_s, 2), "cpu_sys_s": round(self.cpu_sys_s, 2),
                "ssh_master_cpu_s": round(self.ssh_master_cpu_s, 2), "cpu_s": round(self.cpu_s, 2),
                **self.load}


def run_timed(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path = REPO,
              control_dir: Path | None = None, log_to: Path | None = None) -> Timed:
    """Run a command; wall time, user+sys of it and its reaped children, load average.

    With `control_dir` (the run's ANSIBLE_SSH_CONTROL_PATH_DIR) the CPU of the SSH masters
    still alive at the end is added, and those masters are stopped (by pid).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with LoadSampler() as sampler:
        started = time.monotonic()
        proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    masters = 0.0
    if control_dir is not None:
        masters, pids = proc_cpu_seconds(str(control_dir))
        for pid in pids:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
    if log_to is not None:
        log_to.parent.mkdir(parents=True, exist_ok=True)
        log_to.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr, encoding="utf-8")
    return Timed(proc.returncode, wall, after.ru_utime - before.ru_utime,
                 after.ru_stime - before.ru_stime, masters, sampler.summary(),
                 proc.stdout, proc.stderr)


def ansible_env(extra: dict[str, str] | None = None, control_dir: Path | None = None,
                repo: Path = REPO) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": str(repo / "ansible.cfg"),
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
                "PATH": f"{VENV_BIN}:{env.get('PATH', '')}"})
    if control_dir is not None:
        control_dir.mkdir(parents=True, exist_ok=True)
        env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control_dir)
    env.update(extra or {})
    return env


def parse_json_output(stdout: str) -> dict[str, Any]:
    """The ansible.posix.json document (warnings may precede it)."""
    start = stdout.find("{")
    if start < 0:
        raise ValueError("no JSON document in the ansible-playbook output")
    return dict(json.loads(stdout[start:]))


def _iso(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def task_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per executed task: play, name, start/end (controller clock), per-host status."""
    rows = []
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            info = task.get("task", {})
            duration = info.get("duration", {})
            if not duration.get("start") or not duration.get("end"):
                continue
            hosts = {h: ("failed" if r.get("failed") else "skipped" if r.get("skipped")
                         else "changed" if r.get("changed") else "ok")
                     for h, r in task.get("hosts", {}).items()}
            rows.append({"play": play.get("play", {}).get("name", ""), "name": info.get("name", ""),
                         "start": _iso(duration["start"]), "end": _iso(duration["end"]),
                         "hosts": hosts})
    return rows


def recap(doc: dict[str, Any]) -> dict[str, Any]:
    """Summed recap over hosts, per-host recap, and the number of tasks the run executed."""
    stats = doc.get("stats", {})
    keys = ("ok", "changed", "skipped", "failures", "unreachable", "rescued", "ignored")
    total = {k: sum(int(s.get(k, 0)) for s in stats.values()) for k in keys}
    return {"totals": total, "per_host": stats, "tasks_run": len(task_rows(doc)),
            "host_task_results": total["ok"] + total["skipped"] + total["failures"]
            + total["unreachable"]}


def slowest_tasks(doc: dict[str, Any], count: int = 8) -> list[dict[str, Any]]:
    rows = sorted(task_rows(doc), key=lambda r: r["end"] - r["start"], reverse=True)[:count]
    return [{"task": r["name"], "play": r["play"], "seconds": round(r["end"] - r["start"], 1)}
            for r in rows]


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    flags = re.search(r"flags\s*:\s*(.*)", cpuinfo)
    virt = bool(flags and re.search(r"\b(vmx|svm)\b", flags.group(1)))
    os_release = Path("/etc/os-release").read_text(encoding="utf-8")
    pretty = re.search(r'PRETTY_NAME="([^"]*)"', os_release)
    return {"cores": os.cpu_count(), "cpu_model": model.group(1).strip() if model else "",
            "mem_gib": round(mem_kib / 1024 / 1024, 1), "kernel": platform.release(),
            "os": pretty.group(1) if pretty else "", "python": platform.python_version(),
            "vm_accel": "kvm" if virt and os.path.exists("/dev/kvm") else "tcg (software emulation)",
            "ansible_core": _ansible_version()}


def _ansible_version() -> str:
    try:
        out = subprocess.run([venv_tool("ansible"), "--version"], capture_output=True, text=True,
                             check=False, stdin=subprocess.DEVNULL).stdout
    except OSError:
        return ""
    match = re.search(r"core ([\d.]+)", out)
    return match.group(1) if match else ""


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_commit(repo: Path = REPO) -> str:
    """The checkout's commit, with "+changes" when its tracked files differ from it."""
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", "HEAD"], check=False).returncode != 0
    return head + ("+changes" if dirty else "")


class Worktree:
    """A temporary checkout of `rev` (git worktree, detached) usable as the collection: its own
    .collections link, as `make venv` makes it. Removed on exit."""

    def __init__(self, rev: str, parent: Path) -> None:
        self.rev = rev
        self.path = parent / "baseline-worktree"
        self.commit = ""

    def __enter__(self) -> "Worktree":
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._remove()
        proc = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(self.path), self.rev],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"git worktree add {self.rev} failed: {proc.stderr.strip()}")
        self.commit = git_commit(self.path)
        link = self.path / ".collections" / "ansible_collections" / "dictamesh" / "k3s_gitops"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to("../../..")
        return self

    def _remove(self) -> None:
        if self.path.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(self.path)],
                           capture_output=True, check=False)
            shutil.rmtree(self.path, ignore_errors=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True, check=False)

    def __exit__(self, *exc: object) -> None:
        self._remove()
