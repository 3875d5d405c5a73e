# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One read of the files and services a role manages on a host, and what of them still differs.

``host_state_script(wanted)`` is the shell script of the read (run with ``sh -c``; it prints paths'
attributes and digests, never a file's content); ``host_state_drift(read, wanted)`` compares its
registered result with ``wanted`` ({files: {path: spec}, services: [unit]}) by the modules' own rules
(plugin_utils/host_files.py for files; a service is done when ``systemctl is-enabled`` says
``enabled`` and ``is-active`` says ``active``, as ansible.builtin.systemd_service enabled + started
would leave it). The tasks then run only for what differs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

try:
    from shlex import quote
except ImportError:  # pragma: no cover
    from pipes import quote  # pylint: disable=deprecated-module

from ansible.errors import AnsibleFilterError
from ansible_collections.dictamesh.k3s_gitops.plugins.plugin_utils.host_files import file_differs, spec_kind

READ_FUNCTION = """\
read_path() {
  if [ -L "$2" ]; then echo "$1 other"
  elif [ -d "$2" ]; then echo "$1 directory $(stat -c '%a %U %G %Y' "$2")"
  elif [ -f "$2" ] && [ "$3" = - ]; then echo "$1 file $(stat -c '%a %U %G %Y' "$2") -"
  elif [ -f "$2" ]; then echo "$1 file $(stat -c '%a %U %G %Y' "$2") $("$3" < "$2" | cut -d' ' -f1)"
  elif [ -e "$2" ]; then echo "$1 other"
  else echo "$1 absent"
  fi
}
"""
FIELDS = {"file": ("mode", "owner", "group", "mtime", "digest"), "directory": ("mode", "owner", "group", "mtime")}
SUM_COMMANDS = {"content": "sha1sum", "sha256": "sha256sum"}


def _checked(wanted, name):
    if not isinstance(wanted, dict):
        raise AnsibleFilterError("%s: expected a mapping {files, services}, got %s" % (name, type(wanted).__name__))
    files = wanted.get("files", {})
    services = wanted.get("services", [])
    if not isinstance(files, dict) or not isinstance(services, list):
        raise AnsibleFilterError("%s: files must be a mapping of path to spec and services a list" % name)
    for path, spec in files.items():
        if spec_kind(spec) is None:
            raise AnsibleFilterError(
                "%s: %s needs state directory or absent, or content or sha256 (got %s)"
                % (name, path, sorted(spec) if isinstance(spec, dict) else type(spec).__name__))
    return sorted(files), files, [str(unit) for unit in services]


def host_state_script(wanted):
    """The read's shell script: one line per path (f<index>, sorted paths) and per unit (s<index>)."""
    paths, files, services = _checked(wanted, "host_state_script")
    lines = [READ_FUNCTION]
    for index, path in enumerate(paths):
        lines.append("read_path f%d %s %s" % (index, quote(path), SUM_COMMANDS.get(spec_kind(files[path]), "-")))
    for index, unit in enumerate(services):
        lines.append('echo "s%d $(systemctl is-enabled %s 2>/dev/null) $(systemctl is-active %s 2>/dev/null)"'
                     % (index, quote(unit), quote(unit)))
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def _found(words):
    """A path's line (after its f<index>) as plugin_utils/host_files.py reads it; {} when malformed."""
    names = FIELDS.get(words[0] if words else "", ())
    if len(words) != len(names) + 1:
        return {"type": words[0]} if words in (["absent"], ["other"]) else {}
    return dict(zip(names, words[1:]), type=words[0])


def host_state_drift(read, wanted):
    """{files: [paths that differ], services: [units not enabled and active], mtime: {path: seconds since
    the epoch, or 'none' where the read found no file or directory}}; a failed read: all of them differ."""
    paths, files, services = _checked(wanted, "host_state_drift")
    seen = {}
    if isinstance(read, dict) and read.get("rc") == 0 and isinstance(read.get("stdout"), str):
        for line in read["stdout"].splitlines():
            words = line.split()
            if words:
                seen[words[0]] = words[1:]
    found = {path: _found(seen.get("f%d" % index, [])) for index, path in enumerate(paths)}
    return {
        "files": [path for path in paths if file_differs(found[path], files[path])],
        "services": [unit for index, unit in enumerate(services) if seen.get("s%d" % index) != ["enabled", "active"]],
        "mtime": {path: found[path].get("mtime", "none") for path in paths},
    }


class FilterModule:
    """One read of a role's files and services."""

    def filters(self):
        return {"host_state_script": host_state_script, "host_state_drift": host_state_drift}
