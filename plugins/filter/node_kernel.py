# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which kernel modules and parameters a node still needs, from one read of its running state.

node_prep reads, in one command, `sysctl -e <keys>` (`key = value` lines; -e skips unknown keys),
the names in /proc/modules and the kernel's modules.builtin, separated by `#modules` and `#builtin`
lines. Only what differs goes to community.general.modprobe and ansible.posix.sysctl, so a re-run
that has nothing to change costs that one read instead of one module run per module and parameter.
The rules are those of the two modules: a module counts as present when /proc/modules lists it
(dashes read as underscores) or modules.builtin has a path ending in /<name>.ko
(community.general modprobe.py module_loaded); a parameter matches when its running value has the
same whitespace-separated words as the wanted one (ansible.posix sysctl.py compares values with
their whitespace normalized). A read that failed, or a key the read did not show, leaves the item to
the module, which then says what is wrong.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)


def _words(value):
    if isinstance(value, bool):
        value = int(value)
    return " ".join(str(value).split())


def _sections(text):
    sections = {"sysctl": [], "modules": [], "builtin": []}
    current = "sysctl"
    for line in text.splitlines():
        if line.strip() in ("#modules", "#builtin"):
            current = line.strip()[1:]
            continue
        sections[current].append(line)
    return sections


def node_kernel_drift(read, modules, sysctl):
    """{'modules': [names to load], 'sysctl': {key: value to set}} from the registered read."""
    if not isinstance(modules, (list, tuple)) or not isinstance(sysctl, dict):
        raise AnsibleFilterError("node_kernel_drift: expected a list of modules and a mapping of parameters, got %s and %s"
                                 % (type(modules).__name__, type(sysctl).__name__))
    if not isinstance(read, dict) or read.get("rc") != 0 or not isinstance(read.get("stdout"), string_types):
        return {"modules": list(modules), "sysctl": dict(sysctl)}
    sections = _sections(read["stdout"])
    running = {}
    for line in sections["sysctl"]:
        key, sep, value = line.partition("=")
        if sep:
            running[key.strip()] = _words(value)
    loaded = {line.split()[0] for line in sections["modules"] if line.split()}
    builtin = [line.strip() for line in sections["builtin"] if line.strip()]
    missing = [name for name in modules
               if str(name).replace("-", "_") not in loaded
               and not any(path.endswith("/%s.ko" % name) for path in builtin)]
    differ = {key: value for key, value in sysctl.items() if running.get(key) != _words(value)}
    return {"modules": missing, "sysctl": differ}


class FilterModule:
    """Node kernel state filters."""

    def filters(self):
        return {"node_kernel_drift": node_kernel_drift}
