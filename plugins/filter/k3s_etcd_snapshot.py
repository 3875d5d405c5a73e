# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""K3S's scheduled etcd snapshots and their S3 copies: the config.yaml keys, and what is wrong.

K3S (k3s-io/k3s pkg/cli/cmds/server.go) takes etcd snapshots on `etcd-snapshot-schedule-cron`
(default "0 */12 * * *", a robfig/cron v3 spec: 5 fields or a descriptor such as @daily or
@every 6h), keeps `etcd-snapshot-retention` of them (default 5) and, with `etcd-s3`, uploads each
one to `etcd-s3-bucket` under `etcd-s3-folder` at `etcd-s3-endpoint` (host[:port], default
s3.amazonaws.com; plain HTTP with `etcd-s3-insecure`; a custom CA with `etcd-s3-endpoint-ca`,
or no verification with `etcd-s3-skip-ssl-verify`: pkg/etcd/s3/s3.go says it makes no sense to
do both). Its S3 client (minio-go) takes the keys from the options, else from the AWS shared
credentials file (AWS_SHARED_CREDENTIALS_FILE), else from the instance's IAM role: the keys go to
that file (0600), never into config.yaml. `etcd-s3-config-secret` (a Secret in the cluster) is
not used: K3S cannot read it while restoring (`--cluster-reset`), when the S3 settings matter most.

k3s_etcd_snapshot_options(inputs, prefix) takes the inputs without their prefix
(etcd_snapshot_schedule_cron, etcd_snapshot_retention, etcd_s3, etcd_s3_endpoint, etcd_s3_bucket,
etcd_s3_folder, etcd_s3_region, etcd_s3_endpoint_ca, etcd_s3_insecure, etcd_s3_skip_ssl_verify,
etcd_s3_access_key, etcd_s3_secret_key) and returns
  config       config.yaml keys (only those set: K3S's defaults stay implicit);
  credentials  the shared credentials file content, '' when no key is given (IAM role);
  problems     messages naming <prefix><input>, empty when the inputs are usable.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import re

from ansible.errors import AnsibleFilterError

CA_PATH = "/etc/rancher/k3s/etcd-s3-ca.crt"
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
NAMES = {3: "jan feb mar apr may jun jul aug sep oct nov dec", 4: "sun mon tue wed thu fri sat"}
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
ENDPOINT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?$")
PLACEHOLDER = re.compile(r"(?i)change[-_ ]?me")


def _cron_value(text, index, low, high):
    names = NAMES.get(index, "").split()
    if text.lower() in names:
        return names.index(text.lower()) + (1 if index == 3 else 0)
    if not text.isdigit():
        raise ValueError("%r is not a number" % text)
    value = int(text)
    if not low <= value <= high:
        raise ValueError("%s is outside %d-%d" % (text, low, high))
    return value


def cron_problem(spec):
    """'' when robfig/cron's standard parser accepts spec, else why not."""
    spec = spec.strip()
    if spec in DESCRIPTORS:
        return ""
    if spec.startswith("@every"):
        if re.match(r"^@every ((\d+(\.\d+)?)(h|m|s|ms))+$", spec) and re.search(r"[1-9]", spec):
            return ""
        return "@every needs a duration such as 6h or 30m"
    if spec.startswith("@"):
        return "unknown descriptor %s" % spec.split()[0]
    fields = spec.split()
    if len(fields) != 5:
        return "expected 5 fields (minute hour day-of-month month day-of-week), found %d" % len(fields)
    for index, (field, (label, low, high)) in enumerate(zip(fields, FIELDS)):
        for part in field.split(","):
            try:
                rng, sep, step = part.partition("/")
                if sep and (not step.isdigit() or int(step) < 1):
                    raise ValueError("step %r must be a positive number" % step)
                if rng in ("*", "?"):
                    continue
                bounds = [_cron_value(b, index, low, high) for b in rng.split("-", 1)]
                if len(bounds) == 2 and bounds[0] > bounds[1]:
                    raise ValueError("range %s runs backwards" % rng)
            except ValueError as exc:
                return "%s field %r: %s" % (label, field, exc)
    return ""


def _flag(value):
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "on", "1"):
        return True
    if str(value).lower() in ("false", "no", "off", "0", "", "none"):
        return False
    raise ValueError(value)


def k3s_etcd_snapshot_options(inputs, prefix="cluster_"):
    if not isinstance(inputs, dict):
        raise AnsibleFilterError("k3s_etcd_snapshot_options expects a dict, got %s" % type(inputs).__name__)
    problems, config = [], {}

    def name(key):
        return prefix + key

    def text(key):
        value = inputs.get(key)
        return "" if value is None else str(value).strip()

    def flag(key):
        try:
            return _flag(inputs.get(key, False))
        except ValueError:
            problems.append("%s is %r: expected true or false." % (name(key), inputs.get(key)))
            return False

    cron = text("etcd_snapshot_schedule_cron")
    if cron:
        why = cron_problem(cron)
        if why:
            problems.append("%s %r is not a cron spec K3S accepts: %s (for example '0 */6 * * *' or @daily)."
                            % (name("etcd_snapshot_schedule_cron"), cron, why))
        config["etcd-snapshot-schedule-cron"] = cron
    retention = inputs.get("etcd_snapshot_retention")
    if retention not in (None, ""):
        if not re.match(r"^[0-9]+$", str(retention)):
            problems.append("%s is %r: expected a number of snapshots (0: K3S's default, 5)."
                            % (name("etcd_snapshot_retention"), retention))
        elif int(retention) > 0:
            config["etcd-snapshot-retention"] = int(retention)

    enabled = flag("etcd_s3")
    insecure, skip_verify = flag("etcd_s3_insecure"), flag("etcd_s3_skip_ssl_verify")
    access, secret = text("etcd_s3_access_key"), text("etcd_s3_secret_key")
    credentials = ""
    if not enabled:
        return {"config": config, "credentials": "", "problems": problems}

    bucket, endpoint, folder = text("etcd_s3_bucket"), text("etcd_s3_endpoint"), text("etcd_s3_folder")
    region, ca_file = text("etcd_s3_region"), text("etcd_s3_endpoint_ca")
    if not bucket:
        problems.append("%s is empty: %s needs the bucket the snapshots go to." % (name("etcd_s3_bucket"), name("etcd_s3")))
    elif not BUCKET.match(bucket) or ".." in bucket:
        problems.append("%s %r is not an S3 bucket name (3-63 lower-case letters, digits, dots and dashes)."
                        % (name("etcd_s3_bucket"), bucket))
    if endpoint and not ENDPOINT.match(endpoint):
        problems.append("%s %r must be host[:port] without a scheme or path (K3S's etcd-s3-endpoint); use %s "
                        "for plain HTTP." % (name("etcd_s3_endpoint"), endpoint, name("etcd_s3_insecure")))
    if folder and (re.search(r"\s", folder) or ".." in folder.split("/")):
        problems.append("%s %r: no spaces and no '..'." % (name("etcd_s3_folder"), folder))
    if region and not re.match(r"^[a-z0-9-]+$", region):
        problems.append("%s %r is not a region name such as us-east-1." % (name("etcd_s3_region"), region))
    if insecure and (skip_verify or ca_file):
        problems.append("%s (plain HTTP) leaves no TLS to verify: drop %s." % (
            name("etcd_s3_insecure"), name("etcd_s3_skip_ssl_verify") if skip_verify else name("etcd_s3_endpoint_ca")))
    elif skip_verify and ca_file:
        problems.append("%s and %s together make no sense (K3S ignores the CA when it does not verify): keep one."
                        % (name("etcd_s3_skip_ssl_verify"), name("etcd_s3_endpoint_ca")))
    if ca_file and not os.path.isfile(ca_file):
        problems.append("%s %s is not a file on the controller." % (name("etcd_s3_endpoint_ca"), ca_file))
    if bool(access) != bool(secret):
        problems.append("%s and %s go together (or leave both empty for the server's IAM role)."
                        % (name("etcd_s3_access_key"), name("etcd_s3_secret_key")))
    elif PLACEHOLDER.search(access) or PLACEHOLDER.search(secret):
        problems.append("%s or %s is still the CHANGE-ME placeholder: set it in vault.yml."
                        % (name("etcd_s3_access_key"), name("etcd_s3_secret_key")))
    elif access and (re.search(r"[\s\[\]]", access + secret)):
        problems.append("%s and %s must not contain spaces or brackets." % (name("etcd_s3_access_key"), name("etcd_s3_secret_key")))
    elif access:
        credentials = "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (access, secret)

    config["etcd-s3"] = True
    config["etcd-s3-bucket"] = bucket
    for key, value in (("etcd-s3-endpoint", endpoint), ("etcd-s3-folder", folder), ("etcd-s3-region", region)):
        if value:
            config[key] = value
    if ca_file:
        config["etcd-s3-endpoint-ca"] = CA_PATH
    if insecure:
        config["etcd-s3-insecure"] = True
    if skip_verify:
        config["etcd-s3-skip-ssl-verify"] = True
    return {"config": config, "credentials": credentials, "problems": problems}


class FilterModule:
    """K3S etcd snapshot filters."""

    def filters(self):
        return {"k3s_etcd_snapshot_options": k3s_etcd_snapshot_options}
