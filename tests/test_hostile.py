"""Hostile files (issue 14, item 5): NIR/HDF5 files that reach outside themselves or expand to
gigabytes, checkpoints whose fields lie, devices given as files. Each is a one-line error, found
before any large read or write."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error

from superspike.cli import main
from superspike.errors import InputFileError
from superspike.io import load_weights
from superspike.network import Network, NetworkSpec
from superspike.run.checkpoint import CHECKPOINT, MAX_RECENT

TINY = ["--task", "timing", "--burn-in", "0", "--block-duration", "0.5", "-q"]


# -- devices and pipes ------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("option", ["--init-weights", "--input"])
def test_a_device_is_refused_before_it_is_read(option: str, tmp_path: Path, capsys) -> None:
    args = ["train", option, "/dev/zero", "-q"]
    if option == "--input":
        (tmp_path / "t.ras").write_text("0.1 0\n")
        args = ["train", "--input", "/dev/zero", "--target", tmp_path / "t.ras", "-q"]
    one_line_error(capsys, args, "/dev/zero: is not a regular file")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "w.npz"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file"):
        load_weights(fifo, {"input-output": (2, 2)}, {})


# -- NIR / HDF5 ------------------------------------------------------------------------------------------

WEIGHT = "node/nodes/input-output/weight"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("nir")
    from superspike.outputs.nir import write_nir

    spec = NetworkSpec.chain(4, (), 3)
    path = tmp_path_factory.mktemp("nir") / "ok.nir"
    write_nir(Network.initialize(spec, 1, 0.1), path)
    return path


def _hostile(src: Path, dst: Path, kind: str) -> Path:
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as fh:
        shape, dtype = fh[WEIGHT].shape, fh[WEIGHT].dtype
        if kind == "external-storage":
            del fh[WEIGHT]
            secret = dst.with_suffix(".secret")
            np.full(int(np.prod(shape)), 0.01, dtype).tofile(secret)
            fh.create_dataset(WEIGHT, shape=shape, dtype=dtype, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        elif kind == "external-link":
            del fh[WEIGHT]
            fh[WEIGHT] = h5py.ExternalLink(str(src), "/" + WEIGHT)
        elif kind == "soft-link":
            del fh[WEIGHT]
            fh[WEIGHT] = h5py.SoftLink("/node/nodes/input-output/bias")
        elif kind == "virtual":
            del fh[WEIGHT]
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(str(src), WEIGHT, shape=shape)
            fh.create_virtual_dataset(WEIGHT, layout)
        elif kind == "bomb":  # 4.8 GB of fill values in a file of a few kB
            fh.create_dataset(
                "node/nodes/input-output/metadata/pad",
                shape=(600_000_000,),
                dtype="f8",
                chunks=(1_000_000,),
                compression="gzip",
                fillvalue=0.0,
            )
    return dst


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("external-storage", "keeps its data in another file"),
        ("external-link", "is a link to another file"),
        ("soft-link", "is a soft link"),
        ("virtual", "is a virtual dataset"),
        ("bomb", "exceed"),
    ],
)
def test_hostile_nir_files_are_refused(exported: Path, tmp_path: Path, kind: str, message: str) -> None:
    from superspike.outputs.nir import network_from_nir, read_nir

    bad = _hostile(exported, tmp_path / f"{kind}.nir", kind)
    assert bad.stat().st_size < 200_000
    with pytest.raises(InputFileError, match=message):
        read_nir(bad)
    with pytest.raises(InputFileError, match=message):
        network_from_nir(bad, NetworkSpec.chain(4, (), 3))


def test_the_size_cap_follows_the_network(exported: Path, tmp_path: Path) -> None:
    import h5py

    from superspike.outputs.nir import network_from_nir, read_nir

    padded = tmp_path / "padded.nir"
    shutil.copy(exported, padded)
    with h5py.File(padded, "r+") as fh:  # 160 MB of fill values: under the file cap, over the network's
        fh.create_dataset("node/metadata/pad", shape=(20_000_000,), dtype="f8", chunks=(1_000_000,), fillvalue=0.0)
    read_nir(padded)  # the file alone is acceptable
    with pytest.raises(InputFileError, match="exceed"):
        network_from_nir(padded, NetworkSpec.chain(4, (), 3))


def test_a_clean_nir_file_still_loads(exported: Path) -> None:
    from superspike.outputs.nir import network_from_nir

    net, _ = network_from_nir(exported, NetworkSpec.chain(4, (), 3))
    assert net.weights["input-output"].shape == (4, 3)


def test_cli_init_from_a_hostile_nir_is_one_line(exported: Path, tmp_path: Path, capsys) -> None:
    bad = _hostile(exported, tmp_path / "x.nir", "external-storage")
    one_line_error(capsys, ["train", "--task", "timing", "--init-from", bad, "-q"], "another file")


# -- checkpoints ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run of the timing task, finished; its checkpoint is rewritten by the tests."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    main(["train", *TINY, "--blocks", "2", "--out", str(out)])
    return out


def _tampered(finished: Path, tmp_path: Path, **changes: object) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with np.load(run / CHECKPOINT) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["progress/finished"] = np.array(0)  # the resume goes past the "already complete" exit
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(run / CHECKPOINT, **arrays)
    return run


def test_the_untampered_checkpoint_resumes(finished: Path, tmp_path: Path, capsys) -> None:
    run = _tampered(finished, tmp_path)
    main(["train", "--resume", str(run), "-q"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("progress__spk_output", np.array(10**11), "spike records, but the checkpoint counts 100000000000"),
        ("progress__spk_output", np.array(-5), "spk_output = -5 lies outside"),
        ("progress__spk_input", np.array(3.5), "spk_input must be an integer"),
        ("progress__curve_rows", np.array(10**6), "curve_rows = 1000000 lies outside"),
        ("progress__curve_rows", np.array([1, 2]), "progress/curve_rows' has shape (2,)"),
        ("progress__wall", np.array(np.nan), "'progress/wall' holds NaN"),
        ("progress__wall", np.array(-2.0), "wall must be a non-negative number"),
        ("progress__finished", np.array(7), "finished = 7 lies outside 0..1"),
        ("progress__last_line", np.array(-1), "last_line = -1 lies outside"),
        ("progress__tracker_counts", np.array([-3]), "tracker_counts must be non-negative"),
        ("progress__recent_steps", np.array([1, 2]), "recent_steps and recent_ids"),
        ("progress__recent_ids", None, "progress lacks recent_ids"),
        ("progress__extra", np.array(1), "'progress/extra' is not a progress field"),
        ("state__clock", np.array(-7), "clock -7 is negative"),
        ("state__clock", np.array(10**12), "clock 1000000000000 lies outside"),
        ("state__group/output/u", np.zeros(5, np.float32), "'state/group/output/u' has shape (5,)"),
        ("state__group/output/u", np.array(["a"]), "has dtype <U1"),
        ("progress__recent_ids", np.zeros(MAX_RECENT + 1, np.int8), "a length of at most"),
        ("state__group/output/u", np.full(1, np.nan, np.float32), "'state/group/output/u' holds NaN"),
        ("state__group/output/ref", np.full(1, -4, np.int32), "'state/group/output/ref' holds negative"),
    ],
)
def test_lying_checkpoints_are_one_line_errors(
    finished: Path, tmp_path: Path, capsys, key: str, value: object, message: str
) -> None:
    run = _tampered(finished, tmp_path, **{key: value})
    sizes = {p.name: p.stat().st_size for p in run.glob("*.spk")}
    one_line_error(capsys, ["train", "--resume", run], message)
    assert {p.name: p.stat().st_size for p in run.glob("*.spk")} == sizes  # nothing written


def test_a_missing_spike_file_at_resume(finished: Path, tmp_path: Path, capsys) -> None:
    run = _tampered(finished, tmp_path)
    (run / "input.spk").unlink()  # the input always has spikes (the output of this short run may have none)
    one_line_error(capsys, ["train", "--resume", run], "input.spk: holds 0 spike records")
    assert not (run / "input.spk").exists()  # refused before the files are opened


def test_a_compressed_checkpoint_bomb_is_refused_from_its_headers(finished: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with np.load(run / CHECKPOINT) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["progress/recent_steps"] = np.zeros(200_000_000, np.int8)  # 200 MB, compressed to 200 kB
    np.savez_compressed(run / CHECKPOINT, **arrays)
    assert (run / CHECKPOINT).stat().st_size < 2_000_000
    one_line_error(capsys, ["train", "--resume", run], "recent_steps", "at most")


def test_an_object_array_in_a_checkpoint_is_not_unpickled(finished: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with np.load(run / CHECKPOINT) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["progress/wall"] = np.array([{"x": 1}], dtype=object)
    np.savez(run / CHECKPOINT, **arrays)
    one_line_error(capsys, ["train", "--resume", run], "numbers only")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["make-target", "{f}"], "p.png"),
        (["sweep", "{f}", "--out", "{d}"], "s.toml"),
        (["train", "--task", "timing", "--init-from", "{f}", "-q"], "g.nir"),
        (["train", "--config", "{f}", "-q"], "c.toml"),
        (["convert", "{f}", "{d}/x.ras"], "s.spk"),
        (["convert", "{f}", "{d}/x.ras"], "s.npz"),
    ],
)
def test_fifos_are_refused_by_every_reader(tmp_path: Path, capsys, command: list[str], name: str) -> None:
    import os

    if name.endswith(".nir"):
        pytest.importorskip("nir")
    fifo = tmp_path / name
    os.mkfifo(fifo)
    args = [a.format(f=fifo, d=tmp_path / "out") for a in command]
    one_line_error(capsys, args, "not a regular file")
