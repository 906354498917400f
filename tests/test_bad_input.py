"""Every user mistake ends with one line naming the file and line (or key) and the problem,
exit status 2, and no traceback; nothing is dropped or altered silently.

Most cases run the command line in-process (``superspike.cli.main``); a few run it as a real
subprocess to show that no traceback reaches the terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from superspike.cli import main
from superspike.errors import ConfigError, InputFileError, UserError
from superspike.io import SPK_TAG, read_ras, read_spk, save_weights
from superspike.io.ras import MAX_ID
from superspike.run.config import RunConfig, config_from_dict, load_config
from superspike.run.train import build_task
from superspike.task import load_raster
from superspike.task.raster import MAX_INFERRED_GROUP, check_grid

QUICK = ["--blocks", "0", "--burn-in", "0.5", "--block-duration", "0.5", "--quiet"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run ``superspike ARGS`` in-process: (exit status, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code, capsys.readouterr().err


def assert_one_line(err: str, *fragments: str) -> None:
    """stderr is exactly one line, ``error: ...``, holding every fragment; no traceback."""
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A valid input (10 neurons) and target (2 neurons) pair on a 0.1 s grid."""
    inp, tgt = tmp_path / "in.ras", tmp_path / "tg.ras"
    inp.write_text("".join(f"{0.001 * (k + 1):.4f} {k % 10}\n" for k in range(30)))
    tgt.write_text("0.0200 0\n0.0500 1\n")
    return inp, tgt


def train_args(inp: Path, tgt: Path, *more: str) -> list[str]:
    return ["train", "--input", inp, "--target", tgt, "--grid", "0.1", *QUICK, *more]


# --- ras: each malformed file, through the reader and through the command line -----------------

BAD_RAS = [
    # (content, line, message fragment)
    ("", None, "no spikes"),
    ("# neurons 3\n\n# only comments\n", None, "no spikes"),
    ("0.1 1\nabc 2\n", 2, "time 'abc' is not a number"),
    ("0.1 1\n0.2 x7\n", 2, "neuron id 'x7' is not a number"),
    ("0.1 1\n0.2\n", 2, "expected 2 columns (time in s, neuron id), found 1"),
    ("0.1 1\n\n0.2 1 5\n", 3, "expected 2 columns (time in s, neuron id), found 3"),
    ("0.1 1\n0.2 1 # note\n", 2, "found 4"),
    ("0.1 1\n-0.2 1\n", 2, "time -0.2 is negative"),
    ("0.1 1\nnan 1\n", 2, "time nan is NaN"),
    ("0.1 1\ninf 1\n", 2, "time inf is infinite"),
    ("1e400 1\n", 1, "time 1e400 is infinite"),
    ("0.1 -1\n", 1, "neuron id -1 is negative"),
    ("0.1 2.5\n", 1, "neuron id 2.5 is not an integer"),
    ("0.1 3.0000000000000001\n", 1, "is not an integer"),
    ("0.1 nan\n", 1, "neuron id nan is not an integer"),
    ("0.1 99999999999999999999\n", 1, f"neuron id 99999999999999999999 is too large (at most {MAX_ID})"),
    ("0.1 4294967296\n", 1, "is too large"),
    ("0.1 1e300\n", 1, "is too large"),
    ("0.1 ٣\n", 1, "is not a number"),
    ("0.1 1_0\n", 1, "is not a number"),
    ("# neurons -2\n0.1 1\n", 1, "header: 'neurons -2' is not a positive integer"),
    ("# neurons 3\n# neurons 4\n0.1 1\n", 2, "header: neurons 4 contradicts neurons 3 on line 1"),
    ("# time grid 0s\n0.1 1\n", 1, "header: 'time grid 0s' is not a positive number of seconds"),
    ("# time grid 1.2.3s\n0.1 1\n", 1, "is not a positive number of seconds"),
    ("0.1 1\r\n0.2 1\r\n\r\nbad 1\r\n", 4, "time 'bad'"),  # CRLF: lines counted as an editor does
    ("0.1 1\r0.2 1\rbad 1\r", 3, "time 'bad'"),  # old Mac CR
    ("\ufeff0.1 1\n0.2 -4\n", 2, "negative"),
    ("0.1 1\n\x00\x01\x02", None, "not a text file"),
    (b"0.1 1\n0.2 \xff\n", 2, "neuron id '\\xff' is not a number"),  # not UTF-8
    (b"# caf\xe9 (latin-1)\n0.1 1\n0.2 \xe9\n", 3, "neuron id '\\xe9' is not a number"),
]


@pytest.mark.parametrize(("content", "line", "fragment"), BAD_RAS)
def test_bad_ras_is_one_line_naming_file_and_line(
    tmp_path: Path, files: tuple[Path, Path], capsys, content: str | bytes, line: int | None, fragment: str
) -> None:
    bad = tmp_path / "bad.ras"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    where = f"{bad}:{line}: " if line else f"{bad}: "
    with pytest.raises(InputFileError) as exc:
        read_ras(bad)
    assert str(exc.value).startswith(where) and fragment in str(exc.value)
    inp, tgt = files
    for args in (train_args(bad, tgt), train_args(inp, bad)):
        code, err = run_cli(args, capsys)
        assert code == 2
        assert_one_line(err, where, fragment)


def test_ras_encodings_and_line_ends_are_read_alike(tmp_path: Path) -> None:
    want_t, want_i = [0.1, 0.25, 1.0], [3, 0, 7]
    text = "# neurons 8, time grid 2s\n0.1 3\n0.25 0\n1.0 7\n"
    variants = {
        "lf": text.encode(),
        "crlf": text.replace("\n", "\r\n").encode(),
        "cr": text.replace("\n", "\r").encode(),
        "bom": b"\xef\xbb\xbf" + text.encode(),
        "utf16": text.encode("utf-16"),  # e.g. PowerShell's redirection
        "tabs": text.replace(" ", "\t").encode(),
        "latin1 comment": ("# café\n" + text).encode("latin-1"),
    }
    for name, data in variants.items():
        path = tmp_path / f"{name.replace(' ', '_')}.ras"
        path.write_bytes(data)
        t, i, header = read_ras(path)
        np.testing.assert_array_equal(t, want_t, err_msg=name)
        np.testing.assert_array_equal(i, want_i, err_msg=name)
        assert (header.neurons, header.grid) == (8, 2.0), name


def test_integral_decimal_ids_are_read_as_integers(tmp_path: Path) -> None:
    """Decided: an id written as an integral decimal (numpy.savetxt's 3.000000e+00) is that integer."""
    path = tmp_path / "f.ras"
    path.write_text("0.1 3.0\n0.2 3.000000000000000000e+00\n0.3 +4\n0.4 007\n0.5 1e1\n")
    np.testing.assert_array_equal(read_ras(path)[1], [3, 3, 4, 7, 10])


def test_missing_file_directory_and_binary(tmp_path: Path, files: tuple[Path, Path], capsys) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_ras(tmp_path / "absent.ras")
    with pytest.raises(InputFileError, match="is a directory"):
        read_ras(tmp_path)
    inp, _ = files
    code, err = run_cli(train_args(inp, tmp_path / "absent.ras"), capsys)
    assert code == 2
    assert_one_line(err, f"{tmp_path / 'absent.ras'}: no such file")
    code, err = run_cli(train_args(inp, tmp_path), capsys)
    assert code == 2
    assert_one_line(err, "is a directory")


def test_unreadable_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.ras"
    path.write_text("0.1 1\n")

    real_open = open

    def denied(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(InputFileError, match=r"f\.ras: permission denied"):
        read_ras(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user to deny reading")
def test_permission_denied_really(tmp_path: Path, files: tuple[Path, Path], capsys) -> None:
    inp, tgt = files
    tgt.chmod(0)
    try:
        code, err = run_cli(train_args(inp, tgt), capsys)
    finally:
        tgt.chmod(0o644)
    assert code == 2
    assert_one_line(err, f"{tgt}: permission denied")


# --- ras: ids outside the group, the loop grid --------------------------------------------------


def test_target_id_outside_the_output_group_names_both_ways_out(files: tuple[Path, Path], capsys) -> None:
    inp, tgt = files
    tgt.write_text("0.0200 1\n0.0300 2\n0.0500 2\n")  # 1-based ids, as in the Oxford target
    code, err = run_cli(train_args(inp, tgt, "--nout", "2"), capsys)
    assert code == 2
    assert_one_line(err, f"{tgt}:2: target id 2 is outside the output group of 2 neurons", "2 such spikes",
                    "--id-offset N", "--drop-out-of-range")  # fmt: skip
    # the two ways out: shift every id, or drop them and say how many
    cfg = RunConfig(input=str(inp), target=str(tgt), nout=2, grid=0.1, id_offset=-1)
    task, _, notes = build_task(cfg)
    np.testing.assert_array_equal(task.target.ids, [0, 1, 1])
    assert notes == []
    task, _, notes = build_task(RunConfig(input=str(inp), target=str(tgt), nout=2, grid=0.1, drop_out_of_range=True))
    np.testing.assert_array_equal(task.target.ids, [1])
    assert len(notes) == 1 and "dropped 2 target spikes" in notes[0]


def test_offset_that_pushes_ids_below_zero_shows_file_id_and_offset(files: tuple[Path, Path]) -> None:
    _, tgt = files
    with pytest.raises(InputFileError) as exc:
        load_raster(tgt, 2, id_offset=-1)
    assert f"{tgt}:1: target id -1 (0 in the file, offset -1) is outside" in str(exc.value)


def test_header_declares_the_group_size(tmp_path: Path) -> None:
    path = tmp_path / "t.ras"
    path.write_text("# neurons 3, time grid 0.5s\n0.1 0\n0.2 3\n")
    with pytest.raises(InputFileError) as exc:
        load_raster(path, None)
    assert f"{path}:3: target id 3 is outside the output group of 3 neurons" in str(exc.value)
    assert "'neurons 3' in the file's header" in str(exc.value)
    raster, header, _ = load_raster(path, 4)  # an explicit size wins over the header
    assert raster.n == 4 and header.grid == 0.5


def test_input_id_outside_the_input_group_points_to_nin(files: tuple[Path, Path], capsys) -> None:
    inp, tgt = files
    code, err = run_cli(train_args(inp, tgt, "--nin", "5"), capsys)
    assert code == 2
    assert_one_line(err, f"{inp}:6: input id 5 is outside the input group of 5 neurons", "pass a larger --nin")
    assert "--id-offset" not in err  # it applies to target ids only


def test_a_huge_id_does_not_silently_make_a_huge_group(tmp_path: Path, files: tuple[Path, Path], capsys) -> None:
    inp, _ = files
    tgt = tmp_path / "huge.ras"
    tgt.write_text(f"0.01 0\n0.02 {MAX_INFERRED_GROUP}\n")
    code, err = run_cli(train_args(inp, tgt), capsys)
    assert code == 2
    assert_one_line(err, f"{tgt}:2: target id {MAX_INFERRED_GROUP} would make a group of", "--nout")


def test_spikes_beyond_the_loop_grid(files: tuple[Path, Path], capsys) -> None:
    inp, tgt = files
    tgt.write_text("0.0200 0\n0.0300 9\n0.0500 1\n0.1000 1\n0.2500 0\n")
    # line 3 of the file after a dropped line 2: the message must still name line 4
    code, err = run_cli(train_args(inp, tgt, "--nout", "2", "--drop-out-of-range"), capsys)
    assert code == 2
    assert_one_line(err, f"{tgt}:4: spike at 0.100000 s lies beyond the loop grid of 0.1 s", "2 such spikes",
                    "--grid")  # fmt: skip
    raster, _, _ = load_raster(tgt, 10)
    with pytest.raises(InputFileError, match=r"tg\.ras:4: "):
        check_grid(raster, 0.1, 1e-4)
    check_grid(raster, 0.26, 1e-4)


# --- spk ----------------------------------------------------------------------------------------


def _spk(path: Path, records: list[tuple[int, int]], extra: bytes = b"") -> Path:
    path.write_bytes(np.array(records, dtype="<u4").tobytes() + extra)
    return path


BAD_SPK = [
    # (records, extra bytes, read_spk keyword arguments, message)
    ([], b"", {}, "too short for an spk header (0 bytes"),
    ([], b"\x01\x02\x03", {}, "too short"),
    ([(10000, 12345)], b"", {}, f"record 0: wrong format tag 12345 (an spk file has {SPK_TAG})"),
    ([(0, SPK_TAG)], b"", {}, "record 0: the header says 0 steps per second"),
    ([(1000, SPK_TAG)], b"", {"dt": 1e-4}, "record 0: header says 1000 steps per second, the run has 10000"),
    ([(10000, SPK_TAG), (5, 1)], b"\x06\x00\x00", {}, "record 2 is truncated"),
    ([(10000, SPK_TAG), (5, 1), (7, 0), (6, 1)], b"", {}, "record 3: step 6 comes after step 7"),
    ([(10000, SPK_TAG), (5, 1), (7, 200)], b"", {"n_neurons": 200}, "record 2: neuron id 200 is outside the group"),
    ([(10000, SPK_TAG), (5, 1), (200000, 0)], b"", {"max_step": 199999}, "record 2: time step 200000 is after"),
]


@pytest.mark.parametrize(("records", "extra", "kwargs", "fragment"), BAD_SPK)
def test_bad_spk_names_file_and_record(
    tmp_path: Path, records: list, extra: bytes, kwargs: dict, fragment: str
) -> None:
    path = _spk(tmp_path / "x.spk", records, extra)
    with pytest.raises(InputFileError) as exc:
        read_spk(path, **kwargs)
    assert str(exc.value).startswith(f"{path}: ") and fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_spk_missing_or_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_spk(tmp_path / "absent.spk")
    with pytest.raises(InputFileError, match="is a directory"):
        read_spk(tmp_path)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished run directory (a few seconds)."""
    root = tmp_path_factory.mktemp("run")
    inp, tgt = root / "in.ras", root / "tg.ras"
    inp.write_text("".join(f"{0.001 * (k + 1):.4f} {k % 10}\n" for k in range(30)))
    tgt.write_text("0.0200 0\n0.0500 1\n")
    main(["train", "--input", str(inp), "--target", str(tgt), "--grid", "0.1", "--blocks", "1", "--burn-in", "0.5",
          "--block-duration", "0.5", "--quiet", "--out", str(root / "out")])  # fmt: skip
    assert (root / "out" / "output.spk").is_file()
    return root / "out"


def test_resume_with_a_damaged_spk_file_is_one_line(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    spk = run / "output.spk"
    data = bytearray(spk.read_bytes())
    data[4:8] = b"\x00\x00\x00\x00"  # the tag
    spk.write_bytes(bytes(data))
    code, err = run_cli(["train", "--resume", run, "--quiet"], capsys)
    assert code == 2
    assert_one_line(err, f"{spk}: cannot append: not an spk file")


def test_existing_output_directory_is_refused_unless_forced(finished_run: Path, tmp_path: Path, capsys) -> None:
    inp, tgt = finished_run.parent / "in.ras", finished_run.parent / "tg.ras"
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    code, err = run_cli(train_args(inp, tgt, "--out", run), capsys)
    assert code == 2
    assert_one_line(err, f"{run} exists; pass --resume to continue it or --force to overwrite it")
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    code, err = run_cli(train_args(inp, tgt, "--out", other, "--force"), capsys)
    assert code == 2
    assert_one_line(err, "is not a superspike run directory (no superspike-run.json); refusing to empty it")
    assert (other / "thesis.tex").exists()
    code, err = run_cli(train_args(inp, tgt, "--out", other / "thesis.tex"), capsys)
    assert code == 2
    assert_one_line(err, "thesis.tex")


# --- npz ----------------------------------------------------------------------------------------


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


W0 = np.zeros((10, 2), np.float32)
W = "w/input-output"  #: the one connection of the files' network (10 inputs straight to 2 outputs)

BAD_NPZ = [
    ({}, "array 'w/input-output' is missing (the archive has: none)"),
    ({W: np.zeros((2, 10), np.float32)}, "array 'w/input-output' has shape (2, 10), expected (10, 2)"),
    ({W: np.zeros((10, 2))}, "array 'w/input-output' has dtype float64, expected float32"),
    ({W: np.zeros((10, 2), np.int32)}, "array 'w/input-output' has dtype int32, expected float32"),
    ({W: np.full((10, 2), None, dtype=object)}, "array 'w/input-output' is an object array; refusing to unpickle"),
    ({W: W0, "w/skip": W0}, "array 'w/skip' does not belong to this network (expects w/<connection> for input-output"),
    ({W: W0, "weights": W0}, "array 'weights' does not belong"),
    (
        {W: np.full((10, 2), np.nan, np.float32)},
        "array 'w/input-output' holds NaN or infinite values (first at (0, 0))",
    ),
    # the earlier chain form
    ({"w0": np.zeros((2, 10), np.float32)}, "array 'w0' has shape (2, 10), expected (10, 2)"),
    (
        {"w0": W0, "w1": W0},
        "array 'w1' does not belong to a chain network of 1 connections (expects w0; feedback none)",
    ),
    ({"w0": np.full((10, 2), None, dtype=object)}, "array 'w0' is an object array; refusing to unpickle it"),
]


@pytest.mark.parametrize(("arrays", "fragment"), BAD_NPZ)
def test_bad_npz_names_file_and_array(
    tmp_path: Path, files: tuple[Path, Path], capsys, arrays: dict, fragment: str
) -> None:
    path = _npz(tmp_path / "w.npz", **arrays)
    code, err = run_cli(train_args(*files, "--init-weights", path), capsys)
    assert code == 2
    assert_one_line(err, f"{path}: {fragment}")


def test_not_an_npz_archive(tmp_path: Path, files: tuple[Path, Path], capsys) -> None:
    cases = {"single.npy": None, "empty.npz": b"", "text.npz": b"w0 = [1, 2]\n"}
    for name, data in cases.items():
        path = tmp_path / name
        if data is None:
            np.save(path, W0)
        else:
            path.write_bytes(data)
        code, err = run_cli(train_args(*files, "--init-weights", path), capsys)
        assert code == 2
        assert_one_line(err, f"{path}: ")
    assert (
        "single .npy array, not an npz archive"
        in run_cli(train_args(*files, "--init-weights", tmp_path / "single.npy"), capsys)[1]
    )


def test_good_weights_are_taken_as_they_are(tmp_path: Path, files: tuple[Path, Path]) -> None:
    from superspike.run.train import build_network

    w = np.linspace(-0.01, 0.01, 20, dtype=np.float32).reshape(10, 2)
    save_weights(tmp_path / "w.npz", {"input-output": w})
    _, resolved, _ = build_task(RunConfig(input=str(files[0]), target=str(files[1]), grid=0.1))
    net, _ = build_network(replace(resolved, init_weights=str(tmp_path / "w.npz")))
    np.testing.assert_array_equal(net.weights["input-output"], w)


# --- configuration -----------------------------------------------------------------------------


def CONN(name: str, pre: str, post: str, extra: str = "") -> str:  # noqa: N802 - reads like the table it writes
    """A [[network.connection]] table."""
    return f'[[network.connection]]\nname = "{name}"\npre = "{pre}"\npost = "{post}"\n{extra}'


#: a valid graph, input -> h (5) -> output, to be broken one key at a time
NET = (
    '[[network.group]]\nname = "input"\nkind = "input"\n'
    '[[network.group]]\nname = "h"\nn = 5\n'
    '[[network.group]]\nname = "output"\ntarget = true\n'
    + CONN("input-h", "input", "h")
    + CONN("h-output", "h", "output")
)

BAD_TOML = [
    # (toml text, message fragment); the file name is checked too
    ("bogus = 1\n", "bogus: unknown key; valid keys: block_duration, blocks, burn_in"),
    ("blocks = 2.5\n", "blocks: must be an integer, got 2.5"),
    ("blocks = true\n", "blocks: must be an integer, got True"),
    ('eta = "fast"\n', "eta: must be a number, got 'fast'"),
    ("hidden = 256\n", "hidden: must be a list of integers, got 256"),
    ('hidden = [16, "a"]\n', "hidden: layer sizes must be positive integers, got 'a'"),
    ("hidden = [0]\n", "hidden: layer sizes must be positive integers, got 0"),
    ('regularizer = "yes"\n', "regularizer: must be true or false"),
    ("nin = -3\n", "nin: must be a positive number of neurons, got -3"),
    ("neuron = 3\n", "neuron: must be a table"),
    ("[neuron]\ntau = 0.01\n", "neuron.tau: unknown key; valid keys: dt, u_rest, threshold, tau_mem"),
    ('[rule]\nbeta = "steep"\n', "rule.beta: must be a number, got 'steep'"),
    ("[neuron]\ntau_mem = 0\n", "neuron.tau_mem: must be a positive number, got 0"),
    ("[neuron]\ntau_syn = -5e-3\n", "neuron.tau_syn: must be a positive number"),
    ("[neuron]\ntau_mem = 1e-4\n", "neuron.tau_mem: must be larger than dt = 0.0001 s"),
    ("[neuron]\ndt = 0.02\n", "neuron.tau_mem: must be larger than dt = 0.02 s"),
    ("[neuron]\nthreshold = nan\n", "neuron.threshold: must be a finite number, got nan"),
    ("[rule]\ntau_rise = 5e-5\n", "rule.tau_rise: must be larger than the time step neuron.dt = 0.0001 s"),
    ("[rule]\ntau_rise = 0.01\n", "rule.tau_rise: must be smaller than rule.tau_decay"),
    ("[rule]\nupdate_interval = 0.00015\n", "rule.update_interval: must be a whole number of time steps"),
    ("block_duration = 0.75\n", "block_duration: must be a whole number of update intervals (0.5 s), got 0.75"),
    ("burn_in = 1.2\n", "burn_in: must be a whole number of update intervals"),
    ("block_duration = 0\n", "block_duration: must be positive"),
    ("blocks = -1\n", "blocks: must not be negative, got -1"),
    ("reg_tau = -0.1\n", "reg_tau: must be positive"),
    ("feedback_delay = nan\n", "feedback_delay: must be a finite number, got nan"),
    ('feedback = "mirror"\n', "feedback: must be one of symmetric, random, uniform, direct, got 'mirror'"),
    ('optimizer = "adam"\n', "optimizer: must be one of rmaxprop, rmsprop, fixed, got 'adam'"),
    ("seed = -3\n", "seed: must be an integer in 0..2**63-1, got -3"),
    ("id_offset = 99999999999\n", "id_offset: must lie in -2**32..2**32"),
    ("grid = -1.0\n", "grid: must be a positive number of seconds, got -1.0"),
    # the [network] table (docs/FORMATS.md)
    (NET + CONN("skip", "x", "output"), "network.connection.skip.pre: no group named 'x'; groups: input, h, output"),
    (
        NET + CONN("back", "h", "input"),
        "network.connection.back.post: 'input' is an input group; connections end",
    ),
    (NET + '[[network.connection]]\npost = "h"\n', "network.connection[3].pre: missing"),
    (NET + CONN("skip", "input", "output", "w0 = -1\n"), "network.connection.skip.w0: must be a non-negative number"),
    (NET + CONN("skip", "input", "output", 'plastic = "yes"\n'), "network.connection.skip.plastic: must be true or"),
    (
        NET + CONN("skip", "input", "output", "delay = 3\n"),
        "network.connection.skip.delay: unknown key; valid keys",
    ),
    (NET.replace("n = 5", "n = 0"), "network.group.h.n: must be a number of neurons in 1..1000000, got 0"),
    (NET.replace("n = 5\n", ""), "network.group.h.n: a hidden group needs a size"),
    (NET.replace("n = 5", 'kind = "izhikevich"'), "network.group.h.kind: must be one of input, lif, got 'izhikevich'"),
    (NET.replace("n = 5", "tau = 5"), "network.group.h.tau: unknown key; valid keys: name, n, kind, target, neuron"),
    (NET.replace('"h"', '"input"', 1), "network.group: two groups are named 'input'"),
    (
        NET.replace("target = true", "target = false\nn = 2"),
        "network.group: the network needs at least one output",
    ),
    (
        NET + "[network.group.neuron]\ndt = 1e-3\n",
        "network.group.output.neuron.dt: is the network's (set it in",
    ),
    (NET + "[network.group.neuron]\ntau_mem = 1e-5\n", "network.group.output.neuron.tau_mem: must be larger than dt"),
    (NET + "[network.group.neuron]\ntau = 1\n", "network.group.output.neuron.tau: unknown key; valid keys: u_rest"),
    (NET + CONN("h-output", "h", "output"), "network.connection: two connections are named 'h-output'"),
    (
        NET + '[[network.connection]]\npre = "h"\npost = "output"\n',
        "network.connection.h-output: a second connection from h to output: give each a name",
    ),
    ('[network.group]\nname = "x"\n', "network.group: must be a list of tables: write each as [[network.group]]"),
    ("[network]\nlayers = [3]\n", "network.layers: unknown key; a [network] table has [[network.group]] and"),
    ("hidden = [4]\n" + NET, "hidden: describes a chain, but the network is given as a graph ([network])"),
    ("recurrent = true\n" + NET, "recurrent: describes a chain, but the network is given as a graph ([network])"),
    (
        'feedback = "symmetric"\n' + NET.replace(CONN("h-output", "h", "output"), CONN("h-h", "h", "h")),
        "network.connection.input-h: is plastic, but its post group 'h' receives no error",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_TOML)
def test_bad_configuration_names_file_and_key(
    tmp_path: Path, files: tuple[Path, Path], capsys, text: str, fragment: str
) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {exc.value.key}: {exc.value.problem}"
    code, err = run_cli(["train", "--config", path, *QUICK], capsys)
    assert code == 2
    assert_one_line(err, f"{path}: {fragment}")


def test_invalid_toml_names_the_line(tmp_path: Path, capsys) -> None:
    cases = {"blocks = 3\neta = \n": "run.toml:2: not valid TOML: Invalid value", "[neuron\n": "run.toml:1: not valid"}
    for text, fragment in cases.items():
        path = tmp_path / "run.toml"
        path.write_text(text)
        code, err = run_cli(["train", "--config", path, *QUICK], capsys)
        assert code == 2
        assert_one_line(err, fragment)
    path.write_bytes(b"blocks = 3\n# \xff\n")
    code, err = run_cli(["train", "--config", path], capsys)
    assert code == 2
    assert_one_line(err, "run.toml:2: not UTF-8 text")
    code, err = run_cli(["train", "--config", tmp_path / "absent.toml"], capsys)
    assert_one_line(err, "absent.toml: no such file")
    assert code == 2


def test_command_line_values_are_checked_too(files: tuple[Path, Path], capsys) -> None:
    for args, fragment in (
        (["--block-duration", "0.3"], "block_duration: must be a whole number of update intervals"),
        (["--eta", "nan"], "eta: must be a finite number, got nan"),
        (["--seed", "-1"], "seed: must be an integer"),
        (["--nin", "0"], "Invalid value for '--nin'"),
        (["--hidden", "-4"], "Invalid value for '--hidden'"),
        (["--burn-in", "-1"], "Invalid value for '--burn-in'"),
        (["--bogus"], "No such option"),
    ):
        code, err = run_cli(train_args(*files, *args), capsys)
        assert code == 2, args
        assert_one_line(err, fragment)


def test_python_api_raises_user_errors_too(files: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match=r"neuron\.tau_mem"):
        config_from_dict({"neuron": {"tau_mem": -1.0}})
    with pytest.raises(UserError):
        RunConfig(blocks=-2)


# --- real processes: nothing but one line reaches the terminal ---------------------------------


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [("ras", "time 'oops' is not a number"), ("toml", "neuron.tau_mem: must be larger than dt"), ("npz", "object")],
)
def test_subprocess_prints_one_line_and_exits_2(
    tmp_path: Path, files: tuple[Path, Path], kind: str, fragment: str
) -> None:
    inp, tgt = files
    args = train_args(inp, tgt)
    if kind == "ras":
        tgt.write_text("0.02 0\noops 1\n")
    elif kind == "toml":
        (tmp_path / "c.toml").write_text("[neuron]\ntau_mem = 1e-5\n")
        args += ["--config", tmp_path / "c.toml"]
    else:
        args += ["--init-weights", _npz(tmp_path / "w.npz", w0=np.full((10, 2), None, dtype=object))]
    proc = subprocess.run(
        [sys.executable, "-c", "from superspike.cli import main; main()", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert_one_line(proc.stderr, fragment)
    assert proc.stdout == ""


# --- issue 14: every command, every input: one line, no traceback, no warning before it ------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels (Pillow checks the size when it opens the file)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def _convert_sources(tmp: Path) -> dict[str, tuple[Path, str]]:
    np.save(tmp / "a.npy", np.arange(3))
    (tmp / "a.npy").rename(tmp / "npy.npz")
    _npz(tmp / "str.npz", times=np.array([0.1]), ids=np.array(["a"]))
    _npz(tmp / "big.npz", times=np.array([0.1]), ids=np.array([2**33]))
    _npz(tmp / "dt0.npz", times=np.array([0.1]), ids=np.array([1]), dt=np.array(0.0))
    _npz(tmp / "dtnan.npz", times=np.array([0.1]), ids=np.array([1]), dt=np.array(np.nan))
    _npz(tmp / "dtneg.npz", times=np.array([0.1]), ids=np.array([1]), dt=np.array(-1e-4))
    _npz(tmp / "obj.npz", times=np.array([0.1]), ids=np.array([{}], dtype=object))
    (tmp / "six.spk").write_bytes(b"123456")
    return {
        "npy named npz": (tmp / "npy.npz", "a single .npy array"),
        "string ids": (tmp / "str.npz", "'ids' must hold numbers"),
        "ids >= 2**32": (tmp / "big.npz", "ids must be below 2**32"),
        "dt 0": (tmp / "dt0.npz", "'dt' must be a positive number"),
        "dt nan": (tmp / "dtnan.npz", "'dt' must be a positive number"),
        "dt < 0": (tmp / "dtneg.npz", "'dt' must be a positive number"),
        "object ids": (tmp / "obj.npz", "not a readable npz file"),
        "6-byte spk": (tmp / "six.spk", "too short for an spk header (6 bytes"),
    }


@pytest.mark.parametrize(
    "case", ["npy named npz", "string ids", "ids >= 2**32", "dt 0", "dt nan", "dt < 0", "object ids", "6-byte spk"]
)
@pytest.mark.parametrize("dest", ["x.ras", "x.spk", "x.npz"])
def test_convert_bad_sources_are_one_line(tmp_path: Path, capsys, case: str, dest: str) -> None:
    src, fragment = _convert_sources(tmp_path)[case]
    if case.startswith("dt") and dest != "x.spk":
        return  # the npz's dt matters only for writing spk
    code, err = run_cli(["convert", src, tmp_path / dest], capsys)
    assert code == 2
    assert_one_line(err, str(src), fragment)
    assert not (tmp_path / dest).exists()


@pytest.mark.parametrize("dt", ["nan", "inf", "1e-12", "0", "-1"])
def test_convert_bad_dt_option_is_one_line(tmp_path: Path, files: tuple[Path, Path], capsys, dt: str) -> None:
    code, err = run_cli(["convert", files[0], tmp_path / "x.spk", "--dt", dt], capsys)
    assert code == 2
    assert_one_line(err, "--dt")


def test_plot_with_an_empty_curve_or_unknown_suffix(finished_run: Path, tmp_path: Path, capsys) -> None:
    code, err = run_cli(["plot", finished_run, "-o", tmp_path / "fig.xyz"], capsys)
    assert code == 2
    assert_one_line(err, "fig.xyz: cannot write a figure as 'xyz'")
    code, err = run_cli(["plot", finished_run, "-o", tmp_path / "fig"], capsys)
    assert code == 2
    assert_one_line(err, "without suffix")
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    curve = run / "learning_curve.tsv"
    curve.write_text(curve.read_text().splitlines()[0] + "\n")  # the header alone
    code, err = run_cli(["plot", run], capsys)
    assert code == 2
    assert_one_line(err, "no cost lines yet")
    curve.write_text("")
    code, err = run_cli(["plot", run], capsys)
    assert code == 2
    assert_one_line(err, "learning_curve.tsv")


def test_plot_too_large_names_dpi(finished_run: Path, tmp_path: Path, capsys) -> None:
    code, err = run_cli(["plot", finished_run, "-o", tmp_path / "f.png", "--dpi", "100000"], capsys)
    assert code == 2
    assert_one_line(err, "use a smaller --dpi")
    assert not (tmp_path / "f.png").exists()
    code, err = run_cli(["animate", finished_run, "-o", tmp_path / "a.gif", "--dpi", "100000"], capsys)
    assert code == 2
    assert_one_line(err, "--dpi")
    code, err = run_cli(["animate", finished_run, "-o", tmp_path / "a.png"], capsys)
    assert code == 2
    assert_one_line(err, "name it .gif")


def test_make_target_on_a_decompression_bomb(tmp_path: Path, capsys) -> None:
    png = tmp_path / "bomb.png"
    png.write_bytes(_png_header(100_000, 100_000))
    code, err = run_cli(["make-target", png], capsys)
    assert code == 2
    assert_one_line(err, "bomb.png", "pixels")
    png.write_bytes(_png_header(12_000, 10_000))  # above Pillow's warning limit, below its error limit
    code, err = run_cli(["make-target", png], capsys)
    assert code == 2
    assert_one_line(err, "pixels")


def test_make_input_with_a_step_longer_than_the_pattern(tmp_path: Path, capsys) -> None:
    code, err = run_cli(["make-input", "-o", tmp_path / "x.ras", "--dt", "10"], capsys)
    assert code == 2
    assert_one_line(err, "dt: the time step 10.0 s is longer than the duration 1.0 s")


def test_sweep_file_that_is_not_utf8(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "s.toml"
    bad.write_bytes(b"x\xff\xfe = 1\n")
    code, err = run_cli(["sweep", bad, "--out", tmp_path / "sw"], capsys)
    assert code == 2
    assert_one_line(err, "s.toml", "not UTF-8")


def test_resume_with_a_missing_spike_file(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "output.spk").unlink()
    code, err = run_cli(["train", "--resume", run, "--quiet"], capsys)
    assert code == 2
    assert_one_line(err, "output.spk: holds 0 spike records")


def test_warnings_are_not_printed_before_an_error(tmp_path: Path, capsys, monkeypatch) -> None:
    import warnings

    import superspike.io.convert as conv

    def warn_then_fail(src: object, dst: object, dt: object) -> int:
        np.log(np.zeros(1))  # numpy: RuntimeWarning: divide by zero
        warnings.warn("something odd", UserWarning, stacklevel=1)
        raise UserError(f"{src}: bad")

    monkeypatch.setattr(conv, "convert", warn_then_fail)
    code, err = run_cli(["convert", "a.ras", "b.ras"], capsys)
    assert code == 2
    assert_one_line(err, "a.ras: bad")


def test_warnings_after_success_are_one_line_each(tmp_path: Path, capsys, monkeypatch) -> None:
    import superspike.io.convert as conv

    def warn(src: object, dst: object, dt: object) -> int:
        np.log(np.zeros(1))
        np.log(np.zeros(1))
        return 0

    monkeypatch.setattr(conv, "convert", warn)
    main(["convert", "a.ras", "b.ras"])
    err = capsys.readouterr().err
    assert err == "warning: divide by zero encountered in log\n"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [(["plot", "RUN"], "--dpi or --window"), (["train", "-q"], "--blocks"), (["convert", "a.ras", "b.ras"], "file")],
)
def test_out_of_memory_names_the_cause(monkeypatch, capsys, argv: list[str], fragment: str) -> None:
    import superspike.io.convert as conv
    import superspike.outputs.plots as plots
    import superspike.run.train as train_mod

    def oom(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(plots, "plot_run", oom)
    monkeypatch.setattr(train_mod, "train", oom)
    monkeypatch.setattr(conv, "convert", oom)
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert_one_line(err, "out of memory", fragment)
    assert "use fewer neurons or shorter recordings" not in err


def test_animate_with_a_damaged_spike_file(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "output.spk").write_bytes(b"abcdef")
    code, err = run_cli(["animate", run, "-o", tmp_path / "a.gif"], capsys)
    assert code == 2
    assert_one_line(err, "output.spk: too short for an spk header")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_out_on_a_pseudo_file_system(files: tuple[Path, Path], capsys) -> None:
    code, err = run_cli(train_args(*files, "--out", "/proc/superspike-run"), capsys)
    assert code == 2
    assert "free there" not in err  # /proc reports 0 bytes of 0: not a disk to estimate
    assert_one_line(err, "/proc/superspike-run")


def test_huge_toml_files_are_refused_before_parsing(tmp_path: Path, capsys) -> None:
    from superspike.run.config import MAX_TOML_BYTES

    big = tmp_path / "c.toml"
    with open(big, "wb") as fh:
        fh.truncate(MAX_TOML_BYTES + 10)  # sparse: no disk used
    code, err = run_cli(["train", "--config", big, "-q"], capsys)
    assert code == 2
    assert_one_line(err, "c.toml: is larger than 16 MB")
    code, err = run_cli(["sweep", big, "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert_one_line(err, "larger than 16 MB")


def test_convert_refuses_an_npz_bomb_from_its_headers(tmp_path: Path, capsys, monkeypatch) -> None:
    import superspike.io.convert as conv

    monkeypatch.setattr(conv, "MAX_NPZ_SPIKES", 1000)
    bomb = tmp_path / "b.npz"
    np.savez_compressed(bomb, times=np.zeros(5000), ids=np.zeros(5000, np.int64))
    code, err = run_cli(["convert", bomb, tmp_path / "x.ras"], capsys)
    assert code == 2
    assert_one_line(err, "'times' declares 5000 values")


def test_convert_an_npz_of_foreign_members(tmp_path: Path, capsys) -> None:
    import zipfile

    odd = tmp_path / "odd.npz"
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("times.txt", "hello")
        z.writestr("ids.npy", "garbage")
    code, err = run_cli(["convert", odd, tmp_path / "x.ras"], capsys)
    assert code == 2
    assert_one_line(err, "odd.npz", "not a readable array")
