"""The repository as a newcomer meets it: the README's two commands (CI runs the second), the
packages it installs, and documentation that needs nothing outside the repository."""

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile

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


# --- the installed packages --------------------------------------------------------------------


def tracked_files(*suffixes: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [os.path.join(ROOT, f) for f in out.stdout.splitlines() if f.endswith(suffixes) and os.path.exists(os.path.join(ROOT, f))]


def test_nothing_imports_the_kernel_library_by_its_folder_name():
    """The folder is kernels/, the package fastrecur_kernels: a top-level "kernels" would collide
    with an unrelated package on PyPI."""
    offenders = []
    for path in tracked_files(".py"):
        for node in ast.walk(ast.parse(open(path).read(), path)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value] if re.fullmatch(r"kernels(\.\w+)+", node.value) else []
            offenders += [f"{os.path.relpath(path, ROOT)}: {n}" for n in names if n == "kernels" or n.startswith("kernels.")]
    for path in tracked_files(".md", ".sh", ".toml", ".txt", ".yaml"):
        for n, line in enumerate(open(path), 1):
            if re.search(r"\b(from|import|-m)\s+kernels\b|[^_/\w]kernels\.(ops|reference|relpos_attention|bottleneck|factor_loss|corrupt)\b", line):
                offenders.append(f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def package_folders() -> set[str]:
    """The packages of the tree as the wheel must hold them: fastrecur/… and kernels/… as fastrecur_kernels/…."""
    found = set()
    for package, folder in [("fastrecur", "fastrecur"), ("fastrecur_kernels", "kernels")]:
        for directory, _, files in os.walk(os.path.join(ROOT, folder)):
            if "__init__.py" in files:
                rel = os.path.relpath(directory, os.path.join(ROOT, folder))
                found.add(package if rel == "." else f"{package}/{rel.replace(os.sep, '/')}")
    return found


def test_a_wheel_installs_fastrecur_kernels_and_no_kernels(tmp_path):
    """Build the wheel from a copy of the tree, check its contents, install it elsewhere, import it."""
    source = tmp_path / "src"
    for path in tracked_files(""):
        rel = os.path.relpath(path, ROOT)
        os.makedirs(source / os.path.dirname(rel), exist_ok=True)
        shutil.copy(path, source / rel)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("fastrecur-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"fastrecur", "fastrecur_kernels"}
    # Every package folder of the tree is in the wheel (pyproject.toml lists them one by one).
    packages = {os.path.dirname(n) for n in names if n.endswith("/__init__.py")}
    assert packages == package_folders()
    for needed in ("fastrecur_kernels/ops.py", "fastrecur_kernels/reference.py", "fastrecur/configs/tiny.yaml"):
        assert needed in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)], check=True, capture_output=True)
    probe = "import fastrecur, fastrecur_kernels.reference, fastrecur.backends; print(fastrecur.__file__, fastrecur_kernels.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert all(p.startswith(str(target)) for p in out.stdout.split()), out.stdout


# --- the repository stands on its own ----------------------------------------------------------


def test_no_citation_of_files_outside_the_repository():
    offenders = []
    for path in tracked_files(".py", ".md", ".sh", ".yaml", ".toml"):
        for n, line in enumerate(open(path), 1):
            if re.search("SPEC" + r" §|SPEC\.md|PERF\.md|\.\./shared", line):  # (split so this line passes)
                offenders.append(f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    assert os.path.isfile(os.path.join(ROOT, "docs", "method.md"))


def test_no_code_path_unpickles_without_weights_only():
    """Nothing fastrecur loads may run code: no weights_only=False, no pickle module."""
    offenders = []
    for folder in ("fastrecur", "kernels"):
        for path in tracked_files(".py"):
            if os.path.relpath(path, ROOT).startswith(folder + os.sep):
                text = open(path).read()
                if re.search(r"weights_only\s*=\s*False|^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.M):
                    offenders.append(os.path.relpath(path, ROOT))
    assert not offenders
