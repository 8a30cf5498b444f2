"""Names in the stores: key, prefix and index templates, and the identifiers that fill them.

A template such as ``cc:{tenant}:agent:{agent}:`` is validated once, when the policy loads,
so that every name built from it is exact: each placeholder is followed by a delimiter that
its identifier can never contain, so tenant ``12`` can never match tenant ``123``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Mapping

#: Characters no identifier may contain: glob, SQL-LIKE and quoting metacharacters, the
#: delimiters used in templates, and white space.
FORBIDDEN_IDENTIFIER_CHARS = frozenset("*?[]{}\\%_'\";:/\0 \t\r\n,|&$#!^()<>=`~")

_DATE_DIRECTIVES = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}"}

ALL_CHARS = None  # marker: the pattern can match any character


class IdentifierError(ValueError):
    """An identifier (tenant or subject id) that must not reach a store."""


def _reachable_chars(parsed: object) -> set[str] | None:
    """The set of characters a parsed regex can consume, or None when it is unbounded."""
    chars: set[str] = set()
    for op, arg in parsed:  # type: ignore[attr-defined]
        name = str(op)
        if name == "LITERAL":
            chars.add(chr(arg))
        elif name in ("ANY", "NOT_LITERAL", "CATEGORY"):
            return ALL_CHARS
        elif name == "IN":
            for item_op, item_arg in arg:
                item = str(item_op)
                if item == "LITERAL":
                    chars.add(chr(item_arg))
                elif item == "RANGE":
                    lo, hi = item_arg
                    if hi - lo > 0x7F:
                        return ALL_CHARS
                    chars.update(chr(c) for c in range(lo, hi + 1))
                else:  # NEGATE, CATEGORY (\d, \w, \s): too wide to reason about
                    return ALL_CHARS
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            inner = _reachable_chars(arg[2])
            if inner is ALL_CHARS:
                return ALL_CHARS
            chars |= inner
        elif name == "SUBPATTERN":
            inner = _reachable_chars(arg[-1])
            if inner is ALL_CHARS:
                return ALL_CHARS
            chars |= inner
        elif name == "BRANCH":
            for branch in arg[1]:
                inner = _reachable_chars(branch)
                if inner is ALL_CHARS:
                    return ALL_CHARS
                chars |= inner
        elif name == "AT":
            continue
        else:
            return ALL_CHARS
    return chars


@dataclass(frozen=True)
class IdentifierFormat:
    """The allowed shape of one kind of identifier (tenant, agent, phone number)."""

    kind: str
    pattern: str

    def __post_init__(self) -> None:
        if not (self.pattern.startswith("^") and self.pattern.endswith("$")):
            raise ValueError(f"the {self.kind} pattern must be anchored with ^ and $")
        try:
            parsed = sre_parse.parse(self.pattern)
        except re.error as exc:
            raise ValueError(f"the {self.kind} pattern does not compile: {exc}") from exc
        reachable = _reachable_chars(parsed)
        if reachable is ALL_CHARS:
            raise ValueError(
                f"the {self.kind} pattern must list its characters explicitly "
                "(no '.', \\d, \\w or negated classes), so no metacharacter can slip in"
            )
        bad = sorted(reachable & FORBIDDEN_IDENTIFIER_CHARS)
        if bad:
            raise ValueError(f"the {self.kind} pattern admits metacharacters {''.join(bad)!r}")
        if any(ord(c) > 0x7E for c in reachable):
            raise ValueError(f"the {self.kind} pattern admits non-ASCII characters")

    @property
    def alphabet(self) -> frozenset[str]:
        chars = _reachable_chars(sre_parse.parse(self.pattern))
        assert chars is not None  # checked in __post_init__
        return frozenset(chars)

    @property
    def body(self) -> str:
        """The pattern without its anchors, for embedding in a larger regex."""
        return self.pattern[1:-1]

    def validate(self, value: object, *, echo: bool) -> str:
        """Return ``value`` if it is a well-formed identifier, else raise IdentifierError.

        :param echo: whether the value may appear in the error (never for personal data).
        """
        shown = f" {value!r:.40}" if echo else ""
        if not isinstance(value, str):
            raise IdentifierError(f"{self.kind} id{shown} must be a string, got {type(value).__name__}")
        if value == "":
            raise IdentifierError(f"{self.kind} id is empty")
        if len(value) > 128:
            raise IdentifierError(f"{self.kind} id is too long ({len(value)} characters, at most 128)")
        bad = sorted({c for c in value if c in FORBIDDEN_IDENTIFIER_CHARS or not c.isprintable()})
        if bad:
            raise IdentifierError(
                f"{self.kind} id{shown} contains a wildcard, quote or control character "
                f"({', '.join(repr(c) for c in bad)}); give one exact id, not a pattern"
            )
        if any(ord(c) > 0x7E for c in value):
            raise IdentifierError(f"{self.kind} id{shown} contains non-ASCII characters (look-alikes are refused)")
        if not re.fullmatch(self.body, value):
            raise IdentifierError(f"{self.kind} id{shown} does not match the required format {self.pattern}")
        return value


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
#: What the literal parts of a template may hold. Everything else could act as a pattern in
#: some store (Redis glob ``* ? [ ]``, Elasticsearch ``*`` and ``,`` lists, a stray ``{``).
_TEMPLATE_LITERAL = re.compile(r"[A-Za-z0-9._:/-]*")


@dataclass(frozen=True)
class Template:
    """A name template such as ``recordings/{tenant}/{date}/`` with its identifier formats.

    :param text: the template.
    :param fields: identifier formats for every non-date placeholder.
    :param date_format: strftime format for ``{date}`` (a day) or ``{month}`` (a month).
    """

    text: str
    fields: Mapping[str, IdentifierFormat]
    date_format: str | None = None

    def __post_init__(self) -> None:
        placeholders = self.placeholders
        if not placeholders:
            raise ValueError(f"template {self.text!r} has no placeholder")
        if placeholders[0] != "tenant":
            raise ValueError(f"template {self.text!r} must start its placeholders with {{tenant}}")
        if len(set(placeholders)) != len(placeholders):
            raise ValueError(f"template {self.text!r} repeats a placeholder")
        dated = [p for p in placeholders if p in ("date", "month")]
        if len(dated) > 1:
            raise ValueError(f"template {self.text!r} has more than one date placeholder")
        if dated and not self.date_format:
            raise ValueError(f"template {self.text!r} has {{{dated[0]}}} but no date format")
        if self.date_format:
            unknown = set(re.findall(r"%.", self.date_format)) - set(_DATE_DIRECTIVES)
            if unknown:
                raise ValueError(f"date format {self.date_format!r} may only use %Y, %m and %d")
        for literal in _PLACEHOLDER.split(self.text)[::2]:
            if not _TEMPLATE_LITERAL.fullmatch(literal):
                bad = "".join(sorted({c for c in literal if not _TEMPLATE_LITERAL.fullmatch(c)}))
                raise ValueError(
                    f"template {self.text!r} holds {bad!r} outside its placeholders; its literal parts may hold "
                    "only letters, digits and . _ : / -, so that no wildcard or list widens it to other tenants"
                )
        for name in placeholders:
            if name not in ("date", "month") and name not in self.fields:
                raise ValueError(f"template {self.text!r} has unknown placeholder {{{name}}}")
        # Every placeholder must be followed by a literal delimiter its values cannot contain.
        parts = _PLACEHOLDER.split(self.text)
        for index in range(1, len(parts), 2):
            name, following = parts[index], parts[index + 1]
            if name in ("date", "month"):
                continue  # fixed width: a date can never match more than itself
            if not following:
                raise ValueError(
                    f"placeholder {{{name}}} in {self.text!r} must be followed by a delimiter "
                    "(such as ':' or '/'), or one value could match many"
                )
            alphabet = self._alphabet(name)
            if following[0] in alphabet:
                raise ValueError(
                    f"placeholder {{{name}}} in {self.text!r} is followed by {following[0]!r}, which a "
                    f"{name} id may contain, so one value could match many; use a delimiter such as ':' or '/'"
                )

    def _alphabet(self, name: str) -> frozenset[str]:
        return self.fields[name].alphabet

    @property
    def placeholders(self) -> list[str]:
        return _PLACEHOLDER.findall(self.text)

    @property
    def subject_types(self) -> list[str]:
        return [p for p in self.placeholders if p not in ("tenant", "date", "month")]

    @property
    def date_placeholder(self) -> str | None:
        return next((p for p in self.placeholders if p in ("date", "month")), None)

    def _format_value(self, name: str, value: object) -> str:
        if name in ("date", "month"):
            if not isinstance(value, date):
                raise TypeError(f"{{{name}}} takes a date, got {type(value).__name__}")
            return value.strftime(self.date_format or "")
        return self.fields[name].validate(value, echo=name == "tenant")

    def prefix(self, **values: object) -> str:
        """The literal start of every name with these values: stops at the first missing one.

        Values are validated first, so the result never holds a wildcard.
        """
        out: list[str] = []
        parts = _PLACEHOLDER.split(self.text)
        out.append(parts[0])
        for index in range(1, len(parts), 2):
            name = parts[index]
            if name not in values:
                break
            out.append(self._format_value(name, values[name]))
            out.append(parts[index + 1])
        return "".join(out)

    def render(self, **values: object) -> str:
        missing = [p for p in self.placeholders if p not in values]
        if missing:
            raise KeyError(f"template {self.text!r} needs {', '.join(missing)}")
        return self.prefix(**values)

    @property
    def regex(self) -> re.Pattern[str]:
        """Matches names that start with this template; groups hold the placeholder values."""
        out = ["^"]
        parts = _PLACEHOLDER.split(self.text)
        out.append(re.escape(parts[0]))
        for index in range(1, len(parts), 2):
            name = parts[index]
            if name in ("date", "month"):
                body = re.escape(self.date_format or "")
                for directive, rx in _DATE_DIRECTIVES.items():
                    body = body.replace(re.escape(directive), rx).replace(directive, rx)
                out.append(f"(?P<{name}>{body})")
            else:
                out.append(f"(?P<{name}>{self.fields[name].body})")
            out.append(re.escape(parts[index + 1]))
        return re.compile("".join(out))

    def parse(self, name: str, *, whole: bool = False) -> dict[str, object] | None:
        """The placeholder values of ``name``, or None when it is not one of this template's names.

        :param whole: the name must end where the template ends (index names), rather than
            merely start with it (keys and object keys under a prefix).
        """
        match = self.regex.match(name)
        if not match or (whole and match.end() != len(name)):
            return None
        values: dict[str, object] = dict(match.groupdict())
        dated = self.date_placeholder
        if dated:
            try:
                parsed = datetime.strptime(str(values[dated]), self.date_format or "").date()
            except ValueError:
                return None
            values[dated] = parsed
        return values
