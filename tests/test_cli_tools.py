"""Tools for making tasks from one's own material: make-target, make-input, convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superspike.cli import main
from superspike.io import read_spk
from superspike.io.convert import convert, read_spikes
from superspike.io.ras import read_ras

DT = 1e-4


def _error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


# -- make-target -------------------------------------------------------------------------------


def _picture(path: Path) -> np.ndarray:
    """A 20 x 10 picture: a black bar in rows 2-3 over columns 1-4, one black pixel at (15, 8)."""
    img = np.full((20, 10), 255, np.uint8)
    img[2:4, 1:5] = 0
    img[15, 8] = 0
    Image.fromarray(img).save(path)
    return img < 128


def test_make_target_turns_dark_pixels_into_spikes(tmp_path: Path) -> None:
    dark = _picture(tmp_path / "pic.png")
    out = tmp_path / "t.ras"
    main(["make-target", str(tmp_path / "pic.png"), "--neurons", "20", "--bins", "10", "--duration", "0.5",
          "--out", str(out)])  # fmt: skip
    times, ids, header = read_ras(out)
    assert header.neurons == 20 and header.grid == 0.5
    bins = np.floor(times / DT).astype(int) // 500  # 10 bins of 50 ms
    rows = 19 - ids  # the top row is the highest id
    assert sorted(zip(rows.tolist(), bins.tolist(), strict=True)) == sorted(map(tuple, np.argwhere(dark).tolist()))


def test_make_target_jitter_is_seeded_and_optional(tmp_path: Path) -> None:
    _picture(tmp_path / "pic.png")
    common = [str(tmp_path / "pic.png"), "--neurons", "20", "--bins", "10", "--duration", "0.5"]
    for name, extra in (("a", []), ("b", []), ("c", ["--seed", "2"]), ("d", ["--no-jitter"])):
        main(["make-target", *common, *extra, "--out", str(tmp_path / f"{name}.ras")])
    a, b, c, d = (read_ras(tmp_path / f"{n}.ras")[0] for n in "abcd")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a), np.sort(c))
    np.testing.assert_allclose(np.floor(d / DT) % 500, 250)  # the middle of each bin


def test_make_target_invert_and_default_bins(tmp_path: Path) -> None:
    dark = _picture(tmp_path / "pic.png")
    main(["make-target", str(tmp_path / "pic.png"), "--neurons", "20", "--invert", "--out", str(tmp_path / "i.ras")])
    times, _, _ = read_ras(tmp_path / "i.ras")
    assert len(times) == (~dark).sum()  # bright pixels; 10 bins from the 20 x 10 aspect ratio


def test_make_target_rejects_what_is_not_an_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "x.png").write_text("not an image")
    assert "not an image" in _error(["make-target", str(tmp_path / "x.png")], capsys)
    assert "no such file" in _error(["make-target", str(tmp_path / "missing.png")], capsys)


# -- make-input --------------------------------------------------------------------------------


def test_make_input_is_frozen_poisson(tmp_path: Path) -> None:
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        main(["make-input", "--neurons", "50", "--rate", "20", "--duration", "2", "--seed", seed,
              "--out", str(tmp_path / f"{name}.ras")])  # fmt: skip
    (ta, ia, header), (tb, ib, _), (tc, _, _) = (read_ras(tmp_path / f"{n}.ras") for n in "abc")
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(ia, ib)
    assert not np.array_equal(ta, tc)
    assert header.neurons == 50 and header.grid == 2.0
    assert 0.8 * 2000 < len(ta) < 1.2 * 2000  # 50 neurons x 20 Hz x 2 s
    assert ta.max() < 2.0 and ia.max() < 50


def test_made_files_train(tmp_path: Path) -> None:
    _picture(tmp_path / "pic.png")
    main(["make-target", str(tmp_path / "pic.png"), "--neurons", "20", "--duration", "0.5",
          "--out", str(tmp_path / "t.ras")])  # fmt: skip
    main(["make-input", "--neurons", "30", "--duration", "0.5", "--out", str(tmp_path / "i.ras")])
    main(["train", "--input", str(tmp_path / "i.ras"), "--target", str(tmp_path / "t.ras"), "--nin", "30",
          "--nout", "20", "--blocks", "1", "--burn-in", "0.5", "--block-duration", "0.5",
          "--out", str(tmp_path / "run"), "--quiet"])  # fmt: skip
    times, _, header = read_ras(tmp_path / "run" / "target.ras")
    assert header.neurons == 20 and header.grid == 0.5 and len(times) == 9


# -- convert -----------------------------------------------------------------------------------


def test_convert_round_trips_keep_every_spike_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(0, 50_000, 500))
    ids = rng.integers(0, 40, 500)
    src = tmp_path / "a.ras"
    (tmp_path / "a.ras").write_text("".join(f"{s * DT:.6f} {i}\n" for s, i in zip(steps, ids, strict=True)))
    want = np.floor(read_ras(src)[0] / DT).astype(int)  # the steps the simulator reads (SPEC 3)
    convert(src, tmp_path / "b.spk")
    s, i = read_spk(tmp_path / "b.spk", dt=DT)
    np.testing.assert_array_equal(s, want)
    np.testing.assert_array_equal(i, ids)
    for a, b in (("b.spk", "c.ras"), ("c.ras", "d.npz"), ("d.npz", "e.spk"), ("b.spk", "f.npz"), ("f.npz", "g.ras")):
        assert convert(tmp_path / a, tmp_path / b) == 500
    for name in ("c.ras", "d.npz", "f.npz", "g.ras"):
        t, i2, _ = read_spikes(tmp_path / name)
        np.testing.assert_array_equal(np.floor(t / DT).astype(int), want, err_msg=name)
        np.testing.assert_array_equal(i2, ids, err_msg=name)
    assert (tmp_path / "e.spk").read_bytes() == (tmp_path / "b.spk").read_bytes()


def test_convert_spk_time_step(tmp_path: Path) -> None:
    (tmp_path / "a.ras").write_text("0.0105 1\n0.0020 0\n")
    convert(tmp_path / "a.ras", tmp_path / "a.spk", dt=1e-3)  # unsorted input, a coarser step
    s, i = read_spk(tmp_path / "a.spk", dt=1e-3)
    assert s.tolist() == [2, 10] and i.tolist() == [0, 1]
    t, _, dt = read_spikes(tmp_path / "a.spk")
    assert dt == 1e-3 and t.tolist() == pytest.approx([0.0025, 0.0105])


def test_convert_command_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.ras").write_text("0.001 0\n")
    main(["convert", str(tmp_path / "a.ras"), str(tmp_path / "a.npz")])
    assert "wrote 1 spikes" in capsys.readouterr().out
    assert "unknown spike file format" in _error(["convert", str(tmp_path / "a.ras"), str(tmp_path / "a.txt")], capsys)
    (tmp_path / "bad.ras").write_text("0.001 0\nzero 1\n")
    err = _error(["convert", str(tmp_path / "bad.ras"), str(tmp_path / "b.spk")], capsys)
    assert "bad.ras:2" in err
    np.savez(tmp_path / "w.npz", w0=np.zeros(3))
    assert "'times' and 'ids'" in _error(["convert", str(tmp_path / "w.npz"), str(tmp_path / "w.ras")], capsys)
