"""The README opens with the two commands, and CI runs exactly its test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [
        line
        for line in readme.split("```bash", 1)[1].split("```", 1)[0].splitlines()
        if line and not line.startswith("#")
    ]
    assert len(commands) == 2, "the README opens with two commands: run the demo, run the tests"
    assert "superspike train" in commands[0]
    test_cmd = commands[1].split("&& pip install", 1)[1]
    assert f"pip install{test_cmd}" in (ROOT / ".ci" / "run").read_text()


def _blocks(lang: str) -> list[str]:
    """The README's fenced code blocks of one language, in order."""
    readme = (ROOT / "README.md").read_text()
    return [part.split("```", 1)[0] for part in readme.split(f"```{lang}\n")[1:]]


def test_readme_python_examples_run() -> None:
    """The "From Python" examples, run as written: a chain trained for one block, then the graph."""
    first, graph = _blocks("python")[:2]
    scope: dict = {}
    exec(compile(first, "README.md", "exec"), scope)  # the README's own example
    assert scope["steps"].size > 0 and scope["sim"].cost() > 0
    exec(compile(graph, "README.md", "exec"), scope)
    net = scope["net"]
    assert net.weights["rec"].shape == (128, 128) and net.weights["skip"].shape == (200, 200)
    assert [e.dst for e in net.spec.feedback_edges] == ["hidden"]


def test_readme_network_table_is_a_valid_configuration(tmp_path: Path) -> None:
    """The [network] example of the README resolves on the default task (sizes from the task)."""
    from superspike.run.config import load_config, resolve

    (conf,) = [b for b in _blocks("toml") if "[[network.group]]" in b]
    path = tmp_path / "net.toml"
    path.write_text(conf)
    spec = resolve(load_config(path)).spec
    assert [(g.name, g.n) for g in spec.groups] == [("input", 200), ("fast", 128), ("slow", 64), ("output", 200)]
    assert spec.neuron_of("slow").tau_mem == 0.02 and not spec.connection("skip").plastic
