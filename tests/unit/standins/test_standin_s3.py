"""The K3S stand-in's etcd snapshots on S3 (standin/s3.py, standin/day2.py) against a real S3 server:
moto in server mode on 127.0.0.1 (tests/standins/s3server.py), which checks every request's SigV4
signature against the IAM keys it issued. Stand-in servers run as real processes under temp roots."""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins"))
sys.path.insert(0, str(REPO / "tests/standins/k3s"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import s3server  # noqa: E402
from standin import day2, s3  # noqa: E402
# make: the fixture of test_standin_day2 (stand-in servers under temp roots)
from test_standin_day2 import logged, make  # noqa: E402,F401 pylint: disable=unused-import

BUCKET = "k3s-snapshots"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state = tmp_path_factory.mktemp("moto")
    info = s3server.start(state, 0, BUCKET)
    info["credentials"] = str(state / "credentials")
    yield info
    s3server.stop(state)


def objects(moto: dict, prefix: str = "") -> dict[str, dict]:
    return s3server.objects(moto, BUCKET, prefix)


def s3_options(moto: dict, folder: str, **extra: object) -> dict:
    options = {"etcd_s3": True, "etcd_s3_endpoint": f"127.0.0.1:{moto['port']}", "etcd_s3_insecure": True,
               "etcd_s3_bucket": BUCKET, "etcd_s3_folder": folder, "etcd_s3_region": "us-east-1"}
    options.update(extra)
    return options


def s3_server(make, moto: dict, folder: str, name: str = "s1", **extra: object):
    """An etcd server whose K3S (server and CLI) reads the keys from a shared credentials file."""
    server = make(name)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = moto["credentials"]  # inherited by the processes
    server.configure(cluster_init=True, **s3_options(moto, folder, **extra))
    server.start()
    server.wait_ready()
    return server


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")


def test_client_signs_lists_and_refuses_bad_keys(moto: dict, tmp_path: Path) -> None:
    cfg = s3.settings({"etcd-s3": True, "etcd-s3-endpoint": f"127.0.0.1:{moto['port']}", "etcd-s3-insecure": True,
                       "etcd-s3-bucket": BUCKET, "etcd-s3-folder": "unit/client",
                       "etcd-s3-access-key": moto["access_key"], "etcd-s3-secret-key": moto["secret_key"]})
    client = s3.Client(cfg)
    snap = tmp_path / "snap-a-1767225600"
    snap.write_bytes(b"payload")
    assert client.upload(str(snap), {"k3s-node-name": "n1"})["location"] == \
        f"s3://{BUCKET}/unit/client/snap-a-1767225600"
    stored = objects(moto, "unit/client/")
    assert list(stored) == ["unit/client/snap-a-1767225600"]
    assert stored["unit/client/snap-a-1767225600"]["metadata"] == {"k3s-node-name": "n1"}
    assert stored["unit/client/snap-a-1767225600"]["type"] == "application/octet-stream"
    assert [o["name"] for o in client.snapshots()] == ["snap-a-1767225600"]
    target = Path(client.download("snap-a-1767225600", str(tmp_path / "dl")))
    assert target.read_bytes() == b"payload" and target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(s3.S3Error, match="FORBIDDEN|Forbidden|403"):  # moto checks the signature
        s3.Client(dict(cfg, **{"secret-key": moto["secret_key"] + "x"}))
    with pytest.raises(s3.S3Error, match="bucket nope does not exist"):
        s3.Client(dict(cfg, bucket="nope"))
    with pytest.raises(s3.S3Error, match="s3 bucket name was not set"):
        s3.Client(dict(cfg, bucket=""))
    assert client.delete("snap-a-1767225600") and not client.snapshots()
    assert not client.delete("snap-a-1767225600")


def test_shared_credentials_file_profile(moto: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(f"[profile ops]\naws_access_key_id = {moto['access_key']}\n"
                     f"aws_secret_access_key = {moto['secret_key']}\n", encoding="utf-8")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "ops")
    assert s3.shared_credentials() == (moto["access_key"], moto["secret_key"])
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home/.aws").mkdir(parents=True)
    (tmp_path / "home/.aws/credentials").write_text(creds.read_text(encoding="utf-8"), encoding="utf-8")
    assert s3.shared_credentials() == (moto["access_key"], moto["secret_key"])


def test_save_uploads_lists_deletes_like_k3s(make, moto: dict) -> None:
    server = s3_server(make, moto, "clusters/unit-save")
    result = server.run("etcd-snapshot", "save", "--name", "backup")
    assert result.returncode == 0, result.stderr
    names = [re.fullmatch(r"Snapshot (\S+) saved\.", line[1]).group(1) for line in logged(result.stderr)]
    assert len(names) == 2 and names[0] == names[1]  # local, then S3: one line each, as the CLI logs them
    name = names[0]
    stored = objects(moto, "clusters/unit-save/")
    assert list(stored) == [f"clusters/unit-save/{name}"]
    meta = stored[f"clusters/unit-save/{name}"]["metadata"]
    assert set(meta) == {"k3s-cluster-id", "k3s-node-name", "k3s-token-hash"} and meta["k3s-node-name"] == "s1"
    assert stored[f"clusters/unit-save/{name}"]["body"] == server.data(f"server/db/snapshots/{name}").read_bytes()
    listed = json.loads(server.run("etcd-snapshot", "ls", "-o", "json").stdout)["items"]
    locations = sorted(i["spec"]["location"] for i in listed)
    assert locations == sorted([f"file://{server.data('server/db/snapshots')}/{name}",
                                f"s3://{BUCKET}/clusters/unit-save/{name}"])
    s3_item = [i for i in listed if i["spec"]["nodeName"] == "s3"][0]
    assert "access-key" not in s3_item["spec"]["s3"] and "secret-key" not in s3_item["spec"]["s3"]
    deleted = server.run("etcd-snapshot", "delete", name)
    assert deleted.returncode == 0 and logged(deleted.stderr) == [("info", f"Snapshot {name} deleted.")]
    assert objects(moto, "clusters/unit-save/") == {}


def test_upload_failure_is_logged_by_the_server_not_the_cli(make, moto: dict, tmp_path: Path) -> None:
    server = s3_server(make, moto, "clusters/unit-nokey")
    bad = tmp_path / "bad-credentials"
    bad.write_text("[default]\naws_access_key_id = AKIANOPE\naws_secret_access_key = nope\n", encoding="utf-8")
    # the server uploads with its own credentials; the CLI only sends the options
    server.stop()
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(bad)
    server.start()
    server.wait_ready()
    result = server.run("etcd-snapshot", "save", "--name", "backup")
    assert result.returncode == 0 and len(logged(result.stderr)) == 1  # only the local copy saved
    assert objects(moto, "clusters/unit-nokey/") == {}
    listed = server.run("etcd-snapshot", "ls", "-o", "json")
    assert listed.returncode == 1 and "failed to initialize S3 client" in listed.stderr


def test_restore_downloads_from_s3(make, moto: dict) -> None:
    server = s3_server(make, moto, "clusters/unit-restore")
    result = server.run("etcd-snapshot", "save", "--name", "offsite")
    name = re.fullmatch(r"Snapshot (\S+) saved\.", logged(result.stderr)[-1][1]).group(1)
    cluster_id = json.loads(server.data("server/db/state.json").read_text())["cluster_id"]
    server.stop()
    server.data(f"server/db/snapshots/{name}").unlink()  # only the bucket has it now
    missing = server.run("server", "--cluster-reset", "--cluster-reset-restore-path=nope-s1-1")
    assert missing.returncode == 1 and "failed to download snapshot from S3" in missing.stderr
    reset = server.run("server", "--cluster-reset", f"--cluster-reset-restore-path={name}")
    assert reset.returncode == 0, reset.stderr
    assert ("info", f"Retrieving etcd snapshot {name} from S3") in logged(reset.stderr)
    restored = server.data(f"server/db/snapshots/{name}")
    assert restored.stat().st_mode & 0o777 == 0o600
    state = json.loads(server.data("server/db/state.json").read_text())
    assert state["cluster_id"] == cluster_id and "reset_at" in state
    # --etcd-s3=false on the command line: the path is a local file again
    local = server.run("server", "--cluster-reset", "--etcd-s3=false", f"--cluster-reset-restore-path={name}")
    assert local.returncode == 0 and "from S3" not in local.stderr


def test_schedule_and_retention(make, moto: dict) -> None:
    server = s3_server(make, moto, "clusters/unit-cron", etcd_snapshot_schedule_cron="@every 2s",
                       etcd_snapshot_retention=2, etcd_snapshot_name="sched")
    deadline = time.monotonic() + 30
    while len(objects(moto, "clusters/unit-cron/")) < 2 or time.monotonic() < deadline - 22:
        assert time.monotonic() < deadline, "no scheduled snapshots"
        time.sleep(1)
    local = sorted(p.name for p in server.data("server/db/snapshots").iterdir())
    remote = sorted(k.rsplit("/", 1)[1] for k in objects(moto, "clusters/unit-cron/"))
    assert len(local) == 2 and len(remote) == 2, (local, remote)
    assert all(re.fullmatch(r"sched-s1-\d{10}", n) for n in local + remote)


@pytest.mark.parametrize(("spec", "good"), [
    ("0 */12 * * *", True), ("*/5 * * * 1-5", True), ("@daily", True), ("@every 1h30m", True),
    ("0 0 * * MON", True), ("* * * *", False), ("61 * * * *", False), ("0 0 * 13 *", False),
    ("@every", False), ("@fortnightly", False), ("*/0 * * * *", False),
])
def test_cron_parser(spec: str, good: bool) -> None:
    if good:
        day2.parse_cron(spec)
    else:
        with pytest.raises(ValueError):
            day2.parse_cron(spec)


def test_bad_cron_stops_the_server(make) -> None:
    server = make("s1")
    server.configure(cluster_init=True, etcd_snapshot_schedule_cron="0 */12 * *")
    result = server.run("server")
    assert result.returncode == 1 and "failed to parse etcd-snapshot-schedule-cron" in result.stderr
