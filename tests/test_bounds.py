"""Bounded before allocated (issue 14, item 4): sizes estimated from the configuration and
refused with a one-line error naming the option to change (override: --allow-large); the
schedule built lazily; one size cap for declared and inferred groups; ras files read in bounded
memory; a final loop longer than the training refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PEAK_KIB, SRC, measured_cli, one_line_error

from superspike.cli import main
from superspike.errors import ConfigError, InputFileError
from superspike.io import ras
from superspike.io.ras import read_ras_data
from superspike.network import NetworkSpec
from superspike.network.graph import MAX_GROUP_SIZE
from superspike.run.budget import check_run, estimate
from superspike.run.schedule import Schedule
from superspike.task.raster import MAX_INFERRED_GROUP, load_raster


def write_ras(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A 0.5 s pattern: 5 inputs, 2 outputs."""
    inp = write_ras(tmp_path / "in.ras", [f"{0.01 + 0.09 * k:.3f} {k}" for k in range(5)])
    tgt = write_ras(tmp_path / "tg.ras", ["0.1 0", "0.3 1"])
    return inp, tgt


# -- the estimate ---------------------------------------------------------------------------------


def test_schedule_segments_are_lazy() -> None:
    sched = Schedule.create(20.0, 20.0, 10**9, 1.0, 1e-4, 1e-3)
    t0 = time.perf_counter()
    seg = sched.segments(1e-3)
    first = [next(seg) for _ in range(3)]
    assert time.perf_counter() - t0 < 0.1
    assert first[0] == (0, sched.burn_in, False, 1e-3, 0, 0)
    assert first[2][:2] == (sched.block_start(1), sched.block_start(2))


def test_segments_match_the_schedule() -> None:
    sched = Schedule.create(1.0, 0.5, 3, 0.5, 1e-4, 1e-3, lr_drop_block=2)
    seg = list(sched.segments(1e-3))
    assert [s[:2] for s in seg] == [(0, 10000), (10000, 15000), (15000, 20000), (20000, 25000), (25000, sched.end)]
    assert [s[3] for s in seg[1:4]] == [1e-3, 1e-3, 1e-4]
    assert seg[-1][2:] == (False, 0.0, 3, None)


def test_estimate_grows_with_neurons_blocks_and_recording() -> None:
    small = NetworkSpec.chain(100, (10,), 10)
    big = NetworkSpec.chain(100, (10_000,), 10)
    sched = Schedule.create(20.0, 20.0, 50, 1.0, 1e-4, 1e-3)
    long = Schedule.create(20.0, 20.0, 5000, 1.0, 1e-4, 1e-3)
    assert estimate(big, sched, 500, False).memory > 100 * estimate(small, sched, 500, False).network_memory
    assert estimate(small, long, 500, False).curve_memory == pytest.approx(
        100 * estimate(small, sched, 500, False).curve_memory, rel=0.05
    )
    assert estimate(small, sched, 500, False).disk == 0
    assert estimate(small, long, 500, True).disk > 50 * estimate(small, sched, 500, True).disk


def test_check_run_names_the_option_and_the_override_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    import superspike.run.budget as budget

    monkeypatch.setattr(budget, "available_memory", lambda: 50 << 20)
    spec = NetworkSpec.chain(200, (2000,), 200)  # 800k plastic synapses: about 100 MB
    sched = Schedule.create(20.0, 20.0, 50, 1.0, 1e-4, 1e-3)
    with pytest.raises(ConfigError, match=r"network: .*memory.*fewer neurons.*--allow-large"):
        check_run(spec, sched, 1000, None)
    check_run(spec, sched, 1000, None, allow_large=True)
    blocks = Schedule.create(0.0, 0.5, 10**6, 1.0, 1e-4, 1e-3)  # 5e5 s: the curve, not the duration
    with pytest.raises(ConfigError, match=r"blocks: .*memory.*fewer --blocks"):
        check_run(NetworkSpec.chain(2, (), 2), blocks, 10, None)


def test_disk_estimate_against_the_free_space(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import superspike.run.budget as budget

    monkeypatch.setattr(budget, "free_disk", lambda path: 10 << 20)
    spec = NetworkSpec.chain(200, (), 200)
    sched = Schedule.create(20.0, 20.0, 500, 1.0, 1e-4, 1e-3)  # 10020 s: 200 inputs at 5 Hz alone 80 MB
    with pytest.raises(ConfigError, match=r"blocks: .*write about .* MB to .*free there.*--block-duration"):
        check_run(spec, sched, 1000, tmp_path / "run")
    check_run(spec, sched, 1000, None)  # no run directory, nothing written


# -- the command line -------------------------------------------------------------------------------


@pytest.mark.parametrize("out", [False, True])
def test_a_billion_blocks_is_refused_fast_and_small(tmp_path: Path, out: bool) -> None:
    args = ["train", "--blocks", "1000000000", "-q"] + (["--out", "run"] if out else [])
    proc, wall, peak = measured_cli(args, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: blocks: "), proc.stderr
    assert "--blocks" in proc.stderr
    # with a run directory the spk format's limit (2**32 steps) comes first, and has no override
    assert ("an spk file can record" in proc.stderr) if out else ("--allow-large" in proc.stderr)
    assert "Traceback" not in proc.stderr
    assert wall < 5  # the interpreter's start and numba's import are most of it (1.2 s measured)
    assert peak < 400 * 1024
    assert not (tmp_path / "run").exists()


def test_a_huge_hidden_layer_is_refused_before_its_weights(tmp_path: Path) -> None:
    # a recurrent hidden group of a million neurons: 1e12 synapses, too large for any machine
    proc, _, peak = measured_cli(["train", "--hidden", "1000000", "--recurrent", "-q"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: network: "), proc.stderr
    assert "fewer neurons" in proc.stderr and "--allow-large" in proc.stderr
    assert peak < 400 * 1024


def test_final_loop_longer_than_training_is_refused(tmp_path: Path, pair: tuple[Path, Path], capsys) -> None:
    inp, tgt = pair
    one_line_error(
        capsys, ["train", "--input", inp, "--target", tgt, "--grid", "1e4", "-q"], "grid: the final loop", "--grid"
    )


def test_final_loop_check_lets_short_patterns_and_long_trainings_through() -> None:
    spec = NetworkSpec.chain(5, (), 2)
    # no training at all: one loop period of 0.5 s is fine
    check_run(spec, Schedule.create(0.0, 0.5, 0, 0.5, 1e-4, 1e-3), 5, None)
    # a 100 s loop after 1000 s of training is fine
    check_run(spec, Schedule.create(0.0, 20.0, 50, 100.0, 1e-4, 1e-3), 5, None)
    with pytest.raises(ConfigError, match="--allow-large"):
        check_run(spec, Schedule.create(0.0, 20.0, 1, 100.0, 1e-4, 1e-3), 5, None)
    check_run(spec, Schedule.create(0.0, 20.0, 1, 100.0, 1e-4, 1e-3), 5, None, allow_large=True)


def test_allow_large_is_an_option_of_train(pair: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    inp, tgt = pair
    # accepted by the final-loop check; the run itself is kept tiny (grid 61 s, one 0.5 s block)
    args = ["train", "--input", inp, "--target", tgt, "--grid", "61", "--burn-in", "0"]
    args += ["--block-duration", "0.5", "--blocks", "1", "-q"]
    one_line_error(capsys, args, "final loop")
    main([str(a) for a in [*args, "--allow-large"]])
    assert capsys.readouterr().err == ""


def test_resume_does_not_take_allow_large(tmp_path: Path, capsys) -> None:
    one_line_error(capsys, ["train", "--resume", tmp_path, "--allow-large"], "--allow-large")


# -- group sizes -------------------------------------------------------------------------------------


def test_one_cap_for_declared_and_inferred_group_sizes(tmp_path: Path) -> None:
    assert MAX_INFERRED_GROUP == MAX_GROUP_SIZE
    declared = write_ras(tmp_path / "d.ras", ["# neurons 20000000", "0.1 1", "0.2 2"])
    with pytest.raises(InputFileError, match=r"header: 'neurons 20000000' is more than the largest group.*--nin"):
        load_raster(declared, None, role="input")
    inferred = write_ras(tmp_path / "i.ras", ["0.1 1", f"0.2 {MAX_GROUP_SIZE}"])
    with pytest.raises(InputFileError, match=r"would make a group of"):
        load_raster(inferred, None, role="input")
    at_cap = write_ras(tmp_path / "c.ras", [f"# neurons {MAX_GROUP_SIZE}", "0.1 1"])
    assert load_raster(at_cap, None, role="input")[0].n == MAX_GROUP_SIZE


def test_declared_huge_group_is_a_one_line_error_and_writes_nothing(tmp_path: Path, pair, capsys) -> None:
    _, tgt = pair
    big = write_ras(tmp_path / "big.ras", ["# neurons 20000000", "0.1 1", "0.2 2"])
    one_line_error(capsys, ["train", "--input", big, "--target", tgt, "--out", tmp_path / "run", "-q"], "--nin")
    assert not (tmp_path / "run").exists()
    one_line_error(capsys, ["train", "--input", big, "--target", tgt, "--nin", "20000000", "-q"], "1..1000000")


# -- ras files in bounded memory -----------------------------------------------------------------


def test_ras_pieces_give_the_same_result_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    lines = ["# neurons 50, time grid 2 s"]
    for k in range(3000):
        if k % 97 == 0:
            lines.append("# a comment")
        if k % 101 == 0:
            lines.append("")
        lines.append(f"{rng.uniform(0, 2):.6f}\t{rng.integers(0, 50)}")
    path = tmp_path / "r.ras"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    whole = read_ras_data(path)
    monkeypatch.setattr(ras, "CHUNK_BYTES", 100)
    pieces = read_ras_data(path)
    np.testing.assert_array_equal(whole.times, pieces.times)
    np.testing.assert_array_equal(whole.ids, pieces.ids)
    np.testing.assert_array_equal(whole.lines, pieces.lines)
    assert whole.header == pieces.header
    assert len(whole.times) == 3000


def test_line_numbers_of_errors_in_later_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ras, "CHUNK_BYTES", 64)
    path = write_ras(tmp_path / "r.ras", [*(f"0.{k:03d} 1" for k in range(200)), "0.5 x"])
    with pytest.raises(InputFileError, match=r"r\.ras:201: neuron id 'x' is not a number"):
        read_ras_data(path)
    path = write_ras(tmp_path / "s.ras", [*(f"0.{k:03d} 1" for k in range(150)), "0.5 1 2"])
    with pytest.raises(InputFileError, match=r"s\.ras:151: expected 2 columns"):
        read_ras_data(path)
    path = write_ras(tmp_path / "h.ras", [*(f"0.{k:03d} 1" for k in range(150)), "# neurons 3", "# neurons 4"])
    with pytest.raises(InputFileError, match=r"h\.ras:152: header: neurons 4 contradicts neurons 3 on line 151"):
        read_ras_data(path)


def test_a_file_without_line_ends_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ras, "CHUNK_BYTES", 8)
    path = tmp_path / "cr.ras"
    path.write_bytes(b"0.1 1\r0.2 2\r0.3 3")
    data = read_ras_data(path)
    assert data.ids.tolist() == [1, 2, 3] and data.lines.tolist() == [1, 2, 3]


@pytest.mark.slow
def test_a_100_mb_ras_is_read_in_under_500_mb(tmp_path: Path) -> None:
    path = tmp_path / "big.ras"
    rng = np.random.default_rng(0)
    n, written = 1_000_000, 0
    with open(path, "w") as fh:
        fh.write("# neurons 1000, time grid 100 s\n")
        while written < 100_000_000:
            t = np.sort(rng.uniform(0, 100, n))
            i = rng.integers(0, 1000, n)
            text = "".join(f"{a:.6f} {b}\n" for a, b in zip(t.tolist(), i.tolist(), strict=True))
            fh.write(text)
            written += len(text)
    code = PEAK_KIB + textwrap.dedent(
        f"""
        from superspike.task.raster import check_grid, load_raster
        raster, _, _ = load_raster({str(path)!r}, None, role="input")
        check_grid(raster, 100.0, 1e-4)
        print(len(raster.times), peak_kib())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    count, peak_kib = map(int, proc.stdout.split())
    assert count > 7_000_000
    assert peak_kib < 500 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB for {written / 1e6:.0f} MB of ras"


# -- make-input ---------------------------------------------------------------------------------------


def test_make_input_refuses_a_huge_raster(tmp_path: Path, capsys) -> None:
    one_line_error(
        capsys,
        ["make-input", "-o", tmp_path / "x.ras", "--neurons", "1000000", "--rate", "1000", "--duration", "10"],
        "--neurons",
        "--rate",
    )
    assert not (tmp_path / "x.ras").exists()


def test_endless_durations_are_refused(capsys, tmp_path: Path) -> None:
    one_line_error(capsys, ["train", "--block-duration", "1e300", "--blocks", "1", "-q"], "1e+300 s", "--allow-large")
    one_line_error(capsys, ["train", "--burn-in", "1e20", "-q"], "--burn-in")
    # an spk file cannot record beyond 2**32 steps: no override for a run directory
    err = one_line_error(
        capsys, ["train", "--block-duration", "1e6", "--blocks", "1", "-q", "--out", tmp_path / "r", "--allow-large"]
    )
    assert "an spk file can record" in err and "--allow-large" not in err
    assert not (tmp_path / "r").exists()


def test_sweeps_of_too_many_runs_are_refused_before_they_are_made(tmp_path: Path, capsys) -> None:
    import time as _time

    seeds = tmp_path / "s1.toml"
    seeds.write_text('seeds = 1000000000\n[base]\ntask = "timing"\n')
    one_line_error(capsys, ["sweep", seeds, "--out", tmp_path / "o1"], "seeds: a count must be at most")
    grid = tmp_path / "s2.toml"
    values = ", ".join(str(k) for k in range(1, 3001))
    grid.write_text(f'seeds = 3\n[base]\ntask = "timing"\n[grid]\neta = [{values}]\nw0 = [{values}]\n')
    t0 = _time.perf_counter()
    one_line_error(capsys, ["sweep", grid, "--out", tmp_path / "o2"], "27000000 runs", "split the sweep")
    assert _time.perf_counter() - t0 < 5
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_make_input_and_make_target_sizes(tmp_path: Path, capsys) -> None:
    one_line_error(
        capsys, ["make-input", "-o", tmp_path / "x.ras", "--neurons", "1000000000", "--rate", "0"], "neurons"
    )
    from PIL import Image

    Image.new("L", (40, 20), 0).save(tmp_path / "p.png")
    one_line_error(capsys, ["make-target", tmp_path / "p.png", "--neurons", "100000", "--bins", "100000"], "pixels")
    one_line_error(capsys, ["make-target", tmp_path / "p.png", "--neurons", "2000000"], "largest group")


# -- spike files read by window (plots) ----------------------------------------------------------


def test_spk_window_matches_the_whole_file(tmp_path: Path) -> None:
    from superspike.io import read_spk, write_spk
    from superspike.io.spk import read_spk_window

    rng = np.random.default_rng(1)
    steps = np.sort(rng.integers(0, 10_000, 5000))
    ids = rng.integers(0, 30, 5000)
    path = tmp_path / "x.spk"
    write_spk(path, steps, ids, 1e-4)
    s_all, i_all = read_spk(path)
    for start, stop in [(0, 10_000), (0, 1), (2500, 2600), (9999, 20_000), (5000, 5000), (7000, 3000)]:
        s, i = read_spk_window(path, start, stop)
        keep = (s_all >= start) & (s_all < stop)
        np.testing.assert_array_equal(s, s_all[keep])
        np.testing.assert_array_equal(i, i_all[keep])
    write_spk(tmp_path / "empty.spk", np.empty(0, np.int64), np.empty(0, np.int64), 1e-4)
    assert read_spk_window(tmp_path / "empty.spk", 0, 100)[0].size == 0
    (tmp_path / "torn.spk").write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InputFileError, match="truncated"):
        read_spk_window(tmp_path / "torn.spk", 0, 10)


@pytest.mark.slow
def test_a_window_of_a_large_spike_file_is_read_in_small_memory(tmp_path: Path) -> None:
    from superspike.io import SPK_TAG

    path = tmp_path / "big.spk"
    n = 25_000_000  # 200 MB
    with open(path, "wb") as fh:
        np.array([10000, SPK_TAG], "<u4").tofile(fh)
        for lo in range(0, n, 5_000_000):
            rec = np.empty((5_000_000, 2), "<u4")
            rec[:, 0] = np.arange(lo, lo + 5_000_000) // 4
            rec[:, 1] = 7
            rec.tofile(fh)
    code = PEAK_KIB + textwrap.dedent(
        f"""
        from superspike.io.spk import read_spk_window
        base = peak_kib()
        s, i = read_spk_window({str(path)!r}, 3_000_000, 3_010_000)
        print(len(s), peak_kib() - base)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    count, grown_kib = map(int, proc.stdout.split())
    assert count == 40_000
    assert grown_kib < 50 * 1024


def test_recording_in_memory_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    import superspike.run.budget as budget

    spec = NetworkSpec.chain(200, (100,), 200)
    sched = Schedule.create(0.0, 20.0, 500, 1.0, 1e-4, 1e-3)  # 10000 s
    plain = estimate(spec, sched, 1000, False)
    kept = estimate(spec, sched, 1000, False, record=True)
    assert kept.record_memory > 100 * plain.network_memory and kept.memory == plain.memory + kept.record_memory
    monkeypatch.setattr(budget, "available_memory", lambda: plain.memory * 2)
    check_run(spec, sched, 1000, None)
    with pytest.raises(ConfigError, match=r"record: .*record=False"):
        check_run(spec, sched, 1000, None, record=True)


def test_old_mac_line_ends_in_pieces_and_endless_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cr.ras"
    path.write_bytes(b"".join(f"0.{k:03d} {k % 7}\r".encode() for k in range(300)))
    whole = read_ras_data(path)
    monkeypatch.setattr(ras, "CHUNK_BYTES", 50)
    pieces = read_ras_data(path)
    np.testing.assert_array_equal(whole.lines, pieces.lines)
    np.testing.assert_array_equal(whole.ids, pieces.ids)
    assert whole.lines[-1] == 300
    monkeypatch.setattr(ras, "MAX_LINE_BYTES", 1000)
    long = tmp_path / "long.ras"
    long.write_bytes(b"0.1 1\n" + b"9" * 5000)
    with pytest.raises(InputFileError, match="a line longer than"):
        read_ras_data(long)
