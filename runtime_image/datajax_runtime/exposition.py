"""A fast, strict parser for the Prometheus text format as vLLM emits it.

The sidecar parses a ~50 KB exposition every few seconds on a CPU it shares with vLLM's API server,
so the common case costs one whole-text regular-expression pass that runs in C: every line must
match one alternative (sample, HELP/TYPE/UNIT line, other comment, blank), so the text is valid iff
the number of matches equals the number of lines. Only when it is not do we walk the text line by
line, and then only to say exactly which line is wrong and why.

Label sets are tokenised by that pass and validated separately through a cache: vLLM repeats the same
few hundred label sets in every scrape, so after the first scrape validating labels is a set lookup.

Accepted beyond the classic 0.0.4 format, because real exporters emit them: OpenMetrics `# EOF`,
`# UNIT` lines, exemplars after a sample (`... # {trace_id="x"} 1.0`), float timestamps, `Inf`/`NaN`
spellings, CRLF line ends, a trailing comma in a label set, and `_created` series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import compress

__all__ = ["Exposition", "ExpositionError", "parse", "parse_labels"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*+"
# Only the three escapes of the text format are legal inside a label value.
_LABEL_VALUE = r'"[^"\\\n]*+(?:\\[\\"n][^"\\\n]*+)*+"'
_LABEL_PAIR = rf"[ \t]*+{_LABEL_NAME}[ \t]*+=[ \t]*+{_LABEL_VALUE}[ \t]*+"
_LABELS = rf"\{{(?:{_LABEL_PAIR}(?:,{_LABEL_PAIR})*+,?+[ \t]*+)?+\}}"
# Tokeniser for a label set: finds its closing brace even when a value holds `}` or `"`; the strict
# grammar above is applied separately (and cached).
_LABELS_TOKEN = r'\{[^"}\n]*+(?:"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"[^"}\n]*+)*+\}'
_VALUE = r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[Ii]nf(?:inity)?|[Nn]a[Nn])"
_TIMESTAMP = r"-?[0-9]+(?:\.[0-9]+)?"
_TAIL = re.compile(
    rf"(?:{_TIMESTAMP})?(?:[ \t]*#[ \t]+{_LABELS}[ \t]+{_VALUE}(?:[ \t]+{_TIMESTAMP})?)?[ \t]*"
)
_TYPES = "counter|gauge|histogram|summary|untyped|unknown|info|stateset|gaugehistogram"

# One alternative per kind of line; groups: sample name, label set, value, tail; TYPE'd name.
_LINE = re.compile(
    rf"\n(?:({_NAME})({_LABELS_TOKEN})?+[ \t]++([^ \t\n]++)(?:[ \t]++([^\n]*+))?+"
    rf"|#[ \t]++TYPE[ \t]++({_NAME})[ \t]++(?:{_TYPES})[ \t]*+"
    rf"|#[ \t]++(?:HELP|UNIT)[ \t]++{_NAME}(?:[ \t][^\n]*+)?+"
    rf"|#(?![ \t]*+(?:TYPE|HELP|UNIT)\b)[^\n]*+"
    rf"|[ \t]*+)(?=\n)"
)
_LABELS_STRICT = re.compile(_LABELS)
_VALUE_STRICT = re.compile(_VALUE)
_TYPE_LINE = re.compile(rf"#[ \t]+TYPE[ \t]+({_NAME})[ \t]+({_TYPES})[ \t]*")
_HELP_LINE = re.compile(rf"#[ \t]+(?:HELP|UNIT)[ \t]+{_NAME}(?:[ \t].*)?")
_KEYWORD = re.compile(r"#[ \t]*(TYPE|HELP|UNIT)\b")
_LABEL_ITEM = re.compile(rf'({_LABEL_NAME})[ \t]*=[ \t]*"([^"\\\n]*(?:\\[\\"n][^"\\\n]*)*)"')
_ESCAPE = re.compile(r"\\([\\\"n])")
_UNESCAPED = {"\\": "\\", '"': '"', "n": "\n"}

# Raw label text -> parsed pairs, for label sets already known to be valid. Bounded so a server
# that mints label values (it should not) cannot grow the sidecar without limit.
_LABEL_CACHE: dict[str, tuple[tuple[str, str], ...]] = {}
_LABEL_CACHE_LIMIT = 20_000


class ExpositionError(ValueError):
    """The upstream sent text that is not the Prometheus text format; says which line and why."""

    def __init__(self, line: int, problem: str, text: str = "") -> None:
        self.line = line
        self.problem = problem
        shown = text if len(text) <= 120 else text[:117] + "..."
        where = f"line {line}" if line else "exposition"
        super().__init__(f"{where}: {problem}" + (f": {shown!r}" if text else ""))


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], value) if "\\" in value else value


def parse_labels(raw: str) -> tuple[tuple[str, str], ...]:
    """Split a validated `{a="x",b="y"}` text into (name, value) pairs, undoing the escapes."""
    cached = _LABEL_CACHE.get(raw)
    if cached is not None:
        return cached
    pairs = tuple((name, _unescape(value)) for name, value in _LABEL_ITEM.findall(raw))
    if len(_LABEL_CACHE) >= _LABEL_CACHE_LIMIT:
        _LABEL_CACHE.clear()
    _LABEL_CACHE[raw] = pairs
    return pairs


@dataclass(frozen=True)
class Exposition:
    """One parsed scrape, kept as three parallel columns (sample name, raw label text, value).

    Columns rather than a dict of families because the window math looks up a dozen names out of
    ~130, and a C-level `tuple.index` per name is cheaper than indexing every sample in Python.
    """

    names: tuple[str, ...]
    labels: tuple[str, ...]
    values: tuple[float, ...]

    def series(self, name: str) -> list[tuple[str, float]]:
        """Every sample called `name` as (raw label text, value); an absent name gives none."""
        names = self.names
        out: list[tuple[str, float]] = []
        start = 0
        while True:
            try:
                i = names.index(name, start)
            except ValueError:
                return out
            j = i
            end = len(names)
            while j < end and names[j] == name:
                out.append((self.labels[j], self.values[j]))
                j += 1
            start = j

    def labelled(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample called `name` with its labels as a dict (for callers that need label values)."""
        return [(dict(parse_labels(raw)), value) for raw, value in self.series(name)]


def parse(text: str) -> Exposition:
    """Parse and validate a whole exposition, or raise ExpositionError naming the first bad line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            _locate_error(text)
    # OpenMetrics ends with `# EOF`; anywhere else the line is an ordinary comment.
    if text.rstrip().endswith("\n# EOF"):
        text = text.rstrip()[: -len("# EOF")]
    padded = "\n" + text if text.endswith("\n") else "\n" + text + "\n"
    rows = _LINE.findall(padded)
    if len(rows) != padded.count("\n") - 1:
        _locate_error(text)
    if not rows:
        return Exposition((), (), ())
    names, labels, raw_values, tails, typed = zip(*rows, strict=True)
    typed_names = [name for name in typed if name]
    if len(set(typed_names)) != len(typed_names):
        _locate_error(text)
    unseen = set(labels).difference(_LABEL_CACHE)
    unseen.discard("")
    for raw in unseen:
        if _LABELS_STRICT.fullmatch(raw) is None:
            _locate_error(text)
        parse_labels(raw)
    if any(tails) and any(_TAIL.fullmatch(tail) is None for tail in tails if tail):
        _locate_error(text)
    # Non-sample rows have an empty name, so the name column doubles as the selector.
    picked_names = tuple(filter(None, names))
    picked_labels = tuple(compress(labels, names))
    picked_values = list(compress(raw_values, names))
    if "_" in "".join(picked_values):
        _locate_error(text)
    try:
        values = tuple(map(float, picked_values))
    except ValueError:
        _locate_error(text)
        raise
    if len(set(zip(picked_names, picked_labels, strict=True))) != len(picked_names):
        _locate_error(text)
    return Exposition(picked_names, picked_labels, values)


def _locate_error(text: str) -> None:
    """Walk the text line by line to report the first problem; only called on text known to be bad."""
    typed: set[str] = set()
    seen: set[tuple[str, str]] = set()
    sample = re.compile(rf"({_NAME})((?:{_LABELS})?)[ \t]+({_VALUE})(?:[ \t]+{_TAIL.pattern})?")
    for number, line in enumerate(text.split("\n"), start=1):
        if "\r" in line:
            raise ExpositionError(number, "stray carriage return", line)
        if not line.strip():
            continue
        if line.startswith("#"):
            keyword = _KEYWORD.match(line)
            if keyword is None:
                continue
            if keyword.group(1) == "TYPE":
                match = _TYPE_LINE.fullmatch(line)
                if match is None:
                    raise ExpositionError(number, f"malformed TYPE line (types are {_TYPES})", line)
                if match.group(1) in typed:
                    raise ExpositionError(number, f"second TYPE line for {match.group(1)}", line)
                typed.add(match.group(1))
            elif _HELP_LINE.fullmatch(line) is None:
                raise ExpositionError(
                    number, f"malformed {keyword.group(1)} line (want '# HELP name text')", line
                )
            continue
        match = sample.fullmatch(line)
        if match is None:
            raise ExpositionError(number, _diagnose_sample(line), line)
        key = (match.group(1), match.group(2))
        if key in seen:
            raise ExpositionError(number, "duplicate sample (same name and labels twice)", line)
        seen.add(key)
    raise ExpositionError(0, "inconsistent exposition (no single bad line found)")


def _diagnose_sample(line: str) -> str:
    """Name the part of a sample line that is wrong, for a log line a person can act on."""
    name = re.match(_NAME, line)
    if name is None:
        return "sample line does not start with a metric name"
    rest = line[name.end() :]
    if rest.startswith("{"):
        labels = _LABELS_STRICT.match(rest)
        if labels is None:
            if re.search(r'\\[^\\"n]', rest):
                return 'invalid escape in a label value (only \\\\, \\" and \\n are allowed)'
            return "malformed label set"
        rest = rest[labels.end() :]
    if rest and not rest[0].isspace():
        return "expected a space after the metric name or label set"
    fields = rest.split()
    if not fields:
        return "sample has no value"
    if _VALUE_STRICT.fullmatch(fields[0]) is None:
        return f"value {fields[0]!r} is not a number"
    if len(fields) > 1 and fields[1] != "#" and re.fullmatch(_TIMESTAMP, fields[1]) is None:
        return f"timestamp {fields[1]!r} is not a number"
    return "unexpected text after the value"
