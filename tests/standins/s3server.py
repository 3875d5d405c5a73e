"""A real S3-compatible server for the tests: moto in server mode (PyPI `moto[server]`, pinned in
requirements-s3.txt, in .venv-s3), on 127.0.0.1 of the controller (the VMs reach it at 10.0.2.2).

Why moto: maintained (monthly releases), installable from PyPI (the only registry these machines
reach besides Debian's and npm's), speaks the S3 REST API (path-style buckets, ListObjectsV2, user
metadata) and, with INITIAL_NO_AUTH_ACTION_COUNT, checks every request's AWS Signature V4 against
the IAM access keys it knows, so a badly signed request fails as on a real S3 service.

    s3server.py start --state DIR [--port N] [--bucket B]   # prints the port; DIR gets pid, port, credentials
    s3server.py stop --state DIR

`start` runs moto_server in the background with authentication switched on after the setup
requests, creates an IAM user with an access key allowed s3:*, and the bucket (with those keys,
signed by botocore). DIR/credentials is an AWS shared credentials file (0600, profile default).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Requests moto answers without authentication: create user, create access key, put user policy.
SETUP_REQUESTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).read()  # noqa: S310 (local)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("moto_server did not answer on %s within %ds" % (url, timeout))
            time.sleep(0.3)


def s3_bin() -> Path:
    """Where moto_server and a Python with boto3 live: the venv `make venv` builds for moto alone
    (.venv-s3: moto's botocore wants python-dateutil < 3, the kubernetes client >= 3), or
    $S3_VENV, or this interpreter's own directory when moto is installed next to it."""
    venv = os.environ.get("S3_VENV") or str(Path(__file__).resolve().parents[2] / ".venv-s3")
    for candidate in (Path(venv) / "bin", Path(sys.executable).parent):
        if (candidate / "moto_server").exists():
            return candidate
    raise SystemExit("moto_server not found in %s/bin or next to %s: run `make venv`" % (venv, sys.executable))


def setup_account(url: str, bucket: str) -> dict:
    """Through moto's unauthenticated setup requests: a user with an access key allowed s3:*, and
    the bucket (created with that key). Runs in the moto venv (boto3)."""
    import boto3  # pylint: disable=import-outside-toplevel

    anon = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **anon)
    iam.create_user(UserName="k3s-snapshots")
    key = iam.create_access_key(UserName="k3s-snapshots")["AccessKey"]
    iam.put_user_policy(UserName="k3s-snapshots", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
    s3.create_bucket(Bucket=bucket)
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def read_objects(url: str, access_key: str, secret_key: str, bucket: str, prefix: str) -> dict:
    """Every object under `prefix`: user metadata, content type and body (base64). Runs in the moto
    venv (boto3); tests call objects() instead."""
    import boto3  # pylint: disable=import-outside-toplevel

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=access_key,
                          aws_secret_access_key=secret_key)
    found = {}
    for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        head = client.head_object(Bucket=bucket, Key=item["Key"])
        body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        found[item["Key"]] = {"metadata": head["Metadata"], "type": head["ContentType"],
                              "body": base64.b64encode(body).decode()}
    return found


def objects(info: dict, bucket: str, prefix: str = "") -> dict:
    """The bucket's objects under `prefix` as boto3 (a real S3 client) reads them with the key that
    start() issued: {key: {metadata, type, body (bytes)}}."""
    out = subprocess.run([str(s3_bin() / "python"), str(Path(__file__).resolve()), "objects",  # noqa: S603
                          "--state", "-", "--url", info["url"], "--bucket", bucket, "--prefix", prefix],
                         input=json.dumps([info["access_key"], info["secret_key"]]),
                         check=True, capture_output=True, text=True)
    found = json.loads(out.stdout)
    for item in found.values():
        item["body"] = base64.b64decode(item["body"])
    return found


def start(state: Path, port: int, bucket: str) -> dict:
    state.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    bindir = s3_bin()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_REQUESTS))
    with open(state / "moto.log", "ab") as log:
        proc = subprocess.Popen([str(bindir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=env,  # noqa: S603
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / "pid").write_text("%d\n" % proc.pid, encoding="utf-8")
    url = "http://127.0.0.1:%d" % port
    wait_up(url)
    setup = subprocess.run([str(bindir / "python"), str(Path(__file__).resolve()), "setup",  # noqa: S603
                            "--state", str(state), "--url", url, "--bucket", bucket],
                           check=True, capture_output=True, text=True)
    key = json.loads(setup.stdout)
    creds = state / "credentials"
    creds.touch(mode=0o600)
    creds.write_text("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (key["AccessKeyId"], key["SecretAccessKey"]), encoding="utf-8")
    (state / "port").write_text("%d\n" % port, encoding="utf-8")
    info = {"port": port, "pid": proc.pid, "bucket": bucket, "access_key": key["AccessKeyId"],
            "secret_key": key["SecretAccessKey"], "url": url}
    return info


def stop(state: Path) -> bool:
    pid_file = state / "pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text(encoding="utf-8"))
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session (start_new_session): moto and nothing else
    except ProcessLookupError:
        pid_file.unlink()
        return False
    for _attempt in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pid_file.unlink()
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=["start", "stop", "setup", "objects"])
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", default="k3s-snapshots")
    parser.add_argument("--url", help="setup, objects: the running moto server")
    parser.add_argument("--prefix", default="", help="objects: key prefix (the keys come on stdin)")
    args = parser.parse_args(argv)
    if args.action == "objects":
        access_key, secret_key = json.load(sys.stdin)
        print(json.dumps(read_objects(args.url, access_key, secret_key, args.bucket, args.prefix)))
    elif args.action == "setup":
        print(json.dumps(setup_account(args.url, args.bucket)))
    elif args.action == "start":
        info = start(args.state, args.port, args.bucket)
        print(json.dumps({k: info[k] for k in ("port", "pid", "bucket", "url")}))
    else:
        print("stopped" if stop(args.state) else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
