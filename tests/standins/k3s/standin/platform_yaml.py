"""A small YAML subset reader for the K3S stand-in (the VMs have no PyYAML).

Reads what Kubernetes manifests written by Ansible templates use: several documents,
block mappings and sequences (compact sequences under a key too), plain, single- and
double-quoted scalars, simple flow collections ({}, [a, b], {a: b}), literal and folded
block scalars with chomping indicators, and comments. Anything else raises YamlError,
which the stand-in reports like a parse error of the real thing.
"""

import json
import re

INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
FLOAT_RE = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")


class YamlError(ValueError):
    """The text is not YAML this reader understands."""


def load_documents(text):
    """All non-empty documents of `text`."""
    docs, current = [], []
    for line in text.splitlines():
        if line.rstrip() == "---" or line.startswith("--- "):
            docs.append(current)
            current = []
            if line.startswith("--- ") and line[4:].strip() and not line[4:].strip().startswith("#"):
                raise YamlError("content on a document marker line is not supported: %r" % line)
            continue
        if line.rstrip() == "...":
            continue
        current.append(line.replace("\t", "    ") if not line.strip() else line)
    docs.append(current)
    return [doc for doc in (_Parser(lines).parse() for lines in docs) if doc is not None]


def strip_comment(text):
    """`text` without a trailing comment (a # after a space, outside quotes)."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"" and (index == 0 or text[index - 1] in " [{,:"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text.rstrip()


def split_key(text):
    """(key, rest) of a `key: value` line, or None when `text` is not a mapping entry."""
    if text[:1] in "\"'":
        end = text.find(text[0], 1)
        if end < 0 or text[end + 1:end + 2] != ":" or text[end + 2:end + 3] not in ("", " "):
            return None
        return scalar(text[:end + 1]), text[end + 2:]
    if text[:1] in "[{|>&*!%@`":
        return None
    match = re.match(r"^([^#]*?):( |$)", text)
    if not match:
        return None
    return match.group(1).strip(), text[match.end():]


def scalar(text):
    """The value of a plain, quoted or flow scalar."""
    text = strip_comment(text).strip()
    if text[:1] in "[{":
        value, rest = _flow(text, 0)
        if text[rest:].strip():
            raise YamlError("unexpected text after a flow collection: %r" % text)
        return value
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError as exc:
            raise YamlError("bad double-quoted scalar %r: %s" % (text, exc)) from exc
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if text[:1] in "\"'":
        raise YamlError("unterminated quoted scalar %r" % text)
    if text[:1] in "&*!|>%@`":
        raise YamlError("unsupported YAML syntax %r" % text)
    return _plain(text)


def _plain(text):
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text in ("null", "Null", "NULL", "~", ""):
        return None
    if INT_RE.match(text):
        return int(text)
    if FLOAT_RE.match(text):
        return float(text)
    return text


def _flow(text, pos):
    """Parse a flow collection or scalar at text[pos:]; return (value, next position)."""
    while pos < len(text) and text[pos] == " ":
        pos += 1
    opener = text[pos:pos + 1]
    if opener in ("[", "{"):
        closer = "]" if opener == "[" else "}"
        items = [] if opener == "[" else {}
        pos += 1
        while True:
            while pos < len(text) and text[pos] in " ,":
                pos += 1
            if pos >= len(text):
                raise YamlError("unterminated flow collection %r" % text)
            if text[pos] == closer:
                return items, pos + 1
            if opener == "[":
                value, pos = _flow(text, pos)
                items.append(value)
            else:
                key, pos = _flow_scalar(text, pos, ":")
                if text[pos:pos + 1] != ":":
                    raise YamlError("flow mapping entry without ':' in %r" % text)
                value, pos = _flow(text, pos + 1)
                items[key] = value
    return _flow_scalar(text, pos, "")


def _flow_scalar(text, pos, stop):
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if text[pos:pos + 1] in ("'", '"'):
        end = pos + 1
        while end < len(text):
            if text[end] == "\\" and text[pos] == '"':
                end += 2
                continue
            if text[end] == text[pos]:
                if text[pos] == "'" and text[end + 1:end + 2] == "'":
                    end += 2
                    continue
                break
            end += 1
        return scalar(text[pos:end + 1]), end + 1
    end = pos
    while end < len(text) and text[end] not in ",]}" + stop:
        end += 1
    return _plain(text[pos:end].strip()), end


def _indent(line):
    return len(line) - len(line.lstrip(" "))


class _Parser:
    def __init__(self, lines):
        self.lines = list(lines)
        self.pos = 0

    def _skip(self):
        while self.pos < len(self.lines):
            stripped = self.lines[self.pos].strip()
            if stripped and not stripped.startswith("#"):
                return True
            self.pos += 1
        return False

    def parse(self):
        if not self._skip():
            return None
        value = self._node(_indent(self.lines[self.pos]))
        if self._skip():
            raise YamlError("unexpected indentation at line %r" % self.lines[self.pos])
        return value

    def _node(self, indent):
        content = self.lines[self.pos][indent:]
        if content == "-" or content.startswith("- "):
            return self._seq(indent)
        if split_key(content) is None:
            self.pos += 1
            return scalar(content)
        return self._map(indent)

    def _map(self, indent):
        result = {}
        while self._skip():
            line = self.lines[self.pos]
            current = _indent(line)
            if current < indent or (current == indent and (line[indent:] == "-" or line[indent:].startswith("- "))):
                break
            if current > indent:
                raise YamlError("bad indentation: %r" % line)
            entry = split_key(line[indent:])
            if entry is None:
                raise YamlError("expected a 'key: value' line: %r" % line)
            key, rest = entry
            if key in result:
                raise YamlError("duplicate key %r" % key)
            self.pos += 1
            result[key] = self._value(rest, indent, allow_compact=True)
        return result

    def _value(self, rest, indent, allow_compact):
        rest = strip_comment(rest).strip()
        if rest[:1] in ("|", ">"):
            return self._block_scalar(rest, indent)
        if rest:
            return scalar(rest)
        if not self._skip():
            return None
        line = self.lines[self.pos]
        current = _indent(line)
        if current > indent:
            return self._node(current)
        if allow_compact and current == indent and (line[indent:] == "-" or line[indent:].startswith("- ")):
            return self._seq(indent)
        return None

    def _seq(self, indent):
        result = []
        while self._skip():
            line = self.lines[self.pos]
            current = _indent(line)
            content = line[indent:]
            if current != indent or not (content == "-" or content.startswith("- ")):
                if current > indent:
                    raise YamlError("bad indentation: %r" % line)
                break
            text = content[1:].lstrip(" ")
            if not text or text.startswith("#"):
                self.pos += 1
                result.append(self._value("", indent, allow_compact=False))
                continue
            sub = indent + len(content) - len(text)
            if text.startswith("- ") or text == "-" or split_key(text) is not None:
                self.lines[self.pos] = " " * sub + text
                result.append(self._node(sub))
            else:
                self.pos += 1
                result.append(self._value(text, indent, allow_compact=False))
        return result

    def _block_scalar(self, header, indent):
        match = re.match(r"^([|>])([-+]?)$", header)
        if not match:
            raise YamlError("unsupported block scalar header %r" % header)
        style, chomp = match.groups()
        lines = []
        block_indent = None
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.strip():
                current = _indent(line)
                if current <= indent:
                    break
                if block_indent is None:
                    block_indent = current
                elif current < block_indent:
                    break
                lines.append(line[block_indent:])
            else:
                lines.append("")
            self.pos += 1
        trailing = 0
        while lines and lines[-1] == "":
            lines.pop()
            trailing += 1
        if style == "|":
            body = "\n".join(lines)
        else:
            body = _fold(lines)
        if not lines:
            return ""
        if chomp == "-":
            return body
        if chomp == "+":
            return body + "\n" * (trailing + 1)
        return body + "\n"


def _fold(lines):
    out = ""
    for index, line in enumerate(lines):
        if index == 0:
            out = line
        elif line == "" or line.startswith(" "):
            out += "\n" + line
        elif lines[index - 1] == "" or lines[index - 1].startswith(" "):
            out += line if lines[index - 1] == "" else "\n" + line
        else:
            out += " " + line
    return out
