"""ras spike rasters: text, one spike per line, ``time_in_seconds neuron_id``.

Format (as in the ssbm benchmarks and Auryn's ``FileInputGroup``)::

    # neurons 100, temporal resolution 0.050000s, time grid 3.500000s
    0.010036 54
    0.014654 53

- One spike per line: a time in seconds and a neuron id, separated by spaces or tabs. Lines may
  come in any order; :func:`read_ras` returns them in file order.
- A time is a decimal number (``0.5``, ``5e-1``); it must be finite and non-negative.
- A neuron id is a non-negative integer below 2**32 (Auryn's 32-bit ``NeuronID``). An id written
  as an integral decimal (``3.0``, ``3e0``, as ``numpy.savetxt`` writes them) is read as that
  integer; ``3.5`` is an error, never rounded.
- Lines whose first non-blank character is ``#`` are comments; blank lines are skipped. A comment
  may declare ``neurons N`` (the group size) and ``time grid G s`` (the loop period, s); these
  are returned as a :class:`RasHeader` and used as defaults. Other header words are ignored.
- Text is UTF-8 (a byte-order mark is skipped; UTF-16 with a byte-order mark is read too). Line
  ends may be LF, CRLF or CR; line numbers in messages count them as an editor does.

Every problem is an :class:`~superspike.errors.InputFileError` naming the file, the line and
the problem: a missing, unreadable or binary file, no spikes, a line without exactly two
columns, a field that is not a number, a negative, NaN or infinite time, an id that is negative,
not an integer or too large, a malformed header value. Nothing is dropped or rounded silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from superspike.errors import InputFileError
from superspike.io.files import reading, write_atomic

MAX_ID = 2**32 - 1  #: largest neuron id (Auryn's NeuronID and the spk format are 32-bit unsigned)

# Header declarations: a number (or something that starts like one) after the keyword.
_GRID = re.compile(r"\btime\s+grid\s+([+-]?[0-9.][^\s,;]*?)\s*s\b")
_NEURONS = re.compile(r"\bneurons\s+([+-]?[0-9.][^\s,;]*)")
_NOT_NUMBER_CHAR = re.compile(r"[^0-9.eE+\-]")  # a token with any other character needs a closer look
_NOT_DIGIT = re.compile(r"[^0-9]")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE | re.ASCII)
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_COMMENT = re.compile(r"^[^\S\n]*#[^\n]*", re.MULTILINE)  # a line whose first non-blank character is #


@dataclass(frozen=True)
class RasHeader:
    """What a ras file's comment lines declare (None where they say nothing)."""

    neurons: int | None = None  #: group size, from ``neurons N``
    grid: float | None = None  #: loop period, s, from ``time grid G s``


@dataclass(frozen=True)
class RasData:
    """A parsed ras file: spikes in file order and the line each came from."""

    times: np.ndarray  #: spike times, s, float64
    ids: np.ndarray  #: neuron ids, int64
    header: RasHeader
    lines: np.ndarray  #: 1-based line number of each spike, int64


def read_ras(path: str | Path) -> tuple[np.ndarray, np.ndarray, RasHeader]:
    """Read a ras file: spike times (float64, s), neuron ids (int64), in file order, and header.

    Raises InputFileError (file, line, problem) for any malformed content; see the module text.
    """
    data = read_ras_data(path)
    return data.times, data.ids, data.header


def ras_line_numbers(path: str | Path) -> np.ndarray:
    """Line number (1-based) of each spike of a ras file, in the order :func:`read_ras` returns."""
    return read_ras_data(path).lines


def read_ras_data(path: str | Path) -> RasData:
    """Read a ras file with the line number of each spike (for messages about single spikes).

    The file is parsed in pieces of whole lines (:data:`CHUNK_BYTES`), so memory grows with the
    number of spikes (24 bytes each), not with the Python objects of the whole text."""
    path = Path(path)
    header = _HeaderParser(path)
    # The spikes go straight into arrays sized for the most lines the file can hold ("0 0\n" is
    # 4 bytes); np.empty takes memory only as it is written, and the arrays are shrunk in place.
    try:
        capacity = max(path.stat().st_size // 4 + 1, 1024)
    except OSError:
        capacity = 1024
    times = np.empty(capacity, np.float64)
    ids = np.empty(capacity, np.int64)
    lines = np.empty(capacity, np.int64)
    count = 0
    first_line = 1
    for text in _text_chunks(path):
        lines_in_chunk = text.count("\n")
        if "#" in text:  # parse the comments, then blank them (keeping the line count)
            line, pos = first_line, 0
            for m in _COMMENT.finditer(text):
                line += text.count("\n", pos, m.start())
                pos = m.start()
                header.parse(m.group(0), line)
            text = _COMMENT.sub("", text)
        if text.isascii():
            time_tokens, id_tokens, chunk_lines = _columns_vectorised(path, text, first_line)
        else:
            time_tokens, id_tokens, chunk_lines = _columns_by_line(path, text, first_line)
        del text
        first_line += lines_in_chunk
        n = len(time_tokens)
        if not n:
            continue
        if count + n > capacity:  # a file that grew while read, or one without a size (a pipe)
            capacity = max(2 * capacity, count + n)
            for a in (times, ids, lines):
                a.resize(capacity, refcheck=False)
        times[count : count + n] = _parse_times(path, time_tokens, chunk_lines)
        del time_tokens
        ids[count : count + n] = _parse_ids(path, id_tokens, chunk_lines)
        del id_tokens
        lines[count : count + n] = chunk_lines
        count += n
    if not count:
        raise InputFileError(path, "no spikes (expected lines 'time_in_seconds neuron_id')")
    for a in (times, ids, lines):
        a.resize(count, refcheck=False)
    return RasData(times, ids, header.result(), lines)


MAX_LINE_BYTES = 16 << 20  #: longest line of a ras file
CHUNK_BYTES = 1 << 20  #: a ras file is parsed in pieces of about this many bytes (whole lines)


def _text_chunks(path: Path) -> Iterator[str]:
    """The file's text in pieces that end at a line end (LF, CRLF or CR made LF); UTF-16 whole."""
    with reading(path, "a ras file"), open(path, "rb") as fh:
        raw = fh.read(CHUNK_BYTES)
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raw += fh.read()
            yield _decode(path, raw, first=True)
            return
        if b"\x00" in raw[:4096]:
            raise InputFileError(path, "not a text file (NUL bytes); a ras file is text: 'time id' per line")
        first = True
        while raw:
            more = fh.read(CHUNK_BYTES)
            if more:
                # cut after the last LF, else (old Mac files) after a CR that is not the piece's
                # last byte (that one could pair with an LF in the next piece)
                cut = raw.rfind(b"\n") + 1 or raw.rfind(b"\r", 0, len(raw) - 1) + 1
                if cut == 0:  # no line end in this piece: one line longer than a piece
                    if len(raw) > MAX_LINE_BYTES:
                        raise InputFileError(path, f"a line longer than {MAX_LINE_BYTES >> 20} MB; not a ras file?")
                    raw += more
                    continue
                raw, rest = raw[:cut], raw[cut:] + more
            else:
                rest = b""
            yield _decode(path, raw, first)
            first = False
            raw = rest


def _decode(path: Path, raw: bytes, first: bool) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") and first:
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            raise InputFileError(path, "starts like UTF-16 text but is not") from None
    else:
        # Undecodable bytes survive as lone surrogates: they are harmless in comments, and in a
        # time or id they fail the number check with the line number.
        text = raw.decode("utf-8", errors="surrogateescape")
        if first:
            text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _columns_vectorised(path: Path, text: str, first_line: int = 1) -> tuple[list[str], list[str], np.ndarray]:
    """Time and id tokens and their line numbers, checking two columns per line with numpy (ASCII text)."""
    b = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    if b.size == 0:
        return [], [], np.empty(0, np.int64)
    newline = b == 10
    # the ASCII whitespace of str.split(): \t \n \v \f \r \x1c-\x1f and space
    space = ((b >= 9) & (b <= 13)) | ((b >= 28) & (b <= 32))
    start = ~space
    start[1:] &= space[:-1]  # first character of each token
    line_of_start = np.cumsum(newline)[start]  # 0-based line of each token
    counts = np.bincount(line_of_start, minlength=int(newline.sum()) + 1)
    bad = (counts != 0) & (counts != 2)
    if bad.any():
        k = int(np.argmax(bad))
        _raise_columns(path, text.split("\n")[k], k + first_line)
    tokens = text.split()
    lines = np.flatnonzero(counts == 2).astype(np.int64) + first_line
    return tokens[0::2], tokens[1::2], lines


def _columns_by_line(path: Path, text: str, first_line: int = 1) -> tuple[list[str], list[str], np.ndarray]:
    """The same, line by line (text with non-ASCII characters: Unicode whitespace, stray bytes)."""
    time_tokens: list[str] = []
    id_tokens: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(text.split("\n"), start=first_line):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            _raise_columns(path, line, number)
        time_tokens.append(parts[0])
        id_tokens.append(parts[1])
        numbers.append(number)
    return time_tokens, id_tokens, np.asarray(numbers, dtype=np.int64)


def _raise_columns(path: Path, line: str, number: int) -> None:
    found, shown = len(line.split()), _show(line.strip())
    raise InputFileError(path, f"expected 2 columns (time in s, neuron id), found {found}: {shown}", number)


def write_ras(
    path: str | Path, times: np.ndarray, ids: np.ndarray, header: str | None = None, decimals: int = 6
) -> None:
    """Write spikes as a ras file, sorted by time (stable), times with ``decimals`` decimals (s).

    The default, 6 decimals, keeps times to 1 us (a tenth of the default time step); reading the
    file back gives the times rounded to that precision and the ids exactly. ``header`` lines are
    written as ``# `` comments first; ``"neurons N, time grid G s"`` is read back by
    :func:`read_ras`. The file is written atomically (:func:`~superspike.io.files.atomic_write`).
    Raises ValueError for NaN, infinite or negative times, or bad ids.
    """
    times = np.asarray(times, dtype=np.float64)
    ids = np.asarray(ids)
    if times.ndim != 1 or times.shape != ids.shape:
        raise ValueError(f"times and ids must be 1-D arrays of equal length, got {times.shape} and {ids.shape}")
    if times.size and not (np.isfinite(times).all() and times.min() >= 0):
        raise ValueError("spike times must be finite and non-negative")
    if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() > MAX_ID):
        raise ValueError(f"neuron ids must be integers in 0..{MAX_ID}")
    order = np.argsort(times, kind="stable")
    body = "".join(f"{t:.{decimals}f} {i}\n" for t, i in zip(times[order].tolist(), ids[order].tolist(), strict=True))
    head = "".join(f"# {line}\n" for line in header.splitlines()) if header else ""
    write_atomic(path, head + body)


class _HeaderParser:
    """Collects ``neurons N`` and ``time grid G s`` from comment lines; conflicting values are errors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.neurons: tuple[int, int] | None = None  # (value, line)
        self.grid: tuple[float, int] | None = None

    def parse(self, line: str, number: int) -> None:
        if (m := _NEURONS.search(line)) is not None:
            token = m.group(1)
            if not _INT.fullmatch(token) or int(token) < 1 or int(token) > MAX_ID + 1:
                raise InputFileError(self.path, f"header: 'neurons {_show(token)}' is not a positive integer", number)
            self.neurons = self._same("neurons", self.neurons, int(token), number)
        if (m := _GRID.search(line)) is not None:
            token = m.group(1)
            value = float(token) if _FLOAT.fullmatch(token) else float("nan")
            if not (np.isfinite(value) and value > 0):
                raise InputFileError(
                    self.path, f"header: 'time grid {_show(token)}s' is not a positive number of seconds", number
                )
            self.grid = self._same("time grid", self.grid, value, number)

    def _same(self, what: str, old: tuple | None, value: float, number: int) -> tuple:
        if old is not None and old[0] != value:
            raise InputFileError(
                self.path, f"header: {what} {value} contradicts {what} {old[0]} on line {old[1]}", number
            )
        return (value, number)

    def result(self) -> RasHeader:
        return RasHeader(
            neurons=self.neurons[0] if self.neurons else None,
            grid=self.grid[0] if self.grid else None,
        )


def _parse_times(path: Path, tokens: list[str], lines: np.ndarray) -> np.ndarray:
    times = None
    if _NOT_NUMBER_CHAR.search("".join(tokens)) is None:
        try:
            times = np.array(tokens, dtype=np.float64)
        except ValueError:
            pass  # e.g. "1e" or "1-2": found below
    if times is None:
        for k, token in enumerate(tokens):
            if not _FLOAT.fullmatch(token):
                raise InputFileError(path, f"time {_show(token)} is not a number", int(lines[k]))
        times = np.array(tokens, dtype=np.float64)
    bad = ~np.isfinite(times) | (times < 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        t = times[k]
        kind = "NaN" if np.isnan(t) else "infinite" if np.isinf(t) else "negative"
        raise InputFileError(path, f"time {_show(tokens[k])} is {kind}; times must be seconds >= 0", int(lines[k]))
    return times


def _parse_ids(path: Path, tokens: list[str], lines: np.ndarray) -> np.ndarray:
    # Fast path: plain digits short enough for int64 (every real file).
    if _NOT_DIGIT.search("".join(tokens)) is None and max(map(len, tokens)) <= 18:
        ids = np.array(tokens, dtype=np.int64)
        if ids.max() > MAX_ID:
            k = int(np.argmax(ids > MAX_ID))
            raise InputFileError(path, f"neuron id {tokens[k]} is too large (at most {MAX_ID})", int(lines[k]))
        return ids
    out = np.empty(len(tokens), dtype=np.int64)
    for k, token in enumerate(tokens):
        out[k] = _parse_id(path, token, int(lines[k]))
    return out


def _parse_id(path: Path, token: str, line: int) -> int:
    if _INT.fullmatch(token):
        value = int(token)
    elif _FLOAT.fullmatch(token):
        try:
            exact = Decimal(token)  # exact decimal value: "3.0000000000000001" is not an integer
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
            raise InputFileError(path, f"neuron id {_show(token)} is not a number", line) from None
        if not exact.is_finite() or exact != exact.to_integral_value():
            raise InputFileError(path, f"neuron id {_show(token)} is not an integer", line)
        if abs(exact) > MAX_ID:
            value = MAX_ID + 1 if exact > 0 else -1
        else:
            value = int(exact)
    else:
        raise InputFileError(path, f"neuron id {_show(token)} is not a number", line)
    if value < 0:
        raise InputFileError(path, f"neuron id {_show(token)} is negative; ids count from 0", line)
    if value > MAX_ID:
        raise InputFileError(path, f"neuron id {_show(token)} is too large (at most {MAX_ID})", line)
    return value


def _show(token: str, limit: int = 40) -> str:
    """A token for a one-line message: quoted when odd (undecodable bytes as \\xNN), shortened when long."""
    if _FLOAT.fullmatch(token):
        text = token
    else:
        chars = []
        for c in token:
            if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
                chars.append(f"\\x{ord(c) - 0xDC00:02x}")
            elif c.isprintable():
                chars.append(c)
            else:
                chars.append(c.encode("unicode_escape").decode("ascii"))
        text = "'" + "".join(chars) + "'"
    return text if len(text) <= limit else text[: limit - 3] + "..."
