"""Repository rules that must hold on every commit: lint clean, and `pipeline` never imports ray."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pipeline_never_imports_ray():
    offenders = []
    for path in (ROOT / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "ray"]
    assert offenders == []


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_engine_example_runs(monkeypatch):
    """README's engine example, pointed at the test checkpoint on the CPU, runs as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("## The engine", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    example = example.replace('"Zyphra/Zonos-v0.1-transformer"', repr(str(ROOT / "tests" / "data")))
    example = example.replace('device="cuda"', 'device="cpu"')
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["results"][0].codes.shape[0] == 9
    assert namespace["chunk"].finished


_IMPORT_ALL = """
import importlib, json, pkgutil, traceback
imported, failed = [], {}
for package in ("pipeline", "deployments", "benchmarks"):
    root = importlib.import_module(package)
    for name in [package] + [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]:
        try:
            importlib.import_module(name)
            imported.append(name)
        except BaseException:
            failed[name] = traceback.format_exc(limit=3)
print(json.dumps({"imported": imported, "failed": failed}))
"""


def test_every_module_imports():
    """Every module of pipeline/, deployments/ and benchmarks/ loads in a fresh interpreter, so a
    package that does not load (e.g. a torchaudio built for another torch) fails here, loudly."""
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALL], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["failed"], "\n".join(f"{name}:\n{error}" for name, error in report["failed"].items())
    assert {"pipeline.text", "pipeline.speaker", "deployments.ingress", "deployments.api"} <= set(report["imported"])


def test_binary_coupled_packages_are_pinned_exactly():
    """torch and torchaudio are one binary pair: both exact in pyproject and the constraints file,
    and the installed versions are the pinned ones."""
    from importlib.metadata import version

    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    constraints = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    for package in ("torch", "torchaudio"):
        (pin,) = [line.split("==", 1)[1] for line in constraints if line.startswith(f"{package}==")]
        assert f'"{package}=={pin}"' in pyproject
        assert version(package).split("+")[0] == pin


def test_ci_runs_readmes_test_command():
    """.ci/run's command is README's test command, character for character."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert f"```bash\n{command}\n```" in readme
    assert "bash scripts/setup.sh && python3 -m deployments.run serve_config.yaml" in readme


def test_every_error_class_survives_a_trip_across_processes():
    """Ray pickles a replica's exception to the caller: each of ours must come back with the same
    type and message (an exception whose __init__ builds its message from other arguments must
    say how to rebuild itself)."""
    import importlib
    import inspect
    import pickle
    import pkgutil

    root = importlib.import_module("pipeline")
    names = ["pipeline"] + [info.name for info in pkgutil.walk_packages(root.__path__, "pipeline.")]
    classes = {
        cls
        for name in names
        if name != "pipeline.__main__"
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__.startswith("pipeline")
    }
    assert len(classes) >= 8
    for cls in classes:
        try:
            params = [p for p in inspect.signature(cls).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        except ValueError:  # no __init__ of its own: takes a message like any Exception
            params = []
        error = cls(*["x"] * len(params)) if params else cls("a message")
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls and str(copy) == str(error), cls
