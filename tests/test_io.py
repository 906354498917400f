"""The file formats (superspike.io): round trips, robustness on arbitrary bytes, and the shared data.

Property-based tests (hypothesis) check that writing and reading are inverse and that the
readers never raise anything but InputFileError, whatever the file holds. The shared-data tests
load every ssbm raster and the recorded reference run's spike files.
"""

from __future__ import annotations

import io
import itertools
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from superspike.errors import InputFileError
from superspike.io import (
    MAX_ID,
    SPK_TAG,
    RasHeader,
    SpkWriter,
    load_weights,
    ras,
    read_ras,
    read_ras_data,
    read_spk,
    read_spk_header,
    save_weights,
    write_ras,
    write_spk,
)
from superspike.task import load_raster

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ROUND = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line_about(exc: InputFileError, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text and "\r" not in text
    assert text.startswith(str(path))


# --- ras -----------------------------------------------------------------------------------------

spike_lists = st.lists(st.tuples(st.floats(0, 1e4, allow_nan=False), st.integers(0, MAX_ID)), min_size=1, max_size=60)


@ROUND
@given(spikes=spike_lists, decimals=st.integers(4, 9))
def test_ras_round_trip_keeps_every_spike(tmp_path: Path, spikes: list[tuple[float, int]], decimals: int) -> None:
    times = np.array([t for t, _ in spikes])
    ids = np.array([i for _, i in spikes], dtype=np.int64)
    path = tmp_path / "r.ras"
    write_ras(path, times, ids, header="neurons 7, time grid 2.5s", decimals=decimals)
    t, i, header = read_ras(path)
    order = np.argsort(times, kind="stable")
    np.testing.assert_array_equal(i, ids[order])
    tol = 0.5 * 10.0**-decimals + 1e-12 * times.max()
    assert np.abs(t - times[order]).max() <= tol
    assert header == RasHeader(neurons=7, grid=2.5)


def test_ras_written_times_are_sorted_and_exact_on_the_time_grid(tmp_path: Path) -> None:
    steps = np.array([5, 0, 18898, 3, 3])
    ids = np.array([4, 1, 0, 2, 7])
    path = tmp_path / "r.ras"
    write_ras(path, steps * 1e-4, ids)
    t, i, _ = read_ras(path)
    np.testing.assert_array_equal(np.floor(t / 1e-4 + 1e-9).astype(int), [0, 3, 3, 5, 18898])
    np.testing.assert_array_equal(i, [1, 2, 7, 4, 0])


def test_write_ras_refuses_bad_spikes(tmp_path: Path) -> None:
    for times, ids in (([np.nan], [0]), ([-1.0], [0]), ([0.1], [-1]), ([0.1], [0.5]), ([0.1, 0.2], [1])):
        with pytest.raises(ValueError):
            write_ras(tmp_path / "x.ras", np.array(times), np.array(ids))


odd_tokens = ["-1", "3.0", "3.5", "nan", "inf", "-inf", "1e400", "1e", "+", "٣", "1_0", "abc", "#", "\t", "\x00",
              "99999999999999999999", "4294967295", "4294967296", "-0", ".5", "5.", "1e-3", "\ufeff",
              "\x85"]  # fmt: skip
good_tokens = ["0", "1", "0.1", "2.5", "17"]
ras_tokens = st.sampled_from(good_tokens + odd_tokens)
ras_field = st.one_of(st.sampled_from(good_tokens), ras_tokens)
ras_line = st.one_of(
    st.tuples(ras_field, ras_field).map(" ".join),  # mostly well-formed lines, so later checks are reached
    st.sampled_from(["", "# neurons 3", "# time grid 0.5s", "# neurons -2", "# time grid 1.2.3s", "# neurons 4",
                     "# time grid 0s", "  # x", "neurons 2"]),
    st.lists(ras_tokens, max_size=4).map(" ".join),
)  # fmt: skip
ras_lines = st.lists(ras_line, max_size=12)


@FUZZ
@given(lines=ras_lines, sep=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans())
def test_read_ras_on_ras_like_text_raises_only_input_file_error(
    tmp_path: Path, lines: list[str], sep: str, bom: bool
) -> None:
    path = tmp_path / "f.ras"
    path.write_bytes((("\ufeff" if bom else "") + sep.join(lines)).encode("utf-8"))
    _check_ras(path)


@FUZZ
@given(text=st.text(max_size=300))
def test_read_ras_on_arbitrary_text_raises_only_input_file_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.ras"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    _check_ras(path)


@FUZZ
@given(data=st.binary(max_size=300))
def test_read_ras_on_arbitrary_bytes_raises_only_input_file_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f.ras"
    path.write_bytes(data)
    _check_ras(path)


ascii_pieces = st.sampled_from(["0.1", "7", " x ", "", " ", "\t", "\x0b", "\x0c", "\x1c", "\x1f"])


@FUZZ
@given(lines=st.lists(st.lists(ascii_pieces, max_size=5).map("".join), max_size=10))
def test_vectorised_column_split_agrees_with_the_line_by_line_one(lines: list[str]) -> None:
    text = "\n".join(lines)
    results = []
    for split in (ras._columns_vectorised, ras._columns_by_line):
        try:
            t, i, n = split(Path("f.ras"), text)
            results.append((t, i, n.tolist()))
        except InputFileError as exc:
            results.append(str(exc))
    assert results[0] == results[1]


def _check_ras(path: Path) -> None:
    try:
        data = read_ras_data(path)
    except InputFileError as exc:
        _one_line_about(exc, path)
        return
    assert data.times.dtype == np.float64 and data.ids.dtype == np.int64
    assert len(data.times) == len(data.ids) == len(data.lines) > 0
    assert np.isfinite(data.times).all() and (data.times >= 0).all()
    assert (data.ids >= 0).all() and (data.ids <= MAX_ID).all()
    assert (np.diff(data.lines) > 0).all()


# --- spk -----------------------------------------------------------------------------------------

spk_spikes = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=80).map(
    lambda s: sorted(s, key=lambda x: x[0])
)


@ROUND
@given(spikes=spk_spikes, dt=st.sampled_from([1e-4, 1e-3, 5e-5, 1.0]))
def test_spk_round_trip_is_exact(tmp_path: Path, spikes: list[tuple[int, int]], dt: float) -> None:
    steps = np.array([s for s, _ in spikes], dtype=np.int64)
    ids = np.array([i for _, i in spikes], dtype=np.int64)
    path = tmp_path / "s.spk"
    write_spk(path, steps, ids, dt)
    s, i = read_spk(path, dt=dt)
    np.testing.assert_array_equal(s, steps)
    np.testing.assert_array_equal(i, ids)
    assert read_spk_header(path) == round(1 / dt)
    assert path.stat().st_size == 8 * (len(spikes) + 1)


@ROUND
@given(spikes=spk_spikes, cuts=st.lists(st.integers(0, 80), max_size=6))
def test_spk_writer_in_pieces_equals_one_write(tmp_path: Path, spikes: list[tuple[int, int]], cuts: list[int]) -> None:
    steps = np.array([s for s, _ in spikes], dtype=np.int64)
    ids = np.array([i for _, i in spikes], dtype=np.uint32)
    write_spk(tmp_path / "one.spk", steps, ids, 1e-4)
    bounds = [0, *sorted(c for c in cuts if c <= len(spikes)), len(spikes)]
    with SpkWriter(tmp_path / "pieces.spk", 1e-4) as w:
        for a, b in itertools.pairwise(bounds):
            w.write(steps[a:b], ids[a:b])
            w.flush()
        assert w.tell_records() == len(spikes)
    assert (tmp_path / "pieces.spk").read_bytes() == (tmp_path / "one.spk").read_bytes()


def test_spk_writer_append_continues_and_cuts_a_torn_record(tmp_path: Path) -> None:
    path = tmp_path / "s.spk"
    write_spk(path, np.array([1, 5]), np.array([0, 2]), 1e-4)
    with open(path, "ab") as fh:
        fh.write(b"\x07\x00\x00")  # a crash mid-record
    with SpkWriter(path, 1e-4, append=True) as w:
        assert w.last_step == 5
        with pytest.raises(ValueError, match="time order"):
            w.write(np.array([4]), np.array([1]))
        w.write(np.array([5, 9]), np.array([1, 1]))
    s, i = read_spk(path, dt=1e-4)
    np.testing.assert_array_equal(s, [1, 5, 5, 9])
    np.testing.assert_array_equal(i, [0, 2, 1, 1])
    with pytest.raises(InputFileError, match="steps per second"):
        SpkWriter(path, 1e-3, append=True)


def test_spk_writer_refuses_bad_spikes(tmp_path: Path) -> None:
    with SpkWriter(tmp_path / "s.spk", 1e-4) as w:
        for steps, ids in (([-1], [0]), ([0], [-3]), ([2**32], [0]), ([3, 2], [0, 0]), ([1.5], [0]), ([1, 2], [0])):
            with pytest.raises(ValueError):
                w.write(np.array(steps), np.array(ids))
    assert read_spk(tmp_path / "s.spk")[0].size == 0  # nothing was written
    for dt in (0.0, -1e-4, float("nan"), 1e-12):
        with pytest.raises(ValueError):
            SpkWriter(tmp_path / "t.spk", dt)


@FUZZ
@given(
    data=st.binary(max_size=200),
    with_header=st.booleans(),
    dt=st.sampled_from([None, 1e-4]),
    n=st.sampled_from([None, 1, 200]),
    max_step=st.sampled_from([None, 0, 1000]),
)
def test_read_spk_on_arbitrary_bytes_raises_only_input_file_error(
    tmp_path: Path, data: bytes, with_header: bool, dt: float | None, n: int | None, max_step: int | None
) -> None:
    path = tmp_path / "f.spk"
    header = np.array([10000, SPK_TAG], dtype="<u4").tobytes() if with_header else b""
    path.write_bytes(header + data)
    try:
        steps, ids = read_spk(path, dt=dt, n_neurons=n, max_step=max_step)
    except InputFileError as exc:
        _one_line_about(exc, path)
        return
    assert len(steps) == len(ids) == (len(header) + len(data)) // 8 - 1
    assert (np.diff(steps) >= 0).all()
    if n is not None:
        assert (ids < n).all()
    if max_step is not None and len(steps):
        assert steps.max() <= max_step


# --- weights (npz) -------------------------------------------------------------------------------

SHAPES = {"input-hidden0": (3, 4), "hidden0-output": (4, 2)}  #: a chain 3-4-2, connections in creation order
FEEDBACK = {"hidden0-output": (2, 4)}  #: random feedback back along hidden0-output


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w/input-hidden0": rng.normal(size=(3, 4)).astype(np.float32),
            "w/hidden0-output": rng.normal(size=(4, 2)).astype(np.float32),
            "b/hidden0-output": rng.normal(size=(2, 4)).astype(np.float32)}  # fmt: skip


def test_weights_round_trip(tmp_path: Path) -> None:
    good = _good()
    path = tmp_path / "w.npz"
    save_weights(path, {"input-hidden0": good["w/input-hidden0"], "hidden0-output": good["w/hidden0-output"]},
                 {"hidden0-output": good["b/hidden0-output"]})  # fmt: skip
    with np.load(path) as z:
        assert sorted(z.files) == sorted(good)  # keys w/<connection>, b/<feedback edge>
    w, b = load_weights(path, SHAPES, FEEDBACK)
    assert list(w) == list(SHAPES) and list(b) == list(FEEDBACK)
    for name in SHAPES:
        np.testing.assert_array_equal(w[name], good[f"w/{name}"])
    np.testing.assert_array_equal(b["hidden0-output"], good["b/hidden0-output"])
    assert all(a.flags.writeable and a.dtype == np.float32 for a in [*w.values(), *b.values()])
    # symmetric feedback: the b/ array is not needed, not read and not returned
    assert load_weights(path, SHAPES, {})[1] == {}


def test_chain_archives_of_earlier_versions_load_by_position(tmp_path: Path) -> None:
    """w0, w1, ... are the chain's connections in order, bK the matrix back along connection K."""
    good = _good()
    path = tmp_path / "old.npz"
    path.write_bytes(_npz_bytes(w0=good["w/input-hidden0"], w1=good["w/hidden0-output"], b1=good["b/hidden0-output"]))
    w, b = load_weights(path, SHAPES, FEEDBACK, chain=True)
    np.testing.assert_array_equal(w["input-hidden0"], good["w/input-hidden0"])
    np.testing.assert_array_equal(w["hidden0-output"], good["w/hidden0-output"])
    np.testing.assert_array_equal(b["hidden0-output"], good["b/hidden0-output"])
    # not onto a graph that is not a chain
    with pytest.raises(InputFileError, match=r"chain archive \(w0, w1, ...\), which loads only onto a chain"):
        load_weights(path, SHAPES, FEEDBACK, chain=False)
    # the same checks as before: a missing or a surplus array
    path.write_bytes(_npz_bytes(w0=good["w/input-hidden0"]))
    with pytest.raises(InputFileError, match="array 'w1' is missing"):
        load_weights(path, SHAPES, {}, chain=True)
    path.write_bytes(_npz_bytes(w0=good["w/input-hidden0"], w1=good["w/hidden0-output"], w2=good["w/hidden0-output"]))
    with pytest.raises(
        InputFileError, match=r"'w2' does not belong to a chain network of 2 connections \(expects w0, w1"
    ):
        load_weights(path, SHAPES, {}, chain=True)


def test_arrays_that_do_not_belong_are_named(tmp_path: Path) -> None:
    good = _good()
    path = tmp_path / "w.npz"
    path.write_bytes(_npz_bytes(**good, **{"w/skip": good["w/input-hidden0"]}))
    with pytest.raises(InputFileError, match="array 'w/skip' does not belong to this network"):
        load_weights(path, SHAPES, FEEDBACK)
    path.write_bytes(_npz_bytes(**good, w0=good["w/input-hidden0"]))  # old and new names mixed
    with pytest.raises(InputFileError, match="array 'w0' does not belong"):
        load_weights(path, SHAPES, FEEDBACK)
    path.write_bytes(_npz_bytes(**{"w/input-hidden0": good["w/input-hidden0"]}))
    with pytest.raises(InputFileError, match="array 'w/hidden0-output' is missing"):
        load_weights(path, SHAPES, FEEDBACK)


def test_weights_beyond_w_max_are_named(tmp_path: Path) -> None:
    good = _good()
    path = tmp_path / "w.npz"
    path.write_bytes(_npz_bytes(**good))
    with pytest.raises(InputFileError, match=r"w/input-hidden0 has weights outside \[-0.1, 0.1\] V"):
        load_weights(path, SHAPES, FEEDBACK, w_max=0.1)
    assert load_weights(path, SHAPES, FEEDBACK, w_max=100.0)[0]


def test_weights_fortran_order_and_big_endian_are_read_as_they_are(tmp_path: Path) -> None:
    good = _good()
    path = tmp_path / "w.npz"
    path.write_bytes(_npz_bytes(**{"w/input-hidden0": np.asfortranarray(good["w/input-hidden0"]),
                                   "w/hidden0-output": good["w/hidden0-output"].astype(">f4")}))  # fmt: skip
    w, _ = load_weights(path, SHAPES, {})
    np.testing.assert_array_equal(w["input-hidden0"], good["w/input-hidden0"])
    np.testing.assert_array_equal(w["hidden0-output"], good["w/hidden0-output"])


class _Boom:
    """Unpickling this would create a file: proof that the reader never unpickles."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(self.marker),))


def test_weights_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    arr = np.empty((3, 4), dtype=object)
    arr[:] = _Boom(str(marker))
    good = _good()
    path = tmp_path / "w.npz"
    pickle.loads(pickle.dumps(_Boom(str(tmp_path / "control"))))
    assert (tmp_path / "control").exists()  # the trap works
    for arrays, chain in (({"w/input-hidden0": arr, "w/hidden0-output": good["w/hidden0-output"]}, False),
                          ({"w0": arr, "w1": good["w/hidden0-output"]}, True)):  # fmt: skip
        path.write_bytes(_npz_bytes(**arrays))
        with pytest.raises(InputFileError, match="object array; refusing to unpickle"):
            load_weights(path, SHAPES, {}, chain=chain)
    assert not marker.exists()


@FUZZ
@given(data=st.binary(max_size=400))
def test_load_weights_on_arbitrary_bytes_raises_only_input_file_error(tmp_path: Path, data: bytes) -> None:
    _check_weights(tmp_path / "f.npz", data)


GOOD_NPZ = _npz_bytes(**_good())
GOOD_LEGACY_NPZ = _npz_bytes(w0=_good()["w/input-hidden0"], w1=_good()["w/hidden0-output"])


@FUZZ
@given(
    legacy=st.booleans(),
    cut=st.integers(0, len(GOOD_NPZ)),
    flips=st.lists(st.tuples(st.integers(0, len(GOOD_LEGACY_NPZ) - 1), st.integers(1, 255)), max_size=4),
)
def test_load_weights_on_damaged_archives_raises_only_input_file_error(
    tmp_path: Path, legacy: bool, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(GOOD_LEGACY_NPZ if legacy else GOOD_NPZ)
    for pos, x in flips:
        data[pos] ^= x
    _check_weights(tmp_path / "f.npz", bytes(data[: max(cut, 1)] if flips else data[:cut]))


def _check_weights(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        w, _ = load_weights(path, SHAPES, FEEDBACK, chain=True)
    except InputFileError as exc:
        _one_line_about(exc, path)
        return
    assert [a.shape for a in w.values()] == list(SHAPES.values()) and all(np.isfinite(a).all() for a in w.values())


def test_damaged_zip_member_is_named(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    for names in (("w/input-hidden0", "w/hidden0-output"), ("w0", "w1")):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{names[0]}.npy", b"\x93NUMPY\x01\x00garbage")
            zf.writestr(f"{names[1]}.npy", b"")
        with pytest.raises(InputFileError, match=f"array '{names[0]}' is unreadable"):
            load_weights(path, SHAPES, {}, chain=True)


# --- the shared data ----------------------------------------------------------------------------


def _spike_lines(path: Path) -> int:
    """Plain count: lines that are neither blank nor comments."""
    with open(path) as fh:
        return sum(1 for line in fh if line.strip() and not line.lstrip().startswith("#"))


def test_every_ssbm_raster_loads_with_the_plain_line_count(shared: Path) -> None:
    files = sorted((shared / "ssbm" / "benchmarks" / "precise_timing").rglob("*.ras"))
    assert len(files) >= 19
    for path in files:
        times, ids, _ = read_ras(path)
        assert len(times) == len(ids) == _spike_lines(path), path
        assert (times >= 0).all() and (ids >= 0).all()
    mona = shared / "ssbm" / "benchmarks" / "precise_timing" / "monalisa" / "target.ras"
    assert read_ras(mona)[2] == RasHeader(neurons=500, grid=33.1)


def test_monalisa_target_ids_are_one_based_and_need_an_explicit_choice(shared: Path) -> None:
    mona = shared / "ssbm" / "benchmarks" / "precise_timing" / "monalisa" / "target.ras"
    with pytest.raises(InputFileError) as exc:
        load_raster(mona, None)
    line = next(k for k, s in enumerate(mona.read_text().splitlines(), 1) if s.split()[-1] == "500")
    assert f"{mona}:{line}:" in str(exc.value)
    assert "header" in str(exc.value) and "--id-offset" in str(exc.value) and "--drop-out-of-range" in str(exc.value)
    raster, _, dropped = load_raster(mona, None, id_offset=-1)
    assert (raster.n, dropped, raster.ids.min(), raster.ids.max()) == (500, 0, 0, 499)
    assert len(raster.times) == _spike_lines(mona)


def test_reference_run_spike_files_load_with_the_readme_counts(shared: Path, tmp_path: Path) -> None:
    ref = shared / "reference" / "oxford-burnin"
    for name, n, count in (("input", 200, 19955), ("hidden", 256, 2075), ("output", 200, 11)):
        path = ref / f"{name}.spk"
        assert read_spk_header(path) == 10000
        steps, ids = read_spk(path, dt=1e-4, n_neurons=n, max_step=199999)
        assert len(steps) == len(ids) == count
        write_spk(tmp_path / path.name, steps, ids, 1e-4)  # the writer gives back the same bytes
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


# --- atomic writes ---------------------------------------------------------------------------------


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    from superspike.io import atomic_write, write_atomic

    path = tmp_path / "config.toml"
    write_atomic(path, "old\n")
    with pytest.raises(RuntimeError), atomic_write(path, "w") as fh:
        fh.write("half of the new")
        raise RuntimeError("disk full")  # a failure in the middle of writing
    assert path.read_text() == "old\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no temporary file left
    with atomic_write(path) as fh:
        fh.write(b"new\r\n")
    assert path.read_bytes() == b"new\r\n"
    write_atomic(path, "a\nb\n")  # text: UTF-8, \n line ends on every platform
    assert path.read_bytes() == b"a\nb\n"
