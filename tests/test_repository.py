"""The README opens with the two commands a fresh machine needs, and CI runs the second one."""

import os

ROOT = os.path.join(os.path.dirname(__file__), "..")


def readme_commands() -> list[str]:
    lines = open(os.path.join(ROOT, "README.md")).read().splitlines()
    assert lines[0] == "```bash", "README.md must open with a bash block"
    end = lines.index("```", 1)
    return lines[1:end]


def test_readme_opens_with_install_and_demo_then_install_and_tests():
    demo, tests = readme_commands()
    assert demo.startswith("pip install") and demo.endswith("python -m fastrecur demo")
    assert tests.startswith("pip install") and ".[test]" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = readme_commands()
    ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
    assert tests in ci
    assert os.access(os.path.join(ROOT, ".ci", "run"), os.X_OK)
