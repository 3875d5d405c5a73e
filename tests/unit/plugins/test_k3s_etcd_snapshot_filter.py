"""k3s_etcd_snapshot_options: the config.yaml keys for scheduled and S3 snapshots, and the refusals."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugins" / "filter"))

from k3s_etcd_snapshot import cron_problem, k3s_etcd_snapshot_options  # noqa: E402

S3 = {"etcd_s3": True, "etcd_s3_bucket": "k3s-backups", "etcd_s3_endpoint": "10.0.2.2:9000", "etcd_s3_folder": "prod",
      "etcd_s3_region": "eu-west-1", "etcd_s3_access_key": "AKIAEXAMPLE", "etcd_s3_secret_key": "s3cr3t/key+x"}


def test_nothing_set_writes_nothing() -> None:
    assert k3s_etcd_snapshot_options({}) == {"config": {}, "credentials": "", "problems": []}
    off = k3s_etcd_snapshot_options({"etcd_s3": False, "etcd_s3_bucket": "", "etcd_snapshot_retention": 0})
    assert off == {"config": {}, "credentials": "", "problems": []}


def test_schedule_and_s3_keys_without_secrets() -> None:
    got = k3s_etcd_snapshot_options(dict(S3, etcd_snapshot_schedule_cron="0 */6 * * *", etcd_snapshot_retention=14,
                                         etcd_s3_insecure=True))
    assert got["problems"] == []
    assert got["config"] == {"etcd-snapshot-schedule-cron": "0 */6 * * *", "etcd-snapshot-retention": 14,
                             "etcd-s3": True, "etcd-s3-bucket": "k3s-backups", "etcd-s3-endpoint": "10.0.2.2:9000",
                             "etcd-s3-folder": "prod", "etcd-s3-region": "eu-west-1", "etcd-s3-insecure": True}
    assert "s3cr3t" not in str(got["config"]) and "AKIAEXAMPLE" not in str(got["config"])
    assert got["credentials"] == "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t/key+x\n"


def test_iam_role_without_keys_and_custom_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    got = k3s_etcd_snapshot_options({"etcd_s3": "true", "etcd_s3_bucket": "b.example", "etcd_s3_endpoint_ca": str(ca)})
    assert got["problems"] == [] and got["credentials"] == ""
    assert got["config"] == {"etcd-s3": True, "etcd-s3-bucket": "b.example",
                             "etcd-s3-endpoint-ca": "/etc/rancher/k3s/etcd-s3-ca.crt"}


@pytest.mark.parametrize(("inputs", "named", "says"), [
    ({"etcd_s3": True}, "cluster_etcd_s3_bucket", "is empty"),
    (dict(S3, etcd_s3_bucket="Bad_Bucket"), "cluster_etcd_s3_bucket", "not an S3 bucket name"),
    (dict(S3, etcd_s3_endpoint="https://s3.example.com"), "cluster_etcd_s3_endpoint", "without a scheme"),
    (dict(S3, etcd_s3_insecure=True, etcd_s3_skip_ssl_verify=True), "cluster_etcd_s3_insecure", "no TLS"),
    (dict(S3, etcd_s3_skip_ssl_verify=True, etcd_s3_endpoint_ca="/etc/hosts"), "cluster_etcd_s3_endpoint_ca",
     "make no sense"),
    (dict(S3, etcd_s3_endpoint_ca="/nonexistent/ca.pem"), "cluster_etcd_s3_endpoint_ca", "not a file"),
    (dict(S3, etcd_s3_secret_key=""), "cluster_etcd_s3_secret_key", "go together"),
    (dict(S3, etcd_s3_secret_key="CHANGE-ME"), "cluster_etcd_s3_secret_key", "placeholder"),
    (dict(S3, etcd_s3_folder="a/../b"), "cluster_etcd_s3_folder", ".."),
    (dict(S3, etcd_s3="maybe"), "cluster_etcd_s3", "true or false"),
    ({"etcd_snapshot_schedule_cron": "0 */12 * *"}, "cluster_etcd_snapshot_schedule_cron", "expected 5 fields"),
    ({"etcd_snapshot_schedule_cron": "61 * * * *"}, "cluster_etcd_snapshot_schedule_cron", "outside 0-59"),
    ({"etcd_snapshot_retention": "five"}, "cluster_etcd_snapshot_retention", "a number"),
])
def test_problems_name_the_variable(inputs: dict, named: str, says: str) -> None:
    problems = k3s_etcd_snapshot_options(inputs)["problems"]
    assert len(problems) == 1, problems
    assert named in problems[0] and says in problems[0]
    assert "s3cr3t" not in problems[0]


def test_prefix_names_role_variables() -> None:
    problems = k3s_etcd_snapshot_options({"etcd_s3": True}, "k3s_server_")["problems"]
    assert problems and problems[0].startswith("k3s_server_etcd_s3_bucket is empty")


@pytest.mark.parametrize(("spec", "good"), [
    ("0 */12 * * *", True), ("*/5 9-17 * * mon-fri", True), ("0 0 1 JAN *", True), ("@daily", True),
    ("@every 6h", True), ("@every 1h30m", True), ("0 0 * * 7", True),
    ("* * * *", False), ("0 24 * * *", False), ("*/0 * * * *", False), ("5-1 * * * *", False),
    ("@every", False), ("@every 0s", False), ("@fortnightly", False), ("0 0 * * * *", False),
])
def test_cron_grammar(spec: str, good: bool) -> None:
    assert (cron_problem(spec) == "") is good, cron_problem(spec)
