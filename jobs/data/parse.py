"""Reading a landing file: every physical line is a row read, split into records and structural rejects.

CSV files are split with numpy over the raw bytes (line boundaries, commas, quotes, non-ASCII bytes
and blanks counted per line at once) and the well-formed lines, nearly all of them, are parsed by
Arrow's CSV reader in one call; only the few odd lines (quoted fields, non-ASCII text, a wrong field
count, blanks, undecodable bytes) go through Python, one by one, with the same rules as before:

* ``blank_line``: nothing but whitespace;
* ``invalid_utf8``: bytes that are not UTF-8 (kept visibly as ``\\xNN`` in quarantine);
* ``broken_quoting``: a quoted field that does not close;
* ``wrong_field_count``: more or fewer fields than the header;
* JSON lines: ``invalid_json`` for a line that is not a JSON object.

Records keep the file's line order (the first of two duplicates is the one kept downstream). Their
columns are Arrow-backed strings (``string[pyarrow]``): no Python object per field, and vectorised
string operations (trimming, patterns) downstream.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

_SURROGATE = re.compile("[\udc80-\udcff]")
_BOM = b"\xef\xbb\xbf"
STRING = pd.StringDtype("pyarrow")


class UnreadableFile(ValueError):
    """The file as a whole cannot be read (for example an undecodable header)."""


@dataclass
class ParsedFile:
    """The lines of one file: parsed records (string columns) and structural rejects."""

    header: list[str]
    records: pd.DataFrame  # one column per header field plus ``_line`` (1-based line number)
    rejects: list[tuple[int, str, str]]  # (line number, raw text, reason)
    rows_read: int
    needs_strip: bool = True  # False when no field can have surrounding whitespace (skips a costly pass)
    _lines: dict[int, str] = field(default_factory=dict, repr=False)
    _raw: bytes = b""
    _starts: np.ndarray | None = field(default=None, repr=False)
    _ends: np.ndarray | None = field(default=None, repr=False)

    def line_text(self, number: int) -> str:
        """The raw text of line ``number`` (1-based), for quarantine."""
        if number in self._lines:
            return self._lines[number]
        start, end = int(self._starts[number - 1]), int(self._ends[number - 1])
        return printable(decode(self._raw[start:end]))


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="surrogateescape")  # bad bytes become lone surrogates


def printable(line: str) -> str:
    """A raw line as storable text: undecodable bytes shown as \\xNN."""
    return line.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")


def _unreadable(number: int, line: str) -> tuple[int, str, str] | None:
    """The reject of a line no format can read (blank, or not UTF-8), or None: one rule for CSV and JSONL."""
    if not line.strip():
        return number, line, "blank_line"
    if _SURROGATE.search(line):
        return number, printable(line), "invalid_utf8"
    return None


def parse_file(path: Path, raw: bytes | None = None) -> ParsedFile:
    """Split ``path`` (or its already-read bytes) into records and structural rejects."""
    raw = path.read_bytes() if raw is None else raw
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if path.suffix in (".jsonl", ".json"):
        return _parse_jsonl(raw)
    return _parse_csv(raw)


def _line_bounds(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, start, end) of every physical line; ``end`` excludes the newline and a trailing ``\\r``."""
    b = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(b == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(b)]))
    if len(starts) and starts[-1] == len(b):  # the final newline ends the last row; it does not start one
        starts, ends = starts[:-1], ends[:-1]
    if len(ends):
        last = b[np.maximum(ends - 1, 0)]
        ends = ends - ((ends > starts) & (last == 13))
    return b, starts, ends


def _per_line(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """How many bytes flagged in ``mask`` each line holds."""
    positions = np.flatnonzero(mask)
    return np.bincount(np.searchsorted(starts, positions, side="right") - 1, minlength=len(starts))


def _parse_csv(raw: bytes) -> ParsedFile:
    b, starts, ends = _line_bounds(raw)
    if len(starts) == 0:
        return ParsedFile([], pd.DataFrame({"_line": np.array([], dtype=np.int64)}), [], 0)
    header_text = decode(raw[starts[0] : ends[0]])
    if _SURROGATE.search(header_text):
        raise UnreadableFile("header is not valid UTF-8")
    if "\r" in header_text:
        raise UnreadableFile("the header line holds a carriage return: lines must end with \\n or \\r\\n, not \\r")
    try:
        header = [h.strip() for h in next(csv.reader([header_text], strict=True), [])]
    except csv.Error as exc:
        raise UnreadableFile(f"the header is not one CSV line: {exc}") from exc
    width = len(header)
    rows_read = len(starts) - 1

    commas = _per_line(b == 44, starts)
    quotes = _per_line(b == 34, starts)
    high = _per_line(b >= 128, starts)
    returns = np.flatnonzero(b == 13)  # a \r inside a line (not the one before its newline) would split it in Arrow
    line_of = np.searchsorted(starts, returns, side="right") - 1
    inner_returns = np.bincount(line_of[returns < ends[line_of]], minlength=len(starts))
    simple = (commas == width - 1) & (quotes == 0) & (high == 0) & (inner_returns == 0)
    simple[0] = False  # the header

    # One pass over the bytes tells whether any field starts or ends with a blank.
    blanks = np.flatnonzero((b == 32) | (b == 9))
    before = np.where(blanks > 0, b[np.maximum(blanks - 1, 0)], 10)
    after = np.where(blanks + 1 < len(b), b[np.minimum(blanks + 1, len(b) - 1)], 10)
    needs_strip = bool(np.any(np.isin(before, (44, 10)) | np.isin(after, (44, 10, 13))))

    numbers = np.flatnonzero(simple) + 1  # 1-based line numbers
    columns = _arrow_split(raw, starts, ends, simple, width)
    lines: dict[int, str] = {}
    rejects: list[tuple[int, str, str]] = []
    extra_rows: list[list[str]] = []
    extra_numbers: list[int] = []
    for i in np.flatnonzero(~simple[1:]) + 1:
        number = int(i) + 1
        text = decode(raw[starts[i] : ends[i]])
        fields = text.split(",")
        if len(fields) == width and '"' not in text and not _SURROGATE.search(text):
            extra_rows.append(fields)  # well formed, but not ASCII or with a stray \r: split here
            extra_numbers.append(number)
            lines[number] = text
            continue
        reject = _unreadable(number, text)
        if reject:
            rejects.append(reject)
            continue
        if '"' in text:
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error:
                rejects.append((number, text, "broken_quoting"))
                continue
        if len(fields) != width:
            rejects.append((number, text, "wrong_field_count"))
            continue
        extra_rows.append(fields)
        extra_numbers.append(number)
        lines[number] = text
    records = pd.DataFrame(dict(zip(header, columns, strict=True)))
    records["_line"] = numbers.astype(np.int64)
    if extra_rows:
        extra = pd.DataFrame(
            {
                name: pd.array(list(col), dtype=STRING)
                for name, col in zip(header, zip(*extra_rows, strict=True), strict=True)
            }
        )
        extra["_line"] = np.asarray(extra_numbers, dtype=np.int64)
        records = (
            pd.concat([records, extra], ignore_index=True).sort_values("_line", kind="mergesort").reset_index(drop=True)
        )
    return ParsedFile(header, records, rejects, rows_read, needs_strip, lines, raw, starts, ends)


def _arrow_split(raw: bytes, starts: np.ndarray, ends: np.ndarray, simple: np.ndarray, width: int) -> list:
    """The fields of the simple lines, one Arrow-backed string array per column (Arrow's CSV reader)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    idx = np.flatnonzero(simple)
    if len(idx) == 0:
        return [pd.array([], dtype=STRING) for _ in range(width)]
    if len(idx) == len(starts) - 1:
        body = raw[starts[1] :]  # every line after the header is simple: parse the file's body in place
    else:  # cut the header and the few odd lines (each with its newline) out of the bytes
        keep = np.ones(len(raw), dtype=bool)
        keep[: starts[1]] = False
        nexts = np.concatenate((starts[1:], [len(raw)]))
        for i in np.flatnonzero(~simple[1:]) + 1:
            keep[starts[i] : nexts[i]] = False
        body = np.frombuffer(raw, dtype=np.uint8)[keep].tobytes()
        if body and not body.endswith(b"\n"):
            body += b"\n"
    names = [f"c{i}" for i in range(width)]
    table = pacsv.read_csv(
        pa.py_buffer(body),
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(
            quote_char=False, double_quote=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=False
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    if table.num_rows != len(idx):
        raise UnreadableFile(f"internal split mismatch: {table.num_rows} rows parsed for {len(idx)} lines")
    return [pd.array(table.column(n), dtype=STRING) for n in names]


def _parse_jsonl(raw: bytes) -> ParsedFile:
    text = decode(raw)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    records: list[dict] = []
    numbers: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, start=1):
        reject = _unreadable(number, line)
        if reject:
            rejects.append(reject)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            rejects.append((number, line, "invalid_json"))
            continue
        if not isinstance(obj, dict):
            rejects.append((number, line, "invalid_json"))
            continue
        records.append({k: (None if v is None else str(v)) for k, v in obj.items()})
        numbers.append(number)
    header = list(dict.fromkeys(k for r in records for k in r))
    frame = (
        pd.DataFrame.from_records(records, columns=header).astype(STRING)
        if records
        else pd.DataFrame({c: pd.array([], dtype=STRING) for c in header})
    )
    frame["_line"] = np.asarray(numbers, dtype=np.int64)
    return ParsedFile(header, frame, rejects, len(lines), True, {n: lines[n - 1] for n in numbers})
