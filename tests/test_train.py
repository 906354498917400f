"""Training runs end to end: any depth learns, controls behave, the run directory is complete
and rerunnable, and target ids outside the output group are an explicit choice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import small_task_files

from superspike.cli import main
from superspike.io import read_spk, save_weights
from superspike.outputs.rundir import read_curve
from superspike.run.config import RunConfig, load_config
from superspike.run.train import train

_files = small_task_files


SHORT = dict(burn_in=1.0, block_duration=2.0, blocks=6, eta=5e-3)


@pytest.mark.parametrize("hidden", [(), (16,), (16, 12)])
def test_networks_of_any_depth_learn(tmp_path: Path, hidden: tuple[int, ...]) -> None:
    inp, tgt = _files(tmp_path)
    cfg = RunConfig(input=str(inp), target=str(tgt), hidden=hidden, w0=0.2, **SHORT)
    res = train(cfg, quiet=True)
    cost = [r["cost"] for r in res.curve]
    assert len(cost) == SHORT["blocks"] + 1
    assert cost[-1] < 0.7 * cost[0], f"cost {cost} should fall by 30 % or more"
    assert list(res.network.weights) == [c.name for c in res.network.spec.connections]
    assert len(res.network.weights) == len(hidden) + 1


def test_fixed_hidden_keeps_hidden_weights(tmp_path: Path) -> None:
    inp, tgt = _files(tmp_path)
    cfg = RunConfig(
        input=str(inp),
        target=str(tgt),
        hidden=(10,),
        fixed_hidden=True,
        w0=0.2,
        burn_in=0.5,
        block_duration=0.5,
        blocks=2,
    )
    res = train(cfg, quiet=True)
    from superspike.run.train import build_network, build_task

    _, resolved, _ = build_task(cfg)
    initial, _ = build_network(resolved)
    assert not res.network.spec.connection("input-hidden0").plastic
    np.testing.assert_array_equal(res.network.weights["input-hidden0"], initial.weights["input-hidden0"])
    assert not np.array_equal(res.network.weights["hidden0-output"], initial.weights["hidden0-output"])


def test_run_directory_is_complete_and_reruns_exactly(tmp_path: Path) -> None:
    inp, tgt = _files(tmp_path)
    out = tmp_path / "run"
    argv = [
        "train",
        "--input",
        str(inp),
        "--target",
        str(tgt),
        "--hidden",
        "8",
        "--burn-in",
        "0.5",
        "--block-duration",
        "0.5",
        "--blocks",
        "3",
        "--seed",
        "7",
        "--out",
        str(out),
        "--quiet",
    ]
    main(argv)
    for name in (
        "config.toml",
        "learning_curve.tsv",
        "input.spk",
        "hidden0.spk",
        "output.spk",
        "weights.npz",
        "target.ras",
    ):
        assert (out / name).exists(), name
    curve = read_curve(out)
    assert {"block", "time_s", "cost", "rate_hidden0_hz", "rate_output_hz"} <= set(curve)
    np.testing.assert_array_equal(curve["block"], [0, 1, 2, 3])
    np.testing.assert_allclose(curve["time_s"], [0.5, 1.0, 1.5, 2.0])
    cfg = load_config(out / "config.toml")
    assert cfg.hidden is None and cfg.seed == 7 and cfg.nin == 40
    # the resolved graph: a chain input -> hidden0 (8) -> output
    assert [(g.name, g.n, g.kind, g.target) for g in cfg.network.groups] == [
        ("input", 40, "input", False), ("hidden0", 8, "lif", False), ("output", 4, "lif", True)]  # fmt: skip
    assert [(c.name, c.pre, c.post, c.plastic) for c in cfg.network.connections] == [
        ("input-hidden0", "input", "hidden0", True), ("hidden0-output", "hidden0", "output", True)]  # fmt: skip
    assert "[[network.group]]" in (out / "config.toml").read_text()
    s, _ = read_spk(out / "hidden0.spk", dt=1e-4, n_neurons=8)
    assert s.size > 0
    assert curve["rate_hidden0_hz"].sum() > 0
    # the saved configuration reruns the run exactly
    main(["train", "--config", str(out / "config.toml"), "--out", str(tmp_path / "again"), "--quiet"])
    again = read_curve(tmp_path / "again")
    np.testing.assert_array_equal(again["cost"], curve["cost"])
    w1, w2 = np.load(out / "weights.npz"), np.load(tmp_path / "again" / "weights.npz")
    for k in w1.files:
        np.testing.assert_array_equal(w1[k], w2[k])
    assert sorted(w1.files) == ["w/hidden0-output", "w/input-hidden0"]
    assert w1["w/input-hidden0"].dtype == np.float32 and w1["w/input-hidden0"].shape == (40, 8)


def test_init_weights_round_trip(tmp_path: Path) -> None:
    inp, tgt = _files(tmp_path)
    w = {"input-hidden0": np.full((40, 5), 0.01, np.float32), "hidden0-output": np.full((5, 4), -0.02, np.float32)}
    b = {"hidden0-output": np.ones((4, 5), np.float32) * 0.5}
    path = tmp_path / "w.npz"
    save_weights(path, w, b)
    cfg = RunConfig(input=str(inp), target=str(tgt), hidden=(5,), feedback="random", init_weights=str(path),
                    burn_in=0.5, block_duration=0.5, blocks=0)  # fmt: skip
    res = train(cfg, quiet=True)
    np.testing.assert_array_equal(res.network.weights["input-hidden0"], w["input-hidden0"])
    np.testing.assert_array_equal(res.network.feedback["hidden0-output"], b["hidden0-output"])


def test_chain_archive_of_an_earlier_version_starts_the_same_run(tmp_path: Path) -> None:
    """w0, w1, b1 (the earlier format) load by position onto the chain: the same run as w/, b/ names."""
    inp, tgt = _files(tmp_path)
    rng = np.random.default_rng(5)
    w0, w1 = (rng.normal(0, 0.05, s).clip(-0.1, 0.1).astype(np.float32) for s in ((40, 6), (6, 4)))
    b1 = rng.normal(size=(4, 6)).astype(np.float32)
    with open(tmp_path / "old.npz", "wb") as fh:
        np.savez(fh, w0=w0, w1=w1, b1=b1)
    save_weights(tmp_path / "new.npz", {"input-hidden0": w0, "hidden0-output": w1}, {"hidden0-output": b1})
    base = RunConfig(input=str(inp), target=str(tgt), hidden=(6,), feedback="random", burn_in=0.5, blocks=2,
                     block_duration=0.5)  # fmt: skip
    runs = [train(replace(base, init_weights=str(tmp_path / f)), quiet=True) for f in ("old.npz", "new.npz")]
    assert [r["cost"] for r in runs[0].curve] == [r["cost"] for r in runs[1].curve]
    for name in ("input-hidden0", "hidden0-output"):
        np.testing.assert_array_equal(runs[0].network.weights[name], runs[1].network.weights[name])
    np.testing.assert_array_equal(runs[0].network.feedback["hidden0-output"], b1)


def test_seed_fixes_everything(tmp_path: Path) -> None:
    cfgs = [RunConfig(seed=s, hidden=(12,), burn_in=0.5, block_duration=0.5, blocks=1) for s in (3, 3, 4)]
    a, b, c = (train(cfg, quiet=True) for cfg in cfgs)
    assert [r["cost"] for r in a.curve] == [r["cost"] for r in b.curve]
    assert [r["cost"] for r in a.curve] != [r["cost"] for r in c.curve]


def test_target_ids_outside_group_are_an_explicit_choice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inp, tgt = _files(tmp_path, nout=4)
    lines = tgt.read_text().splitlines()
    lines.insert(2, "0.100000 4")  # a 1-based id, as in the Oxford target
    tgt.write_text("\n".join(lines) + "\n")
    base = [
        "train",
        "--input",
        str(inp),
        "--target",
        str(tgt),
        "--nout",
        "4",
        "--blocks",
        "0",
        "--burn-in",
        "0.5",
        "--quiet",
    ]
    with pytest.raises(SystemExit) as exc:
        main(base)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"{tgt}:3:" in err and "--id-offset" in err and "--drop-out-of-range" in err
    main([*base[:-1], "--drop-out-of-range"])
    assert "dropped 1 target spikes" in capsys.readouterr().err


def test_one_based_ids_get_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inp, tgt = _files(tmp_path, nout=4)
    shifted = [f"{t} {int(i) + 1}" for t, i in (line.split() for line in tgt.read_text().splitlines())]
    tgt.write_text("\n".join(shifted) + "\n")
    main(["train", "--input", str(inp), "--target", str(tgt), "--blocks", "0", "--burn-in", "0.5"])
    err = capsys.readouterr().err
    assert "5 output neurons inferred from the largest id" in err and "--id-offset -1 --nout 4" in err
    # a header that declares the size is not second-guessed (make-target writes one)
    tgt.write_text("# neurons 5\n" + "\n".join(shifted) + "\n")
    main(["train", "--input", str(inp), "--target", str(tgt), "--blocks", "0", "--burn-in", "0.5", "--force"])
    assert "inferred" not in capsys.readouterr().err


def test_init_weights_beyond_w_max_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inp, tgt = _files(tmp_path)
    path = tmp_path / "w.npz"
    save_weights(path, {"input-output": np.full((40, 4), 0.2, np.float32)})
    with pytest.raises(SystemExit) as exc:
        main(["train", "--input", str(inp), "--target", str(tgt), "--init-weights", str(path), "--blocks", "0"])
    assert exc.value.code == 2
    assert "w/input-output has weights outside [-0.1, 0.1]" in capsys.readouterr().err
    with open(path, "wb") as fh:  # an archive of the earlier form names the connection too
        np.savez(fh, w0=np.full((40, 4), 0.2, np.float32))
    with pytest.raises(SystemExit):
        main(["train", "--input", str(inp), "--target", str(tgt), "--init-weights", str(path), "--blocks", "0"])
    assert "w0 (connection input-output) has weights outside [-0.1, 0.1]" in capsys.readouterr().err


def test_hidden_zero_means_no_hidden_layer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["train", "--hidden", "0", "--blocks", "0", "--burn-in", "0.5", "--out", str(tmp_path / "r"), "--quiet"])
    assert [g.name for g in load_config(tmp_path / "r" / "config.toml").network.groups] == ["input", "output"]
    assert not (tmp_path / "r" / "hidden0.spk").exists()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--hidden", "0", "--hidden", "5", "--blocks", "0"])
    assert exc.value.code == 2 and "--hidden" in capsys.readouterr().err


def test_run_directory_writes_waiting_spikes_whole_and_in_order(tmp_path: Path, monkeypatch) -> None:
    """Spikes wait in memory (copied: an engine may reuse its arrays) until a flush, or until a
    group has BUFFER_RECORDS of them; then they are written in time order, all of them."""
    import superspike.outputs.rundir as rd

    monkeypatch.setattr(rd, "BUFFER_RECORDS", 10)
    out = tmp_path / "run"
    out.mkdir()
    run = rd.RunDirectory(out, ["a", "b"], 1e-4)
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    steps, ids = np.zeros(4, np.int64), np.zeros(4, np.int64)  # one pair of arrays, reused
    for k in range(4):  # 16 spikes of group a: 12 written once 10 are waiting, 4 waiting
        steps[:], ids[:] = np.arange(4) + 4 * k, [3, 1, 2, 0]
        run(0, 0, {"a": (steps, ids), "b": none}, ())
        if k == 1:
            assert run.writers["a"].tell_records() == 0  # 8 waiting
    assert run.writers["a"].tell_records() == 12
    run(0, 0, {"a": none, "b": (np.array([5]), np.array([1]))}, ())
    assert run.writers["b"].tell_records() == 0
    run.flush()
    assert run.writers["a"].tell_records() == 16 and run.writers["b"].tell_records() == 1
    run.close()
    s, i = read_spk(out / "a.spk", dt=1e-4)
    np.testing.assert_array_equal(s, np.arange(16))
    np.testing.assert_array_equal(i, np.tile([3, 1, 2, 0], 4))
