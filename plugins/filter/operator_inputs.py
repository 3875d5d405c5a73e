# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's inputs checked against their declarations (meta/operator_inputs.yml), in one place.

Types are strict, on purpose: Ansible's own argument_spec converts "300" to 300, "no" to False
and "a,b" to a list, so a quoted boolean in an inventory silently becomes a string that is true
in Jinja (`"no"` is truthy) and a string where a list is meant becomes a list of one item. Here an
inventory value must already be of its type, with one allowance: a quoted whole number ("300")
counts as a number (it means the same everywhere; "5m" does not). Extra variables of the day-2
playbooks (-e key=value gives strings only) are read as a user means them: true/false/yes/no as a
bool, commas as a list. An inventory boolean given with -e must be JSON: -e '{"x": false}'.
Every message names the variable and the bad value (never the value of a no_log variable).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import ipaddress
import json
import os
import re

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)

try:
    from ansible_collections.dictamesh.k3s_gitops.plugins.filter.k3s_etcd_snapshot import cron_problem
except ImportError:  # pragma: no cover - unit tests import the file directly
    from k3s_etcd_snapshot import cron_problem  # pylint: disable=import-error

SPEC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "meta", "operator_inputs.yml")
LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
K8S_NAME = re.compile(r"^(?=.{1,253}$)%s(\.%s)*$" % (LABEL, LABEL))  # RFC 1123 subdomain (metadata.name)
DNS_NAME = re.compile(r"^(?=.{1,253}$)%s(\.%s)*$" % (LABEL, LABEL), re.IGNORECASE)
EXTRA_TRUE = ("true", "yes", "on", "1")
EXTRA_FALSE = ("false", "no", "off", "0")


def _is_url_with_credentials(text):
    match = re.match(r"^[a-z][a-z0-9+.-]*://([^/@]*)@", text, re.IGNORECASE)
    return bool(match and ":" in match.group(1))


def _host_problem(text):
    if "://" in text:
        return "a host name or IP address, not a URL (no scheme, port or path)"
    try:
        ipaddress.ip_address(text.strip("[]"))
        return ""
    except ValueError:
        pass
    return "" if DNS_NAME.match(text) else "a host name or IP address"


def _url_problem(text, schemes=("http", "https")):
    match = re.match(r"^([a-z][a-z0-9+.-]*)://([^/?#]*)(.*)$", text, re.IGNORECASE)
    if not match or match.group(1).lower() not in schemes:
        return "an %s URL" % " or ".join(s + "://" for s in schemes)
    authority = match.group(2)
    if "@" in authority:
        return "a URL without credentials (put them in the vault, not in the URL)"
    host = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
    if ":" in authority and not authority.endswith("]") and not authority.rsplit(":", 1)[1].isdigit():
        return "a URL with a numeric port"
    return "" if host and not _host_problem(host) else "a URL with a host name or IP address"


def _repo_url_problem(text):
    if re.match(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$", text):  # scp-like SSH: git@host:org/repo.git
        return ""
    if re.match(r"^ssh://", text, re.IGNORECASE):
        return "an SSH URL without a password" if _is_url_with_credentials(text) else ""
    return _url_problem(text)


def _serial_problem(value):
    text = str(value)
    if isinstance(value, bool):
        return "a positive number or a percentage such as 30%"
    if re.match(r"^[1-9][0-9]*$", text) or (re.match(r"^([1-9][0-9]?|100)%$", text)):
        return ""
    return "a positive number or a percentage such as 30%"


def _format_problem(fmt, text):
    """'' when the string `text` has the format `fmt`, else what was expected."""
    if fmt == "k8s_name":
        return "" if K8S_NAME.match(text) else "a Kubernetes name (lower-case letters, digits, '-' and '.', at most 253)"
    if fmt == "dns_name":
        return "" if DNS_NAME.match(text) else "a DNS name"
    if fmt == "host":
        return _host_problem(text)
    if fmt == "host_port":
        if "://" in text:
            return "host[:port] without a scheme"
        host, _sep, port = text.rpartition(":") if re.search(r":\d+$", text) and not text.endswith("]") else (text, "", "")
        return "" if not _host_problem(host) and (not port or 0 < int(port) < 65536) else "host[:port]"
    if fmt == "ip":
        try:
            ipaddress.ip_address(text)
            return ""
        except ValueError:
            return "an IP address"
    if fmt == "cidr":
        try:
            ipaddress.ip_network(text, strict=True)
            return ""
        except ValueError:
            return "a network in CIDR notation such as 10.42.0.0/16"
    if fmt == "url":
        return _url_problem(text)
    if fmt == "repo_url":
        return _repo_url_problem(text)
    if fmt == "url_path":
        return "" if text.startswith("/") and " " not in text else "a URL path starting with /"
    if fmt == "k3s_version":
        return "" if re.match(r"^v\d+\.\d+\.\d+\+k3s\d+$", text) else "a K3S release name such as v1.34.1+k3s1"
    if fmt == "semver":
        return "" if re.match(r"^\d+\.\d+\.\d+$", text) else "a pinned x.y.z version"
    if fmt == "vsemver":
        return "" if re.match(r"^v\d+\.\d+\.\d+$", text) else "a pinned vX.Y.Z version"
    if fmt == "abs_path":
        return "" if text.startswith("/") and "\0" not in text and "\n" not in text else "an absolute path"
    if fmt == "path":
        return "" if text.strip() and "\0" not in text and "\n" not in text else "a file path"
    if fmt == "relative_path":
        parts = text.split("/")
        if text.startswith("/") or ".." in parts or not text.strip() or "\n" in text:
            return "a path inside the repository (relative, no '..')"
        return ""
    if fmt == "email":
        return "" if re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", text) else "an e-mail address"
    if fmt == "cron":
        why = cron_problem(text)
        return "a cron spec (5 fields or a descriptor such as @daily): %s" % why if why else ""
    raise AnsibleFilterError("meta/operator_inputs.yml: unknown format %r" % fmt)


TYPE_WORDS = {"str": "a string", "int": "a whole number", "bool": "a boolean (true or false, unquoted)",
              "list": "a list", "dict": "a mapping", "raw": "a value"}


def _convert(value, kind, extra):
    """(ok, value): `value` as `kind`, strictly; -e strings converted the way a user means them."""
    if kind == "raw":
        return True, value
    if kind == "str":
        return isinstance(value, string_types), value
    if kind == "int":
        if isinstance(value, bool) or isinstance(value, float):
            return False, value
        if isinstance(value, int):
            return True, value
        if isinstance(value, string_types) and re.match(r"^-?[0-9]+$", value.strip()):
            return True, int(value)
        return False, value
    if kind == "bool":
        if isinstance(value, bool):
            return True, value
        if extra and isinstance(value, string_types) and value.strip().lower() in EXTRA_TRUE + EXTRA_FALSE:
            return True, value.strip().lower() in EXTRA_TRUE
        return False, value
    if kind == "list":
        if isinstance(value, (list, tuple)):
            return True, list(value)
        if extra and isinstance(value, string_types) and value.strip():
            return True, [v.strip() for v in value.split(",")]
        return False, value
    if kind == "dict":
        return isinstance(value, dict), value
    raise AnsibleFilterError("meta/operator_inputs.yml: unknown type %r" % kind)


def shown(value):
    """A short JSON rendering of a bad value for a message (a password in a URL is masked)."""
    if isinstance(value, string_types):
        value = re.sub(r"(://)[^/@\s]*@", r"\1***@", value)
    try:
        text = json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind_of(value):
    for kind, word in ((bool, "a boolean"), (int, "a number"), (float, "a number"), (string_types, "a string"),
                       (dict, "a mapping"), (list, "a list")):
        if isinstance(value, kind):
            return word
    return type(value).__name__


def check_value(name, value, option, extra=False):
    """The problems (messages) of one value against its declaration."""
    secret = option.get("no_log", False)
    got = "(value not shown)" if secret else shown(value)
    kind = option.get("type", "str")
    if value is None:
        return ["%s is empty (null): expected %s." % (name, TYPE_WORDS[kind])] if option.get("required") else []
    ok, value = _convert(value, kind, extra)
    if not ok:
        return ["%s is %s (%s): expected %s%s." % (name, got, _kind_of(value), TYPE_WORDS[kind],
                                                   "" if kind != "list" else " (YAML `[a, b]` or one `- item` per line)")]
    if option.get("required") and value in ("", [], {}):
        return ["%s is empty: it must be set." % name]
    problems = []
    if kind == "list":
        element = dict(option, type=option.get("elements", "raw"), required=False)
        for index, item in enumerate(value):
            problems += check_value("%s[%d]" % (name, index), item, element)
        return problems
    if kind == "dict" and option.get("options"):
        return problems + _check_options(name, value, option["options"])
    if kind == "int":
        if "min" in option and value < option["min"] or "max" in option and value > option["max"]:
            bounds = "at least %s" % option["min"] if "max" not in option else \
                "%s to %s" % (option.get("min", "any"), option["max"])
            problems.append("%s is %s: expected a whole number %s." % (name, got, bounds))
    if "choices" in option and not any(c == value and isinstance(c, bool) == isinstance(value, bool)
                                       for c in option["choices"]):
        problems.append("%s is %s: expected one of %s." % (name, got, ", ".join(shown(c) for c in option["choices"])))
    if option.get("format") and isinstance(value, string_types) and not (option.get("empty_ok") and value == ""):
        if option["format"] == "serial":
            why = _serial_problem(value)
        else:
            why = _format_problem(option["format"], value)
        if why:
            problems.append("%s is %s: expected %s." % (name, got, why))
    elif option.get("format") == "serial":
        why = _serial_problem(value)
        if why:
            problems.append("%s is %s: expected %s." % (name, got, why))
    return problems


def _check_options(name, value, options):
    problems = []
    for key in sorted(value, key=str):
        if key not in options:
            problems.append("%s has an unknown key %s: expected keys %s." % (name, shown(key), ", ".join(sorted(options))))
    for key, sub in options.items():
        if key in value:
            problems += check_value("%s.%s" % (name, key), value[key], sub)
        elif sub.get("required"):
            problems.append("%s has no %s: it is required." % (name, key))
    return problems


def _items(option):
    """Dict items of a list of dicts (the `options` of each element)."""
    return dict(option, type="dict", required=False)


def load_spec(path=None):
    import yaml  # pylint: disable=import-outside-toplevel
    with open(path or SPEC_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["sections"]


class _Missing:  # pylint: disable=too-few-public-methods
    pass


MISSING = _Missing()


def _lookup(values, name):
    """values[name], MISSING when undefined; a template that cannot be resolved counts as undefined
    (the checks of the secrets say which vault_* variable is missing)."""
    try:
        if name not in values:
            return MISSING
        value = values[name]
    except Exception:  # pylint: disable=broad-except
        return MISSING
    if type(value).__name__ in ("AnsibleUndefined", "StrictUndefined", "Undefined", "Marker", "UndefinedMarker"):
        return MISSING
    return value


def operator_input_problems(values, sections, spec=None):
    """The problems of the operator's variables in `values` (hostvars of a host, or a dict) against
    the declared `sections` of meta/operator_inputs.yml ('cluster', 'platform', ...). A list of
    messages; empty when every declared variable that is set has its type and format."""
    declared = spec if spec is not None else load_spec()
    if isinstance(sections, string_types):
        sections = [sections]
    problems = []
    for section in sections:
        if section not in declared:
            raise AnsibleFilterError("operator_input_problems: unknown section %r" % section)
        extra = declared[section].get("extra_vars", False)
        for name, option in declared[section]["options"].items():
            value = _lookup(values, name)
            if value is MISSING:
                if option.get("required"):
                    problems.append("%s is not set: it is required (%s)." % (name, declared[section]["description"]))
                continue
            if option.get("type") == "list" and option.get("elements") == "dict" and option.get("options"):
                ok, _v = _convert(value, "list", extra)
                if not ok:
                    problems += check_value(name, value, option, extra)
                    continue
                for index, item in enumerate(value):
                    problems += check_value("%s[%d]" % (name, index), item, _items(option))
                continue
            problems += check_value(name, value, option, extra)
    return problems


def _networks(config, problems, where):
    nets = {}
    for key in ("cluster-cidr", "service-cidr"):
        if key not in config:
            continue
        for part in str(config[key]).split(","):
            try:
                nets.setdefault(key, []).append(ipaddress.ip_network(part.strip(), strict=True))
            except ValueError:
                problems.append("%s %s is %s: expected a network in CIDR notation such as 10.42.0.0/16."
                                % (where, key, shown(config[key])))
    return nets


def inventory_problems(groups, hostvars, server_config=None):
    """The inventory's shape: node_ip and node_name of each host as declared, no host in both k3s_servers and k3s_agents, no two hosts with the same
    node name (node_name, else the inventory name) or the same node_ip, node_ip outside the
    cluster and service networks, and those two networks (cluster_server_config cluster-cidr and
    service-cidr; K3S's defaults 10.42.0.0/16 and 10.43.0.0/16) not overlapping. An empty
    k3s_agents group is fine."""
    problems = []
    servers = list(groups.get("k3s_servers", []) or [])
    spec = load_spec()
    for host in list(groups.get("k3s_cluster", []) or []):
        if host in hostvars:
            problems += ["%s: %s" % (host, p) for p in operator_input_problems(hostvars[host], ["hosts"], spec)]
    agents = list(groups.get("k3s_agents", []) or [])
    both = [h for h in servers if h in agents]
    if both:
        problems.append("k3s_servers and k3s_agents both list %s: a host is either a server or an agent "
                        "(a server also runs workloads)." % ", ".join(both))
    names, addresses = {}, {}
    for host in servers + [a for a in agents if a not in servers]:
        values = hostvars[host] if host in hostvars else {}
        name = _lookup(values, "node_name")
        name = str(name).lower() if name is not MISSING and isinstance(name, string_types) else host.lower()
        names.setdefault(name, []).append(host)
        address = _lookup(values, "node_ip")
        if address is not MISSING and isinstance(address, string_types) and address:
            addresses.setdefault(address, []).append(host)
    for name, hosts in sorted(names.items()):
        if len(hosts) > 1:
            problems.append("node_name %s is used by %s: each node needs its own name." % (shown(name), ", ".join(hosts)))
    for address, hosts in sorted(addresses.items()):
        if len(hosts) > 1:
            problems.append("node_ip %s is used by %s: each node needs its own address." % (shown(address), ", ".join(hosts)))
    config = server_config if isinstance(server_config, dict) else {}
    nets = _networks(config, problems, "cluster_server_config")
    defaults = {"cluster-cidr": [ipaddress.ip_network("10.42.0.0/16")],
                "service-cidr": [ipaddress.ip_network("10.43.0.0/16")]}
    pods, services = nets.get("cluster-cidr", defaults["cluster-cidr"]), nets.get("service-cidr", defaults["service-cidr"])
    for pod in pods:
        for service in services:
            if pod.version == service.version and pod.overlaps(service):
                problems.append("cluster_server_config cluster-cidr %s and service-cidr %s overlap: pods and "
                                "services need separate networks." % (pod, service))
    for address, hosts in sorted(addresses.items()):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        for net in pods + services:
            if ip.version == net.version and ip in net:
                problems.append("node_ip %s of %s is inside the cluster network %s (cluster-cidr/service-cidr): "
                                "choose node addresses outside it." % (shown(address), ", ".join(hosts), net))
    return problems


# The fields of the Argo CD 3.x CRDs (argoproj/argo-cd manifests/crds/appproject-crd.yaml and
# application-crd.yaml, spec.versions[0].schema.openAPIV3Schema.properties.spec; the copies in
# tests/schemas are compared with these lists by tests/unit/plugins/test_operator_inputs.py).
APPPROJECT_SPEC = ("clusterResourceBlacklist", "clusterResourceWhitelist", "description", "destinationServiceAccounts",
                   "destinations", "namespaceResourceBlacklist", "namespaceResourceWhitelist", "orphanedResources",
                   "permitOnlyProjectScopedClusters", "roles", "signatureKeys", "sourceIntegrity", "sourceNamespaces",
                   "sourceRepos", "syncWindows")
APPLICATION_SPEC = ("destination", "ignoreDifferences", "info", "project", "revisionHistoryLimit", "source",
                    "sourceHydrator", "sources", "syncPolicy")
DESTINATION = ("name", "namespace", "server")
SYNC_WINDOW = ("andOperator", "applications", "clusters", "description", "duration", "kind", "manualSync",
               "namespaces", "schedule", "syncOverrun", "timeZone")
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|\u00b5s|ms|s|m|h))+$")


def _unknown(where, value, known):
    return ["%s has an unknown field %s: Argo CD's CRD knows %s." % (where, shown(k), ", ".join(known))
            for k in sorted(value, key=str) if k not in known]


def _destination_problems(where, dest):
    if not isinstance(dest, dict):
        return ["%s is %s: expected a mapping with server or name, and namespace." % (where, shown(dest))]
    problems = _unknown(where, dest, DESTINATION)
    if not dest.get("server") and not dest.get("name"):
        problems.append("%s has neither server nor name: Argo CD refuses a destination without one." % where)
    problems += ["%s.%s is %s: expected a string." % (where, k, shown(dest[k]))
                 for k in DESTINATION if k in dest and not isinstance(dest[k], string_types)]
    return problems


def argocd_spec_problems(spec, kind, variable):
    """What Argo CD would refuse in an AppProject or Application `spec` (the value of `variable`), found
    before anything is written: fields unknown to the CRD, destinations without server or name, sync
    windows with another kind than allow/deny, a schedule that is not a 5-field cron spec or a duration
    that is not a Go duration (1h, 30m)."""
    if not isinstance(spec, dict):
        return ["%s is %s: expected a mapping (the %s's spec)." % (variable, shown(spec), kind)]
    if kind == "AppProject":
        problems = _unknown(variable, spec, APPPROJECT_SPEC)
        for key in ("sourceRepos", "sourceNamespaces"):
            if key in spec and not (isinstance(spec[key], list) and all(isinstance(v, string_types) for v in spec[key])):
                problems.append("%s.%s is %s: expected a list of strings." % (variable, key, shown(spec[key])))
        destinations = spec.get("destinations") or []
        if not isinstance(destinations, list):
            return problems + ["%s.destinations is %s: expected a list." % (variable, shown(destinations))]
        for index, dest in enumerate(destinations):
            problems += _destination_problems("%s.destinations[%d]" % (variable, index), dest)
        windows = spec.get("syncWindows") or []
        if not isinstance(windows, list):
            return problems + ["%s.syncWindows is %s: expected a list." % (variable, shown(windows))]
        for index, window in enumerate(windows):
            where = "%s.syncWindows[%d]" % (variable, index)
            if not isinstance(window, dict):
                problems.append("%s is %s: expected a mapping." % (where, shown(window)))
                continue
            problems += _unknown(where, window, SYNC_WINDOW)
            if window.get("kind") not in ("allow", "deny"):
                problems.append("%s.kind is %s: expected allow or deny." % (where, shown(window.get("kind"))))
            schedule = window.get("schedule")
            if not isinstance(schedule, string_types) or len(schedule.split()) != 5 or cron_problem(schedule):
                problems.append("%s.schedule is %s: expected a cron spec of 5 fields (minute hour day month weekday)."
                                % (where, shown(schedule)))
            duration = window.get("duration")
            if not isinstance(duration, string_types) or not GO_DURATION.match(duration):
                problems.append("%s.duration is %s: expected a duration such as 1h or 30m." % (where, shown(duration)))
        return problems
    if kind == "Application":
        problems = _unknown(variable, spec, APPLICATION_SPEC)
        problems += _destination_problems("%s.destination" % variable, spec.get("destination"))
        return problems
    raise AnsibleFilterError("argocd_spec_problems: kind must be AppProject or Application, not %r" % kind)


class FilterModule:  # pylint: disable=too-few-public-methods
    def filters(self):
        return {"operator_input_problems": operator_input_problems,
                "inventory_problems": inventory_problems,
                "argocd_spec_problems": argocd_spec_problems}
