"""Read inventory files (CSV or JSON Lines) row by row as tuples of cells, counting bytes for progress."""

from __future__ import annotations

import csv
import io
import json
import operator
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from incident.datafiles import MAX_DEPTH, MAX_INT_DIGITS, no_duplicate_keys, not_text, too_deep
from incident.errors import BadInput
from incident.files import check_input

csv.field_size_limit(1 << 20)  # a 1 MiB cell is already absurd; larger ones are refused, not read


class _CountingRaw(io.RawIOBase):
    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b)
        self.count += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _DuplicateKey(ValueError):
    """A JSON object names a key twice (args: the key)."""


_UNIQUE_KEYS = no_duplicate_keys(_DuplicateKey)
Row = dict[str, str]
Cells = tuple[str, ...]


def read_records(
    path: Path, columns: tuple[str, ...], required: tuple[str, ...], *, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Cells]]:
    """Yield (line, cells in `columns` order, '' where absent) of a CSV or JSON Lines file; bad files raise BadInput."""
    # A tuple per row, not a dict: bulk imports read millions. `progress` hears of every MiB read.
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise BadInput(name, None, None, "unknown file type (use .csv or .jsonl)")
    check_input(path)
    try:
        raw = _CountingRaw(open(path, "rb"))  # noqa: SIM115 - closed in finally
    except OSError as exc:
        raise BadInput(name, None, None, exc.strerror or "cannot open") from None
    text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding="utf-8-sig", newline="")
    reported = 0
    try:
        rows = _csv_records(name, text, columns, required) if suffix == ".csv" else _jsonl_records(name, text, columns)
        if progress is None:
            yield from rows
            return
        for item in rows:
            if raw.count - reported >= 1 << 20:
                progress(raw.count - reported)
                reported = raw.count
            yield item
        progress(raw.count - reported)
    finally:
        text.close()


def _first_undecodable_line(name: str) -> int | None:
    """Return the number of the first line that is not UTF-8, reading the file again as bytes."""
    try:
        with open(name, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


def _decode_guard(name: str, line: int, gen: Iterator[Any]) -> Any:
    try:
        return next(gen)
    except UnicodeDecodeError as exc:
        # The decoder runs a chunk ahead of the parser, so the parser's line is not where the bad byte is.
        where = _first_undecodable_line(name) or line
        raise BadInput(name, where, None, f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise BadInput(name, line, None, f"malformed CSV: {exc}") from None


def _csv_records(
    name: str, text: io.TextIOWrapper, columns: tuple[str, ...], required: tuple[str, ...]
) -> Iterator[tuple[int, Cells]]:
    reader = csv.reader(text, strict=True)
    try:
        header = _decode_guard(name, 1, reader)
    except StopIteration:
        raise BadInput(name, 1, None, "the file is empty (expected a header row)") from None
    header = [h.strip() for h in header]
    for col in header:
        if col not in columns:
            raise BadInput(name, 1, col, f"unknown column (expected some of: {', '.join(columns)})")
    if len(set(header)) != len(header):
        raise BadInput(name, 1, None, "a column appears twice in the header")
    for col in required:
        if col not in header:
            raise BadInput(name, 1, col, "required column is missing")
    width = len(header)
    # A column the file lacks reads the empty string appended at index `width` of each row.
    indices = [header.index(col) if col in header else width for col in columns]
    pick = operator.itemgetter(*indices) if len(indices) > 1 else lambda v: (v[indices[0]],)
    while True:
        line = reader.line_num + 1  # where the record starts, even if quoted line breaks carry it further
        try:
            values = _decode_guard(name, line, reader)
        except StopIteration:
            return
        if not values or values == [""]:
            continue
        if len(values) != width:
            raise BadInput(name, line, None, f"has {len(values)} fields, the header has {width}")
        values.append("")
        yield line, tuple(map(str.strip, pick(values)))


def _jsonl_records(name: str, text: io.TextIOWrapper, columns: tuple[str, ...]) -> Iterator[tuple[int, Cells]]:
    line = 0
    it = iter(text)
    while True:
        line += 1
        try:
            raw = _decode_guard(name, line, it)
        except StopIteration:
            return
        if not raw.strip():
            continue
        if too_deep(raw) is not None:
            raise BadInput(name, line, None, f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
        try:
            obj = json.loads(raw, object_pairs_hook=_UNIQUE_KEYS)
        except _DuplicateKey as exc:
            raise BadInput(name, line, str(exc)[:40], "appears twice (refused, not overwritten)") from None
        except json.JSONDecodeError as exc:
            raise BadInput(name, line, None, f"invalid JSON: {exc.msg}") from None
        except (ValueError, RecursionError):
            raise BadInput(name, line, None, f"invalid JSON: a number with more than {MAX_INT_DIGITS} digits") from None
        if not isinstance(obj, dict):
            raise BadInput(name, line, None, "each line must be a JSON object")
        escapes = "\\u" in raw
        for key, value in obj.items():
            if escapes and not_text(key):
                raise BadInput(name, line, None, "a field name holds a lone surrogate escape (\\ud800 to \\udfff)")
            if key not in columns:
                raise BadInput(name, line, str(key)[:40], "unknown field")
            if value is not None and not isinstance(value, str | int):
                raise BadInput(name, line, key, "must be a string")
            if escapes and isinstance(value, str) and not_text(value):
                raise BadInput(name, line, key, "holds a lone surrogate escape (\\ud800 to \\udfff): not text")
        yield line, tuple("" if obj.get(col) is None else str(obj[col]).strip() for col in columns)
