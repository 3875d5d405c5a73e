# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules about K3S inputs, in one place: release names, the allowed upgrade step, the release
architecture of a host, and what is wrong with a cluster token.

K3S releases are named v<major>.<minor>.<patch>+k3s<n> (the tag of k3s-io/k3s, which is also what
`k3s --version` prints and the kubelet version a K3S node reports). Upgrades go one minor version at
a time and never back (docs.k3s.io, Upgrades; Kubernetes' version skew policy).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)

RELEASE = re.compile(r"v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)")
# machine names (uname -m, ansible_facts.architecture) -> the GOARCH suffix of release assets
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
PLACEHOLDER = re.compile(r"(?i)change[-_ ]?me")


def _parts(value):
    match = RELEASE.search(str(value or ""))
    return tuple(int(g) for g in match.groups()) if match else None


def k3s_version(value):
    """The K3S release name found in `value` ('k3s version v1.34.1+k3s1 (abc)', a kubelet version,
    or the name itself); '' when there is none. `x | k3s_version == x` says x is exactly a name."""
    match = RELEASE.search(str(value or ""))
    return match.group(0) if match else ""


def k3s_upgrade_problem(target, running, binary=""):
    """'' when upgrading a node to `target` is allowed, else why not (a phrase that follows the target).

    `running` is the version the node reports (its kubelet), `binary` the installed binary's
    (`k3s --version`); either may be unknown (''). The node's version is the older of the two. Allowed:
    the same major, the same or the next minor, not older than the node's version, and not older than
    what it runs unless that is the node's minor (a binary already put back by a rollback)."""
    wanted = _parts(target)
    if wanted is None:
        return "is not a K3S release name (such as v1.35.0+k3s1)"
    known = [v for v in (_parts(running), _parts(binary)) if v is not None]
    if not known:
        return ""
    current, now = min(known), _parts(running)
    if wanted < current:
        return "is older: downgrades are not supported (restore an etcd snapshot instead)"
    if wanted[0] != current[0] or wanted[1] - current[1] > 1:
        return ("skips a minor version: upgrade one minor at a time (e.g. to the latest v%d.%d patch first)"
                % (current[0], current[1] + 1))
    if now is not None and now[:2] != current[:2] and wanted < now:
        return ("is older than the running v%d.%d.%d+k3s%d: downgrades are not supported "
                "(restore an etcd snapshot instead)" % now)
    return ""


def release_arch(machine, override=""):
    """The release architecture (amd64, arm64) of a host: `override` when set, else the one of its
    machine name (ansible_facts.architecture: x86_64, aarch64); an unknown name is returned as is,
    for the caller's check to refuse."""
    if str(override or "").strip():
        return str(override).strip()
    machine = str(machine or "").strip()
    return ARCHES.get(machine, machine)


def k3s_token_problem(token):
    """'' for a usable cluster token, else what is wrong with it (the value is never returned)."""
    if token is None:
        return "undefined"
    if not isinstance(token, string_types):
        return "not a string"
    if not token.strip():
        return "empty"
    if PLACEHOLDER.search(token):
        return "still the CHANGE-ME placeholder"
    return ""


class FilterModule:
    """K3S input filters."""

    def filters(self):
        return {
            "k3s_token_problem": k3s_token_problem,
            "k3s_upgrade_problem": k3s_upgrade_problem,
            "k3s_version": k3s_version,
            "release_arch": release_arch,
        }
