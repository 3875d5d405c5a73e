"""``python -m tests.standins.argocd_api``: where the admin password comes from (file 0600, environment,
argument) and that the file's password is the one the running stand-in accepts, never on its command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.standins.argocd_api.__main__ import (  # noqa: E402
    DEFAULT_PASSWORD,
    PASSWORD_ENV,
    PasswordSourceError,
    admin_password,
)

SECRET = "file-secret-0123456789"


def secret_file(tmp_path: Path, text: str = SECRET + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "admin-password"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_file_first_line_is_the_password(tmp_path):
    path = secret_file(tmp_path, SECRET + "\nsecond line\n")
    assert admin_password(path, None, {PASSWORD_ENV: "from-env"}) == SECRET


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o601])
def test_file_open_to_group_or_others_is_refused(tmp_path, mode):
    with pytest.raises(PasswordSourceError, match="0600"):
        admin_password(secret_file(tmp_path, mode=mode), None, {})


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_modes_are_accepted(tmp_path, mode):
    assert admin_password(secret_file(tmp_path, mode=mode), None, {}) == SECRET


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(PasswordSourceError, match="empty"):
        admin_password(secret_file(tmp_path, text=""), None, {})


def test_argument_then_environment_then_default():
    assert admin_password(None, "from-arg", {PASSWORD_ENV: "from-env"}) == "from-arg"
    assert admin_password(None, None, {PASSWORD_ENV: "from-env"}) == "from-env"
    assert admin_password(None, None, {PASSWORD_ENV: ""}) == DEFAULT_PASSWORD
    assert admin_password(None, None, {}) == DEFAULT_PASSWORD


def start(args: List[str], tmp_path: Path, env: Dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.standins.argocd_api", "--port", "0",
                             "--ready-file", str(tmp_path / "ready.json")] + args,
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[List[subprocess.Popen]]:
    procs: List[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen, ready: Path) -> Dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if ready.exists() and ready.read_text().strip():
            return json.loads(ready.read_text())
        time.sleep(0.05)
    raise AssertionError("stand-in not ready")


def login(url: str, password: str) -> int:
    req = urllib.request.Request(url + "/api/v1/session", method="POST",
                                 data=json.dumps({"username": "admin", "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("how", ["file", "env"])
def test_running_standin_takes_the_password_off_the_command_line(tmp_path, running, how):
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    args: List[str] = []
    if how == "file":
        args = ["--admin-password-file", str(secret_file(tmp_path))]
    else:
        env[PASSWORD_ENV] = SECRET
    proc = start(args, tmp_path, env)
    running.append(proc)
    ready = wait_ready(proc, tmp_path / "ready.json")
    assert login(str(ready["url"]), SECRET) == 200
    assert login(str(ready["url"]), DEFAULT_PASSWORD) == 401
    cmdline = Path("/proc/%d/cmdline" % proc.pid).read_bytes().decode()
    assert SECRET not in cmdline


def test_loose_file_stops_the_standin_before_it_listens(tmp_path, running):
    proc = start(["--admin-password-file", str(secret_file(tmp_path, mode=0o644))], tmp_path, dict(os.environ))
    running.append(proc)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "must be 0600" in err
    assert not (tmp_path / "ready.json").exists()


def test_file_and_argument_are_exclusive(tmp_path, running):
    proc = start(["--admin-password-file", str(secret_file(tmp_path)), "--admin-password", "x"], tmp_path,
                 dict(os.environ))
    running.append(proc)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "not allowed with" in err
