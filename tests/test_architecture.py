"""Facts about the code's shape that a reader can rely on: the layers, read from the imports."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ved"

# Low to high; a module may import from its own layer or a lower one, never a higher one.
LAYERS = [
    ["ved.errors", "ved.files", "ved.images", "ved.distributed", "ved.about", "ved.holdout", "ved.precision",
     "ved.card", "ved.rules"],
    ["ved.captions", "ved.vocab", "ved.checkpoint", "ved.mnist", "ved.batches", "ved.content", "ved.data",
     "ved.strips"],
    ["ved.models"],  # and every module under it: a new model family needs no line here
    ["ved.config"],
    ["ved.metrics", "ved.figures", "ved.report", "ved.train", "ved.train_judge", "ved.pipeline", "ved.bench"],
    ["ved.reproduce", "ved.serve", "ved.http_guard"],
    ["ved.cli", "ved.__main__", "ved"],
]  # fmt: skip
LAYER = {module: i for i, names in enumerate(LAYERS) for module in names}


def layer_of(module: str) -> int | None:
    return LAYER.get("ved.models" if module.startswith("ved.models.") else module)


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    path = PACKAGE.parent / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    """Each module of ved and the modules of ved it imports (anywhere in it, lazily too)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # `from . import x` imports the module x when there is one
                    deps.add(f"{target}.{alias.name}" if _exists(f"{target}.{alias.name}") else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "ved"}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ved":
                deps.add(node.module)
        graph[module] = deps - {module}
    return graph


def test_every_module_has_a_layer_and_imports_only_downwards():
    graph = import_graph()
    unplaced = [m for m in graph if layer_of(m) is None]
    assert not unplaced, f"place new modules in LAYERS: {unplaced}"
    assert set(LAYER) <= {layer for m in graph for layer in (m, "ved.models")}, "LAYERS names a module gone"
    upward = [(m, d) for m, deps in graph.items() for d in deps if layer_of(d) > layer_of(m)]
    assert not upward, f"imports from a lower layer to a higher one: {upward}"


def test_no_import_cycles():
    graph, done, path = import_graph(), set(), []

    def visit(module):
        assert module not in path, f"import cycle: {' -> '.join(path[path.index(module) :] + [module])}"
        if module in done:
            return
        path.append(module)
        for dep in graph[module]:
            visit(dep)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_the_server_loads_no_matplotlib():
    code = "import sys, ved.serve; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_trainer_does_not_probe_models():
    """The loop calls the hooks of models/base.py; it never asks a model what it has."""
    for name in ("train.py", "train_judge.py"):
        calls = [
            node.func.id
            for node in ast.walk(ast.parse((PACKAGE / name).read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        ]
        assert not {"hasattr", "getattr", "isinstance"} & set(calls), name


def test_no_function_is_longer_than_80_lines():
    """A function a newcomer can hold in view; a longer one is split along what it does."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines})")
    assert not long, long


def test_the_cli_turns_only_ved_errors_into_one_line():
    """cli.main catches VedError for refusals; a bare `except ValueError` would hide ved's own bugs."""
    text = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    assert "except ValueError" not in text
