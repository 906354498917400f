"""Fault injection (issue 14): a run killed, or meeting a full disk, at every phase of every write
stays resumable and readable, and ``--resume`` then reaches the uninterrupted result bit for bit;
``--force`` touches only a run's own files; one writer per run directory; a changed config.toml
is caught at ``--resume``.

Faults are injected in a forked child (the numba kernels are compiled once, in this process):
``open`` in the modules that write run files returns files whose ``write`` counts, and
``os.fsync``/``os.replace`` count too. Consecutive writes to one file form one *event*; a kill
lands before an event, in the middle of it (half the bytes written) or after it."""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from superspike.cli import main
from superspike.run.checkpoint import CheckpointWriter

TINY = ["--task", "timing", "--blocks", "2", "--block-duration", "1", "--burn-in", "0.5", "--quiet"]
KILLED = 77  #: exit status of a child killed by injection


def _train_args(out: Path, *extra: str) -> list[str]:
    return ["train", *TINY, "--out", str(out), *extra]


# --- running in a forked child --------------------------------------------------------------------


def _in_child(fn: Callable[[], None], log: Path) -> int:
    """Run ``fn`` in a forked child with stdout and stderr going to ``log``; its exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            try:
                fn()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


_TMP_NAME = re.compile(r"\.\d+\.tmp$")


def _key(kind: str, name: str) -> tuple[str, str]:
    return kind, _TMP_NAME.sub(".tmp", os.path.basename(name))


class Injector:
    """Counts the write events of a run; at event ``target`` (``phase`` before, during or after
    it) exits the process (``action`` "kill") or raises ENOSPC ("enospc")."""

    def __init__(self, target: int | None = None, phase: str = "before", action: str = "kill") -> None:
        self.target, self.phase, self.action = target, phase, action
        self.events: list[list] = []  # [kind, name, calls]
        self.sub = 0

    def _event(self, kind: str, name: str) -> tuple[int, int]:
        key = _key(kind, name)
        if not self.events or tuple(self.events[-1][:2]) != key or kind != "write":
            self.events.append([*key, 0])
        self.events[-1][2] += 1
        return len(self.events) - 1, self.events[-1][2] - 1

    def _fault(self, what: str) -> None:
        if self.action == "kill":
            os._exit(KILLED)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def install(self, calls: dict[int, int] | None = None) -> None:
        """``calls``: the number of calls of each write event (from a counting run), so a
        fault "during" lands in the middle and "after" after the last call."""
        import superspike.io.files as files_mod
        import superspike.io.spk as spk_mod
        import superspike.outputs.rundir as rundir_mod

        inj = self
        real_open, real_fsync, real_replace = builtins.open, os.fsync, os.replace
        calls = calls or {}

        class Proxy:
            def __init__(self, fh, name: str) -> None:
                self._fh, self._name = fh, name

            def write(self, data):
                k, j = inj._event("write", self._name)
                if k == inj.target:
                    n = calls.get(k, 1)
                    if inj.phase == "before" and j == 0:
                        inj._fault("before")
                    if inj.phase == "during" and j == n // 2:
                        self._fh.write(data[: max(len(data) // 2, 1)])
                        self._fh.flush()
                        inj._fault("during")
                    if inj.phase == "after" and j == n - 1:
                        r = self._fh.write(data)
                        self._fh.flush()
                        inj._fault("after")
                        return r
                return self._fh.write(data)

            def __getattr__(self, a):
                return getattr(self._fh, a)

            def __enter__(self):
                return self

            def __exit__(self, *a):
                return self._fh.__exit__(*a)

        def fake_open(file, mode="r", *a, **kw):
            fh = real_open(file, mode, *a, **kw)
            return Proxy(fh, str(file)) if isinstance(file, (str, Path)) and set(mode) & set("wa+") else fh

        def around(kind: str, name: str, do: Callable[[], None]) -> None:
            k, _ = inj._event(kind, name)
            if k == inj.target and inj.phase in ("before", "during"):
                inj._fault("before")
            do()
            if k == inj.target and inj.phase == "after":
                inj._fault("after")

        def fake_fsync(fd: int) -> None:
            try:
                name = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                name = "?"
            around("fsync", name, lambda: real_fsync(fd))

        def fake_replace(src, dst) -> None:
            around("replace", str(dst), lambda: real_replace(src, dst))

        for mod in (files_mod, spk_mod, rundir_mod):
            mod.open = fake_open  # module globals shadow the builtin
        # checkpoints written in the run's thread: the events come in one order, run after run
        # (the background writer is covered by the real full disk and the kills of real processes)
        CheckpointWriter.background = False
        os.fsync, os.replace = fake_fsync, fake_replace


# --- the uninterrupted run and comparisons ---------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list]]:
    """An uninterrupted tiny run (in a child that counts the write events) and its events."""
    root = tmp_path_factory.mktemp("ref")
    out = root / "whole"
    main(_train_args(root / "warm"))  # compile the kernels here, before any fork
    counted: list[list] = []

    def count() -> None:
        inj = Injector()
        inj.install()
        main(_train_args(out))
        import json

        (root / "events.json").write_text(json.dumps(inj.events))

    assert _in_child(count, root / "log") == 0, (root / "log").read_text()
    import json

    counted = json.loads((root / "events.json").read_text())
    return out, counted


def _same_run(a: Path, b: Path) -> None:
    """The same result: every run file byte for byte, weights array for array, the learning curve
    but for its wall-time column."""
    for p in sorted(a.iterdir()):
        if p.suffix in (".spk", ".ras", ".toml") or p.name == "superspike-run.json":
            assert p.read_bytes() == (b / p.name).read_bytes(), p.name
    cut = [line.split("\t")[:-1] for line in (a / "learning_curve.tsv").read_text().splitlines()]
    other = [line.split("\t")[:-1] for line in (b / "learning_curve.tsv").read_text().splitlines()]
    assert cut[0][0] == "block" and cut == other
    with np.load(a / "weights.npz") as wa, np.load(b / "weights.npz") as wb:
        assert wa.files == wb.files
        for k in wa.files:
            np.testing.assert_array_equal(wa[k], wb[k])
    skip = {"notes.txt", ".superspike.lock.holder"}  # a note of the user's; the holder of a live lock
    assert {p.name for p in b.iterdir()} - skip == {p.name for p in a.iterdir()} - skip, "files left over"


def _readable(out: Path, torn: str | None = None) -> None:
    """Every file of a stopped run can be read: whole spike records, a curve with its header.
    ``torn``: an spk file killed in the middle of a record (the one thing only --resume mends)."""
    from superspike.io.spk import read_spk

    for spk in out.glob("*.spk"):
        if spk.name == torn and spk.stat().st_size % 8:
            continue
        read_spk(spk)
    curve = out / "learning_curve.tsv"
    if curve.exists():
        from superspike.outputs.rundir import read_curve

        text = curve.read_text()
        assert text == "" or text.startswith("block\t"), text[:200]
        if text.count("\n") > 1:
            read_curve(curve)


def _events(reference) -> list[tuple[int, str]]:
    """(event index, phase) for every write event, each phase it has."""
    _, events = reference
    out = []
    for k, (kind, _name, _n) in enumerate(events):
        out += [(k, "before"), (k, "after")]
        if kind == "write":
            out.append((k, "during"))
    return out


def _fault_then_resume(reference, tmp_path: Path, k: int, phase: str, action: str) -> None:
    whole, events = reference
    calls = {i: e[2] for i, e in enumerate(events)}
    tmp_path.mkdir(parents=True, exist_ok=True)
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("not the run's")
    out = tmp_path / "run"

    def faulty() -> None:
        inj = Injector(k, phase, action)
        inj.install(calls)
        main(_train_args(out))

    log = tmp_path / "log"
    code = _in_child(faulty, log)
    err = log.read_text()
    assert "Traceback" not in err, err
    if action == "kill":
        assert code == KILLED, (code, err)
    else:  # a full disk: one line naming the file, exit 2 (a failed lock-holder note is no failure)
        assert code in (0, 2), (code, err)
        if code == 2:
            assert err.count("\n") == 1 and err.startswith("error: ") and "No space left on device" in err, err
    kind, name, _ = events[k]
    _readable(out, name if (kind, phase, action) == ("write", "during", "kill") and name.endswith(".spk") else None)
    if not (out / "superspike-run.json").exists():  # stopped before the run began: run it again
        left = {_TMP_NAME.sub(".tmp", p.name) for p in out.iterdir()}
        assert left <= {".superspike.lock", ".superspike.lock.holder", ".superspike-run.json.tmp"}, left
        main(_train_args(out))
    else:
        (out / "notes.txt").write_text("mine")
        main(["train", "--resume", str(out), "--quiet"])
        assert (out / "notes.txt").read_text() == "mine"
    assert foreign.read_text() == "not the run's"
    _same_run(whole, out)


# a kill at every phase of every write event; the fast subset: every kind of event once
def _subset(reference) -> list[tuple[int, str]]:
    _, events = reference
    seen: set = set()
    chosen = []
    for k, phase in _events(reference):
        key = (events[k][0], re.sub(r"\d+", "", events[k][1]), phase)
        if key not in seen:
            seen.add(key)
            chosen.append((k, phase))
    return chosen


def test_kill_at_each_kind_of_write_then_resume_is_identical(reference, tmp_path) -> None:
    for k, phase in _subset(reference):
        _fault_then_resume(reference, tmp_path / f"{k}-{phase}", k, phase, "kill")


@pytest.mark.slow
def test_kill_at_every_write_then_resume_is_identical(reference, tmp_path) -> None:
    for k, phase in _events(reference):
        _fault_then_resume(reference, tmp_path / f"{k}-{phase}", k, phase, "kill")


def test_enospc_at_every_write_is_one_line_then_resume_is_identical(reference, tmp_path) -> None:
    _, events = reference
    for k in range(len(events)):
        phase = "during" if events[k][0] == "write" else "before"
        _fault_then_resume(reference, tmp_path / f"{k}", k, phase, "enospc")


# --- a real full disk -----------------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(where: Path, size: str):
    where.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip() or r.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("size", ["48k", "80k"])  # full at the second checkpoint; at the last one
def test_a_real_full_disk_then_resume_after_freeing_space(reference, tmp_path, size: str) -> None:
    whole, _ = reference
    with _tmpfs(tmp_path / "disk", size) as disk:
        out = disk / "run"
        code, err = _cli(_train_args(out))
        assert code == 2 and err.count("\n") == 1 and "No space left on device" in err, err
        assert "the last checkpoint (t = " in err and f"superspike train --resume {out}" in err
        assert "Traceback" not in err
        _readable(out)
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)  # space freed
        main(["train", "--resume", str(out), "--quiet"])
        _same_run(whole, out)


def test_a_full_disk_in_the_background_checkpoint_writer(reference, tmp_path, monkeypatch, capsys) -> None:
    """The checkpoint written in the background meets a full disk: the run stops with one line
    naming the checkpoint file and the last checkpoint on disk, the other files are cut back to it,
    and --resume reaches the uninterrupted result."""
    import superspike.run.checkpoint as ck

    whole, _ = reference
    real, calls = ck._write, []

    def full_third_time(path, *a):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, *a)

    monkeypatch.setattr(ck, "_write", full_third_time)
    monkeypatch.setattr(ck.CheckpointWriter, "background", True)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(_train_args(out))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert "checkpoint.npz" in err and "No space left on device" in err
    assert "the last checkpoint (t = 0.5 s) is kept" in err, err  # the second: after burn-in
    assert calls[2] == "superspike-checkpoint"  # it was the writer's thread that failed
    _readable(out)
    with np.load(out / "checkpoint.npz") as c:
        assert int(c["progress/curve_rows"]) == 1
    assert len((out / "learning_curve.tsv").read_text().splitlines()) == 2  # the header and line 0
    monkeypatch.setattr(ck, "_write", real)
    main(["train", "--resume", str(out), "--quiet"])
    _same_run(whole, out)


def _cli(args: list[str]) -> tuple[int, str]:
    r = subprocess.run(
        [sys.executable, "-m", "superspike.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        timeout=300,
    )
    return r.returncode, r.stderr


# --- one writer at a time -------------------------------------------------------------------------


def test_a_second_process_on_a_running_directory_is_refused(reference, tmp_path, capsys) -> None:
    whole, _ = reference
    out = tmp_path / "run"
    shutil.copytree(whole, out)
    ready, go = os.pipe()

    def hold() -> None:
        from superspike.outputs.rundir import RunLock

        with RunLock(out):
            os.write(go, b"x")
            time.sleep(30)

    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            hold()
        finally:
            os._exit(0)
    try:
        os.read(ready, 1)
        for args in (
            ["train", "--resume", str(out)],
            _train_args(out, "--force"),
            _train_args(out / ".." / "run", "--force"),
        ):
            with pytest.raises(SystemExit) as exc:
                main(args)
            assert exc.value.code == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "in use by another superspike process" in err, err
            assert f"pid {pid} on host" in err
        _same_run(whole, out)  # untouched
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    main(_train_args(out, "--force"))  # the holder is gone (killed): the lock went with it
    _same_run(whole, out)


def test_two_real_runs_on_one_directory(tmp_path) -> None:
    """A real second ``train --resume`` while a run writes: refused, the first run unharmed."""
    out = tmp_path / "run"
    args = ["train", "--task", "timing", "--blocks", "40", "--block-duration", "1", "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    first = subprocess.Popen([sys.executable, "-m", "superspike.cli", *args], stderr=subprocess.PIPE, env=env)
    try:
        t0 = time.time()
        while not (out / "checkpoint.npz").exists():
            assert first.poll() is None and time.time() - t0 < 120, "the first run did not start"
            time.sleep(0.05)
        code, err = _cli(["train", "--resume", str(out), "--quiet"])
        assert code == 2 and err.count("\n") == 1 and f"pid {first.pid} on host" in err, err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)


# --- --force owns only a run's files ---------------------------------------------------------------


def _fail(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_force_refuses_foreign_directories_and_files(reference, tmp_path, capsys) -> None:
    whole, _ = reference
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "config.toml").write_text("seed = 1\n")  # looks like a run, is not one
    err = _fail(_train_args(mine, "--force"), capsys)
    assert "not a superspike run directory (no superspike-run.json)" in err
    assert (mine / "thesis.tex").read_text() == "years of work" and (mine / "config.toml").exists()

    run = tmp_path / "run"
    shutil.copytree(whole, run)
    (run / "notes.txt").write_text("mine")
    (run / "extra").mkdir()
    err = _fail(_train_args(run, "--force"), capsys)
    assert "holds files a run does not write (extra, notes.txt)" in err
    assert (run / "notes.txt").read_text() == "mine"
    (run / "extra").rmdir()
    _same_run(whole, run)

    (run / "notes.txt").unlink()
    (run / "plot.png").write_bytes(b"png")  # written by superspike plot: the run's
    (run / ".checkpoint.npz.123.tmp").write_bytes(b"left by a kill")
    main(_train_args(run, "--force", "--seed", "2"))
    assert not (run / "plot.png").exists() and not (run / ".checkpoint.npz.123.tmp").exists()
    assert "seed = 2" in (run / "config.toml").read_text()


def test_force_never_empties_the_working_directory_or_a_parent(reference, tmp_path, monkeypatch, capsys) -> None:
    whole, _ = reference
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    (run / "sub").mkdir()
    for cwd, out in ((run, "."), (run / "sub", ".."), (run / "sub", str(run))):
        monkeypatch.chdir(cwd)
        err = _fail(_train_args(Path(out), "--force"), capsys)
        assert "working directory or one of its parents" in err
    monkeypatch.chdir(tmp_path)
    (run / "sub").rmdir()
    _same_run(whole, run)


# --- a run remembers its configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "key"),
    [(("seed = 1", "seed = 5"), "seed"), (("eta = 0.001", "eta = 0.01"), "eta"), (('"timing"', '"xor"'), "task")],
)
def test_a_changed_config_at_resume_names_the_key_and_the_ways_out(reference, tmp_path, capsys, edit, key) -> None:
    whole, _ = reference
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    (run / "checkpoint.npz").unlink()  # as if stopped early (resume would otherwise just report completion)
    cfg = run / "config.toml"
    text = cfg.read_text()
    assert edit[0] in text
    cfg.write_text(text.replace(edit[0], edit[1], 1))
    err = _fail(["train", "--resume", str(run)], capsys)
    assert f"{key} (" in err and "changed after the run began" in err
    assert "restore it" in err and "--force" in err and "another --out" in err
    cfg.write_text(text)  # restored: the run continues
    main(["train", "--resume", str(run), "--quiet"])
    _same_run(whole, run)


def test_engine_may_change_at_resume(reference, tmp_path) -> None:
    whole, _ = reference
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    main(["train", "--resume", str(run), "--engine", "reference", "--quiet"])


# --- the learning curve keeps its header ---------------------------------------------------------------


def test_kill_between_first_cost_line_and_its_checkpoint_keeps_the_header(reference, tmp_path) -> None:
    """The case of the issue: the first cost line written, its checkpoint not."""
    _, events = reference
    k = next(i for i, e in enumerate(events) if e[0] == "replace" and e[1] == "learning_curve.tsv")
    _fault_then_resume(reference, tmp_path, k, "after", "kill")
    assert (tmp_path / "run" / "learning_curve.tsv").read_text().startswith("block\t")


def test_spike_files_shorter_than_the_checkpoint_are_refused(reference, tmp_path, capsys) -> None:
    whole, _ = reference
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    with np.load(run / "checkpoint.npz") as ck:
        arrays = {k: ck[k] for k in ck.files}
    arrays["progress/finished"] = np.array(0)
    with open(run / "checkpoint.npz", "wb") as fh:
        np.savez(fh, **arrays)
    spk = run / "input.spk"
    spk.write_bytes(spk.read_bytes()[:80])
    err = _fail(["train", "--resume", str(run)], capsys)
    assert f"{spk}: holds 9 spike records, but the checkpoint counts" in err


# --- a sweep's results.csv ---------------------------------------------------------------------------


def test_sweep_results_never_lose_rows_and_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    import superspike.run.sweep as sweep_mod

    spec = tmp_path / "sweep.toml"
    spec.write_text('seeds = 2\n[base]\ntask = "timing"\nburn_in = 0.5\nblock_duration = 0.5\nblocks = 1\n')
    out = tmp_path / "out"
    assert sweep_mod.run_sweep(spec, out, workers=1).progress.ok == 2
    before = (out / "results.csv").read_text()
    assert before.count("\n") == 3

    (out / "runs" / "seed=2" / "sweep_status.json").unlink()  # a status file lost (say, a full disk)
    seen = []
    sweep_mod.run_sweep(spec, out, workers=1, progress=lambda p: seen.append((out / "results.csv").read_text()))
    assert seen[0] == before, "the row of the run being redone was dropped"
    assert (out / "results.csv").read_text().count("\n") == 3

    real = sweep_mod.write_atomic

    def full(path, data):
        if Path(path).name == "results.csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(sweep_mod, "write_atomic", full)
    err = _fail(["sweep", str(spec), "--out", str(out), "--workers", "1", "--quiet"], capsys)
    assert "results.csv: No space left on device" in err
    assert (out / "results.csv").read_text().count("\n") == 3  # the old file, whole


def test_a_resume_killed_in_turn_still_reaches_the_same_result(reference, tmp_path) -> None:
    """Faults during --resume itself (cutting files back, its first writes, later ones)."""
    whole, events = reference
    calls = {i: e[2] for i, e in enumerate(events)}
    first = next(i for i, e in enumerate(events) if e[0] == "replace" and e[1] == "learning_curve.tsv")
    for j, phase, action in (
        (0, "before", "kill"),
        (2, "after", "kill"),
        (5, "during", "kill"),
        (8, "before", "enospc"),
    ):
        run = tmp_path / f"{j}-{phase}-{action}" / "run"
        run.parent.mkdir()

        def faulty(inj: Injector, args: list[str]) -> Callable[[], None]:
            def go() -> None:
                inj.install(calls)
                main(args)

            return go

        _in_child(faulty(Injector(first, "after"), _train_args(run)), run.parent / "log1")
        code = _in_child(
            faulty(Injector(j, phase, action), ["train", "--resume", str(run), "--quiet"]), run.parent / "log2"
        )
        err = (run.parent / "log2").read_text()
        assert code == (KILLED if action == "kill" else 2) and "Traceback" not in err, (code, err)
        main(["train", "--resume", str(run), "--quiet"])
        _same_run(whole, run)


def test_a_force_killed_half_way_can_be_repeated(reference, tmp_path) -> None:
    """--force removes the marker last: stopped in the middle, the directory is still a run's."""
    whole, _ = reference
    run = tmp_path / "run"
    shutil.copytree(whole, run)

    def killed_after_three_removals() -> None:
        real, n = Path.unlink, [0]

        def unlink(self, missing_ok=False):
            n[0] += 1
            if n[0] > 3:
                os._exit(KILLED)
            return real(self, missing_ok=missing_ok)

        Path.unlink = unlink  # type: ignore[method-assign]
        main(_train_args(run, "--force"))

    assert _in_child(killed_after_three_removals, tmp_path / "log") == KILLED
    assert (run / "superspike-run.json").exists()
    main(_train_args(run, "--force"))
    _same_run(whole, run)


def test_a_missing_spike_file_at_resume_is_one_line(reference, tmp_path, capsys) -> None:
    whole, _ = reference
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    (run / "checkpoint.npz").unlink()
    main(["train", "--resume", str(run), "--quiet"])  # no checkpoint yet: starts over in place
    _same_run(whole, run)
    with np.load(run / "checkpoint.npz") as ck:
        arrays = {k: ck[k] for k in ck.files}
    arrays["progress/finished"] = np.array(0)
    with open(run / "checkpoint.npz", "wb") as fh:
        np.savez(fh, **arrays)
    (run / "output.spk").unlink()
    err = _fail(["train", "--resume", str(run)], capsys)
    assert f"{run / 'output.spk'}: holds 0 spike records, but the checkpoint counts" in err


def test_a_second_sweep_on_one_directory_names_the_first(tmp_path, capsys) -> None:
    import superspike.run.sweep as sweep_mod

    spec = tmp_path / "sweep.toml"
    spec.write_text('seeds = 1\n[base]\ntask = "timing"\nburn_in = 0.5\nblock_duration = 0.5\nblocks = 1\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.toml").write_text("")
    ready, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            with sweep_mod._sweep_lock(out):
                os.write(go, b"x")
                time.sleep(30)
        finally:
            os._exit(0)
    try:
        os.read(ready, 1)
        err = _fail(["sweep", str(spec), "--out", str(out), "--quiet"], capsys)
        assert "another sweep is running in this directory" in err and f"pid {pid} on host" in err
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
