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
    "config": {"core"},  # core.errors only: ConfigError is one of the project's error types
    "nn": {"core"},
    "bottleneck": {"core", "nn"},
    "losses": {"core"},
    "data": {"core"},
    "models": {"core", "nn", "bottleneck", "losses"},
    "eval": {"core", "nn", "bottleneck", "losses", "models", "data"},
    "lab": {"core", "nn", "bottleneck", "losses", "models", "eval", "data"},
    "engine": {"core", "config"},
    "builders": {"core", "nn", "bottleneck", "losses", "models", "data", "eval", "engine", "config"},
    # the HTML report reads what every command writes, above builders; only the commands (pipelines/) import it
    "report": {"core", "nn", "bottleneck", "losses", "models", "data", "eval", "lab", "engine", "config", "builders"},
    "__init__": set(),
}
FORBIDDEN_TOP = {"audiolvm_pipelines", "pipelines", "data_scripts", "tests", "benchmarks", "torchaudio"}


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
        "import sys, audiolvm, audiolvm.builders, audiolvm.engine, audiolvm_pipelines.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torchaudio', 'torchcodec')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Imports inside functions: never of audiolvm itself (that hides a circle or a layer break); of a third-party
# package only where it is an optional extra or costs real start-up time for commands that never use it.
LAZY_IMPORTS: dict[str, str] = {
    "datasets": "optional extra (HF datasets reader)",
    "skimage": "optional extra (the lfw_subset faces)",
    "resemblyzer": "optional extra (speaker similarity in evaluate-vc)",
    "sklearn": "probes and the digits only; about 1 s to import",
    "librosa": "about 1.5 s to import (numba); pitch by pYIN and the probe's MFCCs only",
    "pyworld": "pitch extraction only; imports pkg_resources, which warns",
    "matplotlib": "plots only; the Agg backend is chosen before pyplot is first imported",
    "threadpoolctl": "limits the probe's BLAS threads only",
}


def _modules() -> dict[str, Path]:
    """``audiolvm`` module name -> file (a package by its ``__init__.py``)."""
    mods = {}
    for path in sorted((ROOT / "audiolvm").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function of ``path``, except under ``if TYPE_CHECKING:``."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    found.append((node.lineno, node.module or ""))
    return found


def test_imports_inside_functions_are_only_the_listed_lazy_ones() -> None:
    bad = [f"{path.relative_to(ROOT)}:{line} imports {mod} inside a function"
           for path in _modules().values() for line, mod in function_imports(path)
           if mod.split(".")[0] not in LAZY_IMPORTS]
    assert not bad, "move these imports to the top of the module (or list a lazy extra):\n" + "\n".join(bad)


def test_no_import_circle_between_modules() -> None:
    """Every import between ``audiolvm`` modules, at module level or in a function, points one way. A package's
    ``__init__`` re-exporting its submodules counts, so a submodule must import its siblings, not its package."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in mods:
                subs = {f"{node.module}.{a.name}" for a in node.names}  # ``from pkg import submodule``
                names_only = subs - set(mods)  # names from the package's namespace need its __init__ run
                edges[name] |= ((subs & set(mods)) | ({node.module} if names_only else set())) - {name}
            elif isinstance(node, ast.Import):
                edges[name] |= {a.name for a in node.names if a.name in mods} - {name}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            assert state.get(n) != 1, "import circle: " + " -> ".join([*stack, m, n])
            if n not in state:
                visit(n, [*stack, m])
        state[m] = 2

    for m in sorted(mods):
        if m not in state:
            visit(m, [])


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    """The parser really sees imports (guards against a checker that silently passes)."""
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom audiolvm.models import Autoencoder\n\n\ndef f():\n    import audiolvm.data\n")
    assert (2, "audiolvm.models") in imports_of(f)
    assert function_imports(f) == [(6, "audiolvm.data")]
