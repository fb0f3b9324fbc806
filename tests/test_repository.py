"""Repository rules that must hold on every commit: lint clean, and `pipeline` never imports ray."""

import ast
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
