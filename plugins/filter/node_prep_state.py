# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What node_prep still has to change on a node, from one read of its state.

node_prep runs one command (roles/node_prep/vars/main.yml, node_prep__read_script) that prints, each
after a ``==> node_prep:<section> <==`` line: ``sysctl -e <keys>``, the names in /proc/modules, the
kernel's modules.builtin, ``dpkg-query`` status lines (apt hosts), the active swap devices,
/etc/fstab, ``<path> <mode> <owner> <group> <sha1>`` (or ``<path> absent``) for the files the role
writes, ``<unit> <is-enabled> <is-active>`` for the services it starts, and whether multipathd is
installed. Only what differs goes to the modules, so a re-run with nothing to change costs that one
read. The rules are the modules' own, and only a match that the module would also find skips it:
- community.general.modprobe (modprobe.py module_loaded): a module is present when /proc/modules
  lists it (dashes read as underscores) or modules.builtin has a path ending in /<name>.ko;
- ansible.posix.sysctl: a running value matches with its whitespace normalized;
- ansible.builtin.apt state=present: a package dpkg reports as ``installed``;
- ansible.builtin.template / copy: the file's SHA-1 equals the rendered content's, with the mode,
  owner and group asked for (plugin_utils/host_files.py);
- ansible.builtin.systemd_service enabled + started: ``is-enabled`` says ``enabled`` and
  ``is-active`` says ``active`` (anything else is left to the module);
- ansible.builtin.replace: the regular expression matches somewhere in /etc/fstab (multiline, as
  the module compiles it).
A read that failed, or a section it did not print, leaves everything to the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.dictamesh.k3s_gitops.plugins.plugin_utils.host_files import file_differs

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)

MARKER = re.compile(r"^==> node_prep:([a-z]+) <==$")
SECTIONS = ("sysctl", "modules", "builtin", "packages", "swap", "fstab", "files", "services", "multipathd")
WANTED = {"modules": (list, "list"), "sysctl": (dict, "dict"), "packages": (list, "list"), "files": (dict, "dict"),
          "services": (list, "list"), "fstab_regexp": (string_types, "string")}


def _words(value):
    if isinstance(value, bool):
        value = int(value)
    return " ".join(str(value).split())


def _sections(text):
    """{section: [lines]} of the sections the read printed."""
    sections = {}
    current = None
    for line in text.splitlines():
        found = MARKER.match(line.strip())
        if found and found.group(1) in SECTIONS:
            current = sections.setdefault(found.group(1), [])
        elif current is not None:
            current.append(line)
    return sections


def _check(wanted):
    if not isinstance(wanted, dict):
        raise AnsibleFilterError("node_prep_drift: expected a mapping of what is wanted, got %s" % type(wanted).__name__)
    for key, (kind, name) in WANTED.items():
        if key in wanted and not isinstance(wanted[key], kind):
            raise AnsibleFilterError("node_prep_drift: %s must be a %s, got %s" % (key, name, type(wanted[key]).__name__))


def _everything(wanted):
    return {"modules": list(wanted.get("modules", [])), "sysctl": dict(wanted.get("sysctl", {})),
            "packages": list(wanted.get("packages", [])), "files": sorted(wanted.get("files", {})),
            "services": list(wanted.get("services", [])), "swap_active": True, "fstab_swap": True, "multipathd": True,
            "installed": []}


def _file_differs(line, spec):
    """line: '<path> <mode> <owner> <group> <sha1>' or '<path> absent'; spec: content, mode, owner, group."""
    fields = (line or "").split()
    found = dict(zip(("type", "mode", "owner", "group", "digest"), ["file"] + fields[1:])) if len(fields) == 5 else {
        "type": fields[1] if fields[1:] == ["absent"] else "unknown"}
    return file_differs(found, dict({"content": ""}, **spec))


def node_prep_drift(read, wanted):
    """What differs, from the registered read and ``wanted`` (modules, sysctl, packages, files
    {path: {content, mode, owner, group}}, services, fstab_regexp): modules, sysctl, packages, files,
    services, swap_active, fstab_swap, multipathd, and installed (every package found installed)."""
    _check(wanted)
    if not isinstance(read, dict) or read.get("rc") != 0 or not isinstance(read.get("stdout"), string_types):
        return _everything(wanted)
    sections = _sections(read["stdout"])
    everything = _everything(wanted)
    drift = {}

    if "sysctl" in sections:
        running = {}
        for line in sections["sysctl"]:
            key, sep, value = line.partition("=")
            if sep:
                running[key.strip()] = _words(value)
        drift["sysctl"] = {key: value for key, value in everything["sysctl"].items() if running.get(key) != _words(value)}
    if "modules" in sections and "builtin" in sections:
        loaded = {line.split()[0] for line in sections["modules"] if line.split()}
        builtin = [line.strip() for line in sections["builtin"] if line.strip()]
        drift["modules"] = [name for name in everything["modules"]
                            if str(name).replace("-", "_") not in loaded
                            and not any(path.endswith("/%s.ko" % name) for path in builtin)]
    if "packages" in sections:
        installed = {line.split()[0] for line in sections["packages"] if line.split()[1:] == ["installed"]}
        drift["packages"] = [name for name in everything["packages"] if name not in installed]
        drift["installed"] = sorted(installed)
    if "swap" in sections:
        drift["swap_active"] = any(line.strip() for line in sections["swap"])
    if "fstab" in sections:
        regexp = re.compile(wanted.get("fstab_regexp") or r"(?!)", re.MULTILINE)
        drift["fstab_swap"] = bool(regexp.search("\n".join(sections["fstab"])))
    if "files" in sections:
        seen = {line.split()[0]: line for line in sections["files"] if line.split()}
        drift["files"] = sorted(path for path, spec in wanted.get("files", {}).items() if _file_differs(seen.get(path), spec))
    if "services" in sections:
        state = {line.split()[0]: line.split()[1:] for line in sections["services"] if line.split()}
        drift["services"] = [name for name in everything["services"] if state.get(name) != ["enabled", "active"]]
    if "multipathd" in sections:
        drift["multipathd"] = any(line.strip() == "present" for line in sections["multipathd"])
    return dict(everything, **drift)


class FilterModule:
    """node_prep's state filters."""

    def filters(self):
        return {"node_prep_drift": node_prep_drift}
