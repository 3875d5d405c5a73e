"""S3 part of the K3S stand-in (NOT K3S; never ships in roles/ or plugins/): etcd snapshots on an
S3-compatible store, with the Python standard library only (it runs inside the test VMs).

What it imitates (k3s-io/k3s, pkg/etcd/s3/s3.go and pkg/etcd/snapshot.go, main branch read 2026-11;
pkg/cli/cmds/server.go for the option names and defaults):

* the options `etcd-s3`, `etcd-s3-endpoint` (host[:port], default s3.amazonaws.com),
  `etcd-s3-endpoint-ca` (a file path or base64 PEM), `etcd-s3-skip-ssl-verify`, `etcd-s3-insecure`
  (plain HTTP), `etcd-s3-bucket`, `etcd-s3-region` (default us-east-1), `etcd-s3-folder`,
  `etcd-s3-access-key` / `etcd-s3-secret-key` (flags' environment: AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY), `etcd-s3-timeout`;
* credentials as minio-go's chain in GetClient: the static keys first, else the shared
  credentials file (minio/minio-go pkg/credentials/file_aws_credentials.go: AWS_SHARED_CREDENTIALS_FILE,
  else $HOME/.aws/credentials; profile AWS_PROFILE, else default), else anonymous;
* "bucket <name> does not exist" when the bucket is missing (GetClient checks it first);
* object keys `<folder>/<snapshot name>`, metadata under `<folder>/.metadata/<name>` (only when
  the snapshot has extra metadata, which the stand-in never has), user metadata
  `x-amz-meta-k3s-cluster-id`, `-k3s-node-name`, `-k3s-token-hash`; content type
  application/octet-stream;
* listing every object under the folder (recursive, `.metadata/` skipped), location
  `s3://<bucket>/<key>`, node name `s3`; retention: newest `retention` objects whose key starts
  with `<folder>/<name prefix>` kept (SnapshotRetention); delete removes the snapshot and its
  metadata object; download writes `<snapshot dir>/<name>` mode 0600.

Requests are path-style (minio's BucketLookupAuto for a non-AWS endpoint) and signed with AWS
Signature Version 4, the payload hashed (minio signs the payload over plain HTTP).
"""

import base64
import configparser
import datetime
import hashlib
import hmac
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

DEFAULT_ENDPOINT = "s3.amazonaws.com"
DEFAULT_REGION = "us-east-1"
METADATA_DIR = ".metadata"
OPTIONS = ("etcd-s3", "etcd-s3-endpoint", "etcd-s3-endpoint-ca", "etcd-s3-skip-ssl-verify", "etcd-s3-insecure",
           "etcd-s3-bucket", "etcd-s3-region", "etcd-s3-folder", "etcd-s3-access-key", "etcd-s3-secret-key",
           "etcd-s3-timeout")
BOOL_OPTIONS = ("etcd-s3", "etcd-s3-skip-ssl-verify", "etcd-s3-insecure")


class S3Error(Exception):
    """An S3 failure, worded like minio-go's errors that K3S logs."""


def truthy(value) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def settings(config: dict):
    """The S3 settings from K3S options (config.yaml merged with flags); None when etcd-s3 is off."""
    if not truthy(config.get("etcd-s3")):
        return None
    return {
        "endpoint": str(config.get("etcd-s3-endpoint") or DEFAULT_ENDPOINT),
        "endpoint-ca": str(config.get("etcd-s3-endpoint-ca") or ""),
        "skip-ssl-verify": truthy(config.get("etcd-s3-skip-ssl-verify")),
        "insecure": truthy(config.get("etcd-s3-insecure")),
        "bucket": str(config.get("etcd-s3-bucket") or ""),
        "region": str(config.get("etcd-s3-region") or DEFAULT_REGION),
        "folder": str(config.get("etcd-s3-folder") or ""),
        "access-key": str(config.get("etcd-s3-access-key") or os.environ.get("AWS_ACCESS_KEY_ID") or ""),
        "secret-key": str(config.get("etcd-s3-secret-key") or os.environ.get("AWS_SECRET_ACCESS_KEY") or ""),
    }


def public(cfg: dict) -> dict:
    """The settings without the keys (as K3S shows them in an ETCDSnapshotFile's spec.s3)."""
    return {k: v for k, v in cfg.items() if k not in ("access-key", "secret-key")}


def shared_credentials():
    """(access key, secret key) from the shared credentials file, or ('', '')."""
    path = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(
        os.environ.get("HOME") or os.path.expanduser("~"), ".aws", "credentials")
    profile = os.environ.get("AWS_PROFILE") or "default"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error):
        return "", ""
    for section in (profile, "profile " + profile):
        if parser.has_section(section):
            return (parser.get(section, "aws_access_key_id", fallback=""),
                    parser.get(section, "aws_secret_access_key", fallback=""))
    return "", ""


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def key_for(folder: str, name: str) -> str:
    """path.Join(folder, name) as Go does it (no leading slash, no empty segments)."""
    parts = [p for p in (folder.strip("/") + "/" + name).split("/") if p and p != "."]
    return "/".join(parts)


class Client:
    """A path-style S3 client for one bucket (GetClient)."""

    def __init__(self, cfg: dict, timeout: float = 60):
        if not cfg.get("bucket"):
            raise S3Error("s3 bucket name was not set")
        self.cfg = cfg
        self.timeout = timeout
        self.access, self.secret = cfg.get("access-key", ""), cfg.get("secret-key", "")
        if not (self.access or self.secret):
            self.access, self.secret = shared_credentials()
        self.scheme = "http" if cfg.get("insecure") else "https"
        self.context = None
        if self.scheme == "https":
            self.context = ssl.create_default_context()
            if cfg.get("skip-ssl-verify"):
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
            elif cfg.get("endpoint-ca"):
                self.context = ssl.create_default_context(cadata=self._ca_data(cfg["endpoint-ca"]))
        if not self.bucket_exists():
            raise S3Error("bucket %s does not exist" % cfg["bucket"])

    @staticmethod
    def _ca_data(value: str) -> str:
        chunks = []
        for item in value.split(" "):
            try:
                chunks.append(base64.b64decode(item, validate=True).decode())
            except ValueError:
                with open(item, encoding="utf-8") as handle:
                    chunks.append(handle.read())
        return "\n".join(chunks)

    # -- signing (AWS Signature Version 4, docs.aws.amazon.com AmazonS3 sig-v4-header-based-auth)
    def _sign(self, method: str, path: str, query: dict, headers: dict, payload_hash: str) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        if not (self.access and self.secret):
            return  # anonymous, as minio-go's chain ends
        names = sorted(h.lower() for h in headers)
        lowered = {h.lower(): str(v).strip() for h, v in headers.items()}
        canonical = "\n".join([
            method, _quote(path, "-_.~/"),
            "&".join("%s=%s" % (_quote(k), _quote(str(v))) for k, v in sorted(query.items())),
            "".join("%s:%s\n" % (n, lowered[n]) for n in names),
            ";".join(names), payload_hash])
        scope = "%s/%s/s3/aws4_request" % (day, self.cfg["region"])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret).encode()
        for part in (day, self.cfg["region"], "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            self.access, scope, ";".join(names), signature)

    def request(self, method: str, key: str = "", query=None, body: bytes = b"", headers=None):
        """(status, headers, body); S3Error for a transport failure or an error answer."""
        query = dict(query or {})
        headers = dict(headers or {})
        path = "/" + self.cfg["bucket"] + ("/" + key if key else "")
        headers["Host"] = self.cfg["endpoint"]
        self._sign(method, path, query, headers, hashlib.sha256(body).hexdigest())
        url = "%s://%s%s" % (self.scheme, self.cfg["endpoint"], _quote(path, "-_.~/"))
        if query:
            url += "?" + "&".join("%s=%s" % (_quote(k), _quote(str(v))) for k, v in sorted(query.items()))
        req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None, method=method,
                                     headers={k: v for k, v in headers.items() if k != "Host"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            code, message = str(exc.code), exc.reason
            try:
                root = ET.fromstring(raw)
                code = root.findtext("Code") or code
                message = root.findtext("Message") or message
            except ET.ParseError:
                pass
            error = S3Error(message)
            error.status, error.code = exc.code, code
            raise error
        except (OSError, urllib.error.URLError) as exc:
            raise S3Error('%s %s://%s/%s: %s' % (method, self.scheme, self.cfg["endpoint"], self.cfg["bucket"],
                                                 getattr(exc, "reason", exc)))

    def bucket_exists(self) -> bool:
        try:
            self.request("HEAD")
        except S3Error as exc:
            if getattr(exc, "status", 0) == 404:
                return False
            raise S3Error("failed to test for existence of bucket %s: %s" % (self.cfg["bucket"], exc))
        return True

    # -- what K3S does with it
    def upload(self, path: str, metadata: dict) -> dict:
        name = os.path.basename(path)
        key = key_for(self.cfg["folder"], name)
        with open(path, "rb") as handle:
            body = handle.read()
        headers = {"Content-Type": "application/octet-stream"}
        headers.update({"x-amz-meta-" + k.lower(): v for k, v in metadata.items()})
        self.request("PUT", key, body=body, headers=headers)
        return {"name": name, "key": key, "location": "s3://%s/%s" % (self.cfg["bucket"], key), "size": len(body)}

    def download(self, name: str, directory: str) -> str:
        body = self.request("GET", key_for(self.cfg["folder"], name))[2]
        os.makedirs(directory, mode=0o700, exist_ok=True)
        target = os.path.join(directory, name)
        with open(target, "wb") as handle:
            handle.write(body)
        os.chmod(target, 0o600)
        return target

    def objects(self, prefix: str) -> list:
        """ListObjectsV2 over every page: [{key, size, modified}]."""
        found, token = [], None
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            body = self.request("GET", query=query)[2]
            root = ET.fromstring(body)
            for item in root.iter(ns + "Contents"):
                found.append({"key": item.findtext(ns + "Key"), "size": int(item.findtext(ns + "Size") or 0),
                              "modified": item.findtext(ns + "LastModified") or ""})
            token = root.findtext(ns + "NextContinuationToken")
            if (root.findtext(ns + "IsTruncated") or "false") != "true" or not token:
                return found

    def snapshots(self) -> list:
        """Snapshot objects under the folder (ListSnapshots): metadata and empty objects left out."""
        items = []
        for obj in self.objects(self.cfg["folder"]):
            if obj["size"] == 0 or obj["key"].split("/")[-2:-1] == [METADATA_DIR]:
                continue
            items.append(dict(obj, name=obj["key"].rsplit("/", 1)[-1],
                              location="s3://%s/%s" % (self.cfg["bucket"], obj["key"])))
        return items

    def delete(self, name: str) -> bool:
        """DeleteSnapshot: the snapshot and its metadata object; True when the snapshot existed."""
        key = key_for(self.cfg["folder"], name)
        existed = True
        try:
            self.request("HEAD", key)
        except S3Error as exc:
            if getattr(exc, "status", 0) != 404:
                raise
            existed = False
        if existed:
            self.request("DELETE", key)
        meta = key_for(self.cfg["folder"], METADATA_DIR + "/" + name)
        try:
            self.request("HEAD", meta)
            self.request("DELETE", meta)
        except S3Error as exc:
            if getattr(exc, "status", 0) != 404:
                raise
        return existed

    def retention(self, prefix: str, keep: int) -> list:
        """SnapshotRetention: keep the newest `keep` snapshots whose key starts with folder/prefix."""
        if keep < 1:
            return []
        start = key_for(self.cfg["folder"], prefix)
        files = [o for o in self.objects(start) if o["key"].split("/")[-2:-1] != [METADATA_DIR]]
        if len(files) <= keep:
            return []
        files.sort(key=lambda o: (o["modified"], o["key"]), reverse=True)
        deleted = []
        for obj in files[keep:]:
            name = obj["key"].rsplit("/", 1)[-1]
            self.delete(name)
            deleted.append(name)
        return deleted
