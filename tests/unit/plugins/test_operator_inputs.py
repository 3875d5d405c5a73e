"""Generated from meta/operator_inputs.yml: every declared variable refuses wrong-type and wrong-format values.

For each variable of each section (and each key of the list-of-dict items), bad values are derived
from its declaration: another type than the declared one, a value outside the choices or bounds,
and a string of the wrong format (one table of bad strings per format). Each must be refused by
the filter the playbooks run in their first play (plugins/filter/operator_inputs.py), with a
message that names the variable and shows the bad value (a no_log value is never shown). The
sample inventories and the molecule scenarios' variables must pass, and every operator variable
the inventories and playbooks use must be declared. The end-to-end proof that the playbooks run
this check before any change is tests/reliability/test_declared_inputs.py.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "plugins" / "filter"))

from operator_inputs import (  # noqa: E402
    inventory_problems, load_spec, operator_input_problems, shown)

SPEC = load_spec()
# Strings of the wrong format, per declared format. Each must be refused.
BAD_FORMATS: Dict[str, List[str]] = {
    "k8s_name": ["Upper_Case", "-leading-dash", "has space", "a" * 254],
    "dns_name": ["Argo CD!", "under_score.example.com", "-x.example.com"],
    "host": ["https://api.example.com:6443", "api.example.com:6443", "api example"],
    "host_port": ["https://s3.example.com", "s3.example.com:99999", "s3 example"],
    "ip": ["300.1.1.1", "node-1", "10.0.0.1/24"],
    "url": ["github.com/k3s-io/k3s", "ftp://example.com/x", "https://user:pw@example.com/x", "https://"],
    "repo_url": ["github.com/org/repo.git", "https://user:secret@github.com/org/repo.git", "ftp://x/y"],
    "url_path": ["argocd", "no/leading/slash"],
    "k3s_version": ["v1.34.1", "latest", "1.34.1+k3s1"],
    "semver": ["latest", "v1.2.3", "1.2"],
    "vsemver": ["1.2.3", "latest", "v1.2"],
    "abs_path": ["relative/dir", "~/bin"],
    "path": ["   ", "a\nb"],
    "relative_path": ["/absolute", "../outside", "a/../../b"],
    "email": ["platform-at-example", "a@b", "two@@example.com"],
    "cron": ["0 * * *", "61 * * * *", "every day"],
    "serial": ["0", "0%", "101%", "fast"],
}
# Another value of each type, for the wrong-type cases.
OTHER_TYPES: Dict[str, Any] = {"str": "a-string", "int": 12345, "bool": True, "list": ["item"],
                               "dict": {"key": "value"}, "float": 1.5}


def options() -> Iterator[Tuple[str, str, Dict[str, Any], bool]]:
    """(section, variable, declaration, extra_vars) for every declared variable and item key."""
    for section, body in SPEC.items():
        extra = body.get("extra_vars", False)
        for name, option in body["options"].items():
            yield section, name, option, extra
            for key, sub in (option.get("options") or {}).items():
                yield section, "%s[0].%s" % (name, key), sub, False


def wrong_types(option: Dict[str, Any], extra: bool) -> List[Any]:
    kind = option.get("type", "str")
    if kind == "raw":
        return []
    bad = [v for k, v in OTHER_TYPES.items() if k != kind and not (kind == "int" and k == "bool")]
    if kind == "int":
        bad += [True, "5m", "300s"]
    if kind == "bool" and not extra:
        bad += ["no", "yes", "true", "False"]  # quoted booleans are strings in an inventory
    if kind == "bool" and extra:
        bad += ["maybe", "2"]
    if kind == "list" and extra:  # -e a,b is a list there: only non-strings are wrong
        bad = [v for v in bad if not isinstance(v, str)]
    if kind == "str" and extra:
        bad = [v for v in bad if not isinstance(v, (list, dict))] + [["a"]]
    if kind == "list":
        bad = [v for v in bad if not isinstance(v, list)]
    return bad


def wrong_values(option: Dict[str, Any], extra: bool) -> List[Any]:
    bad = list(wrong_types(option, extra))
    kind = option.get("type", "str")
    if "choices" in option:
        bad.append("zz-not-a-choice" if kind != "list" else ["zz-not-a-choice"])
    if kind == "int" and "min" in option:
        bad.append(option["min"] - 1)
    if kind == "int" and "max" in option:
        bad.append(option["max"] + 1)
    fmt = option.get("format")
    if fmt:
        strings = BAD_FORMATS[fmt]
        bad += [[s] for s in strings] if kind == "list" else strings
    if kind == "list" and option.get("elements") and option["elements"] != "raw" and not option.get("options"):
        bad.append([OTHER_TYPES["int"] if option["elements"] != "int" else "x"])
    if option.get("required") and kind in ("str", "list", "dict"):
        bad.append({"str": "", "list": [], "dict": {}}[kind])
    return bad


def cases() -> List[Any]:
    out = []
    for section, name, option, extra in options():
        for index, value in enumerate(wrong_values(option, extra)):
            out.append(pytest.param(section, name, option, value, id="%s-%d" % (name, index)))
    return out


CASES = cases()


def problems_for(section: str, name: str, value: Any) -> List[str]:
    if "[0]." in name:
        top, key = name.split("[0].")
        item = valid_item(section, top)
        item[key] = value
        return operator_input_problems({top: [item]}, [section], SPEC)
    return operator_input_problems({name: value}, [section], SPEC)


def valid_item(section: str, top: str) -> Dict[str, Any]:
    """A valid item of a list-of-dict variable, from the staging sample."""
    sample = staging_values()[top][0]
    return dict(sample)


def group_vars_files(env: str) -> List[Path]:
    """An inventory's group_vars/all files in Ansible's order: the shared base (_common) first."""
    group_vars = REPO / "inventories" / env / "group_vars" / "all"
    return sorted(group_vars.glob("_common/*.yml")) + sorted(group_vars.glob("*.yml"))


def staging_values() -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    for path in group_vars_files("staging"):
        values.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return values


@pytest.mark.parametrize("section, name, option, value", CASES)
def test_declared_variable_refuses_wrong_values(section: str, name: str, option: Dict[str, Any], value: Any) -> None:
    problems = problems_for(section, name, value)
    assert problems, "%s accepted %r" % (name, value)
    message = " ".join(problems)
    assert name in message, message
    if option.get("no_log"):
        assert "(value not shown)" in message or "not set" in message or "empty" in message, message
        if isinstance(value, str) and len(value) > 3:
            assert value not in message, message
    elif value not in ("", [], {}):
        # a bad item of a list is shown as the item, under the name with its index
        assert shown(value) in message or isinstance(value, list) and shown(value[0]) in message, message


def test_generated_cases_cover_every_declared_variable() -> None:
    declared = {name for _s, name, _o, _e in options()}
    covered = {p.values[1] for p in CASES}
    assert declared - covered == {"platform_longhorn_storage_classes[0].parameters"} or declared == covered, \
        declared - covered
    assert len(CASES) >= 3 * len(declared)


def test_required_variables_refused_when_missing() -> None:
    for section, body in SPEC.items():
        for name, option in body["options"].items():
            if option.get("required"):
                message = " ".join(operator_input_problems({}, [section], SPEC))
                assert name in message and "not set" in message, (section, name, message)


def test_no_log_values_never_shown() -> None:
    secret = "s3cr3t-Value-123"
    for section, name, option, _extra in options():
        if option.get("no_log") and "[0]." not in name:
            for value in (12345, [secret], {"k": secret}):
                message = " ".join(operator_input_problems({name: value}, [section], SPEC))
                assert name in message and secret not in message and "12345" not in message, message


def sample_values(paths: List[Path]) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    for path in paths:
        values.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    # Jinja templates are resolved by Ansible at run time; the end-to-end runs check those.
    return {k: v for k, v in values.items() if not (isinstance(v, str) and "{{" in v)}


@pytest.mark.parametrize("env", ["staging", "prod", "lab"])
def test_sample_inventories_pass(env: str) -> None:
    values = sample_values(group_vars_files(env))
    values.update({"cluster_token": "x" * 32})
    assert operator_input_problems(values, ["cluster", "platform", "gitops", "argocd_connection"], SPEC) == []


def molecule_group_vars() -> List[Tuple[str, Dict[str, Any]]]:
    out = []
    for path in sorted((REPO / "molecule").glob("*/molecule.yml")):
        text = re.sub(r"\$\{[A-Z_]+\}", "/tmp/x", path.read_text(encoding="utf-8"))
        data = yaml.safe_load(text) or {}
        inventory = (data.get("provisioner") or {}).get("inventory") or {}
        for group, values in (inventory.get("group_vars") or {}).items():
            out.append(("%s:%s" % (path.parent.name, group), values or {}))
    return out


@pytest.mark.parametrize("where, values", molecule_group_vars())
def test_molecule_scenario_inputs_pass(where: str, values: Dict[str, Any]) -> None:
    values = {k: v for k, v in values.items() if not (isinstance(v, str) and "{{" in v)}
    assert operator_input_problems(values, ["cluster", "platform", "gitops", "argocd_connection"], SPEC) == [], where


OPERATOR = re.compile(r"^(cluster|platform|gitops|backup|restore|sync|rollback|reset)_[a-z0-9_]+$|"
                      r"^(node_ip|node_name|remove_node|confirm|upgrade_agent_serial)$")
INTERNAL = {"backup_list", "sync_summary", "sync_status", "gitops_bootstrap_result"}


def test_every_operator_variable_is_declared() -> None:
    """The inventories' variables (set or shown commented out) and what the playbooks read with a
    default are all declared."""
    declared = {name for body in SPEC.values() for name in body["options"]}
    used = set()
    inventories = REPO / "inventories"
    for path in list(inventories.glob("*/group_vars/all/*.yml")) + list(inventories.glob("common/*.yml")):
        used |= set(re.findall(r"^#?\s?([a-z][a-z0-9_]*):", path.read_text(encoding="utf-8"), re.M))
    for path in list((REPO / "playbooks").glob("*.yml")) + list((REPO / "playbooks" / "tasks").glob("*.yml")):
        used |= set(re.findall(r"\b([a-z][a-z0-9_]*)\s*\|\s*default\(", path.read_text(encoding="utf-8")))
    missing = sorted(n for n in used if OPERATOR.match(n) and n not in declared and n not in INTERNAL)
    assert missing == []


# ---------------------------------------------------------------- the inventory's shape

def shape(servers: List[str], agents: List[str], hostvars: Dict[str, Dict[str, Any]],
          config: Any = None) -> List[str]:
    groups = {"k3s_servers": servers, "k3s_agents": agents,
              "k3s_cluster": list(dict.fromkeys(servers + agents))}
    return inventory_problems(groups, {h: hostvars.get(h, {}) for h in groups["k3s_cluster"]}, config or {})


def test_valid_inventory_and_empty_agents_pass() -> None:
    assert shape(["s1", "s2", "s3"], ["a1"], {"s1": {"node_ip": "192.0.2.1"}, "s2": {"node_ip": "192.0.2.2"}}) == []
    assert shape(["s1"], [], {"s1": {"node_ip": "192.0.2.1"}}) == []


def test_host_in_both_groups_refused() -> None:
    message = " ".join(shape(["s1"], ["s1", "a1"], {}))
    assert "k3s_servers and k3s_agents both list s1" in message


def test_duplicate_node_names_and_ips_refused() -> None:
    message = " ".join(shape(["s1"], ["a1", "a2"], {"a1": {"node_name": "worker", "node_ip": "192.0.2.9"},
                                                    "a2": {"node_name": "Worker", "node_ip": "192.0.2.9"}}))
    assert 'node_name "worker" is used by a1, a2' in message
    assert 'node_ip "192.0.2.9" is used by a1, a2' in message


def test_host_variables_typed() -> None:
    message = " ".join(shape(["s1"], ["a1"], {"s1": {"node_ip": "https://10.0.0.1"}, "a1": {"node_name": ["a"]}}))
    assert 's1: node_ip is "https://10.0.0.1"' in message and 'a1: node_name is ["a"]' in message


def test_overlapping_cluster_networks_refused() -> None:
    message = " ".join(shape(["s1"], [], {"s1": {"node_ip": "10.43.0.5"}},
                             {"cluster-cidr": "10.0.0.0/8", "service-cidr": "10.43.0.0/16"}))
    assert "cluster-cidr 10.0.0.0/8 and service-cidr 10.43.0.0/16 overlap" in message
    assert 'node_ip "10.43.0.5" of s1 is inside the cluster network' in message
    assert "service-cidr" in " ".join(shape(["s1"], [], {}, {"service-cidr": "10.43.0.0/33"}))
    separate = {"cluster-cidr": "10.52.0.0/16", "service-cidr": "10.53.0.0/16"}
    assert shape(["s1"], [], {"s1": {"node_ip": "192.0.2.1"}}, separate) == []


def test_every_role_variable_has_a_declared_type() -> None:
    """Where the operator's variables reach a role (renamed), the role's argument_specs declare every
    default with a type, and every list with its elements."""
    problems = []
    for path in sorted((REPO / "roles").glob("*/meta/argument_specs.yml")):
        specs = yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"]
        declared: Dict[str, Any] = {}
        for entry in specs.values():
            declared.update(entry.get("options") or {})
        defaults_path = path.parent.parent / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_path.read_text(encoding="utf-8")) or {} if defaults_path.exists() else {}
        problems += ["%s: %s has a default but no declaration" % (path, n) for n in defaults if n not in declared]
        problems += ["%s: %s has no type" % (path, n) for n, o in declared.items() if "type" not in o]
        problems += ["%s: %s is a list without elements" % (path, n) for n, o in declared.items()
                     if o.get("type") == "list" and "elements" not in o]
    assert problems == []


# ---------------------------------------------------------------- Argo CD object specs

def crd_spec(name: str) -> Dict[str, Any]:
    crd = yaml.safe_load((REPO / "tests" / "schemas" / name).read_text(encoding="utf-8"))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_argocd_field_lists_are_the_crds() -> None:
    from operator_inputs import (  # pylint: disable=import-outside-toplevel
        APPLICATION_SPEC, APPPROJECT_SPEC, DESTINATION, SYNC_WINDOW)
    project, application = crd_spec("appproject-crd.yaml"), crd_spec("application-crd.yaml")
    assert sorted(project["properties"]) == sorted(APPPROJECT_SPEC)
    assert sorted(project["properties"]["destinations"]["items"]["properties"]) == sorted(DESTINATION)
    assert sorted(project["properties"]["syncWindows"]["items"]["properties"]) == sorted(SYNC_WINDOW)
    assert sorted(application["properties"]) == sorted(APPLICATION_SPEC)
    assert sorted(application["properties"]["destination"]["properties"]) == sorted(DESTINATION)


def test_role_default_specs_pass() -> None:
    from operator_inputs import argocd_spec_problems  # pylint: disable=import-outside-toplevel
    defaults = yaml.safe_load((REPO / "roles" / "gitops_bootstrap" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert argocd_spec_problems(defaults["gitops_bootstrap_project"], "AppProject", "gitops_bootstrap_project") == []
    assert argocd_spec_problems(defaults["gitops_bootstrap_app_spec"], "Application", "gitops_bootstrap_app_spec") == []


@pytest.mark.parametrize("kind, spec, expected", [
    ("AppProject", {"destinations": [{"namespace": "x"}]}, "gitops_bootstrap_project.destinations[0] has neither server"),
    ("AppProject", {"syncWindows": [{"kind": "allow", "schedule": "0 9 * *", "duration": "1h"}]},
     'syncWindows[0].schedule is "0 9 * *"'),
    ("AppProject", {"syncWindows": [{"kind": "maybe", "schedule": "* * * * *", "duration": "1h"}]},
     'syncWindows[0].kind is "maybe"'),
    ("AppProject", {"syncWindows": [{"kind": "deny", "schedule": "* * * * *", "duration": "one hour"}]},
     'syncWindows[0].duration is "one hour"'),
    ("AppProject", {"sourceRepo": ["x"]}, 'unknown field "sourceRepo"'),
    ("AppProject", {"sourceRepos": "https://x"}, "sourceRepos is"),
    ("AppProject", "not a mapping", "expected a mapping"),
    ("Application", {"project": "p", "destination": {"namespace": "argocd"}}, "destination has neither server"),
    ("Application", {"project": "p", "destination": {"server": "s"}, "syncpolicy": {}}, 'unknown field "syncpolicy"'),
])
def test_argocd_specs_refused(kind: str, spec: Any, expected: str) -> None:
    from operator_inputs import argocd_spec_problems  # pylint: disable=import-outside-toplevel
    name = "gitops_bootstrap_project" if kind == "AppProject" else "gitops_bootstrap_app_spec"
    message = " ".join(argocd_spec_problems(spec, kind, name))
    assert expected in message and name in message, message
