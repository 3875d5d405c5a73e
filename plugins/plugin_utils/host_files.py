# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a file task would change a host's file, from what one shell read printed about it.

The rules are the modules' own, and a file counts as done only where the module would find nothing
to do (anything unexpected counts as a difference, which leaves the file to the module):
- ansible.builtin.copy / template with content: the file exists (not a directory or a link), its SHA-1
  is the content's, and its mode, owner and group are those asked for;
- ansible.builtin.get_url with a sha256 checksum: the same, with the file's SHA-256 (get_url does not
  download again when the destination has the checksum, then sets mode, owner and group);
- ansible.builtin.file state=directory: a directory with that mode, owner and group;
- ansible.builtin.file state=absent: nothing at the path.
The read's finding for a path is a dict: ``type`` (file, directory, other, absent) and, for a file or
a directory, ``mode`` (octal digits), ``owner``, ``group``, and for a file ``digest`` (SHA-1 for a
wanted content, SHA-256 for a wanted sha256).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)


def spec_kind(spec):
    """Which rule applies to a wanted file: content, sha256, directory or absent (None when unknown)."""
    if not isinstance(spec, dict):
        return None
    state = spec.get("state", "file")
    if state in ("directory", "absent"):
        return state
    if state == "file" and "content" in spec:
        return "content"
    if state == "file" and "sha256" in spec:
        return "sha256"
    return None


def _same_mode(found, wanted):
    try:
        return int(found, 8) == int(str(wanted), 8)
    except ValueError:
        return False


def _same_attributes(found, spec):
    return (_same_mode(str(found.get("mode", "")), spec.get("mode", "0644"))
            and found.get("owner") == spec.get("owner", "root") and found.get("group") == spec.get("group", "root"))


def file_differs(found, spec):
    """found: what the read found at the path (see the module docstring; None when it printed nothing);
    spec: what is wanted (state, content or sha256, mode, owner, group)."""
    kind = spec_kind(spec)
    found = found if isinstance(found, dict) else {}
    if kind == "absent":
        return found.get("type") != "absent"
    if kind == "directory":
        return not (found.get("type") == "directory" and _same_attributes(found, spec))
    if kind is None or found.get("type") != "file":
        return True
    if kind == "content":
        content = spec["content"]
        data = content.encode("utf-8") if isinstance(content, string_types) else content
        digest = hashlib.sha1(data).hexdigest()  # nosec B324 (the copy module's own comparison)
    else:
        digest = str(spec["sha256"]).lower()
    return not (_same_attributes(found, spec) and found.get("digest") == digest)
