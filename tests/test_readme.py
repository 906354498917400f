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
