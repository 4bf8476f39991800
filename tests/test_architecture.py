"""Import direction (STYLE.md / ARCHITECTURE.md), checked by parsing every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# subpackage -> audiolvm subpackages it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": set(),
    "nn": {"core"},
    "bottleneck": {"core", "nn"},
    "losses": {"core"},
    "data": {"core"},
    "models": {"core", "nn", "bottleneck", "losses"},
    "eval": {"core", "nn", "bottleneck", "losses", "models", "data"},
    "lab": {"core", "nn", "bottleneck", "losses", "models", "eval", "data"},
    "engine": {"core", "config"},
    "builders": {"core", "nn", "bottleneck", "losses", "models", "data", "eval", "engine", "config"},
    "__init__": set(),
}
FORBIDDEN_TOP = {"pipelines", "data_scripts", "tests", "benchmarks", "torchaudio"}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT / "audiolvm")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_package_import_direction() -> None:
    violations = []
    for path in sorted((ROOT / "audiolvm").rglob("*.py")):
        layer = layer_of(path)
        assert layer in ALLOWED, f"{path}: new layer {layer!r}; add it to ALLOWED and ARCHITECTURE.md"
        for line, mod in imports_of(path):
            top, *rest = mod.split(".")
            if top in FORBIDDEN_TOP:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
            elif top == "audiolvm" and rest and rest[0] != layer and rest[0] not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {mod}")
    assert not violations, "import direction violated:\n" + "\n".join(violations)


def test_data_scripts_use_only_core_and_data() -> None:
    violations = []
    for path in sorted((ROOT / "data_scripts").rglob("*.py")):
        for line, mod in imports_of(path):
            parts = mod.split(".")
            if parts[0] == "audiolvm" and (len(parts) < 2 or parts[1] not in {"core", "data"}):
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not violations, "\n".join(violations)


def test_importing_the_package_does_not_import_torchaudio() -> None:
    code = (
        "import sys, audiolvm, audiolvm.builders, audiolvm.engine, pipelines.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torchaudio', 'torchcodec')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    """The parser really sees imports (guards against a checker that silently passes)."""
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom audiolvm.models import Autoencoder\n")
    assert (2, "audiolvm.models") in imports_of(f)
