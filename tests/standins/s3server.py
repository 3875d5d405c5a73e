#!/usr/bin/env python3
"""A real S3-compatible server for the tests: moto in server mode (PyPI `moto[server]`, pinned in
requirements-dev.txt), on 127.0.0.1 of the controller (the VMs reach it at 10.0.2.2).

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


def start(state: Path, port: int, bucket: str) -> dict:
    import boto3  # pylint: disable=import-outside-toplevel

    state.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    server = Path(sys.executable).with_name("moto_server")
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_REQUESTS))
    with open(state / "moto.log", "ab") as log:
        proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], env=env,  # noqa: S603
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / "pid").write_text("%d\n" % proc.pid, encoding="utf-8")
    url = "http://127.0.0.1:%d" % port
    wait_up(url)
    anon = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **anon)
    iam.create_user(UserName="k3s-snapshots")
    key = iam.create_access_key(UserName="k3s-snapshots")["AccessKey"]
    iam.put_user_policy(UserName="k3s-snapshots", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
    s3.create_bucket(Bucket=bucket)
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
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", default="k3s-snapshots")
    args = parser.parse_args(argv)
    if args.action == "start":
        info = start(args.state, args.port, args.bucket)
        print(json.dumps({k: info[k] for k in ("port", "pid", "bucket", "url")}))
    else:
        print("stopped" if stop(args.state) else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
