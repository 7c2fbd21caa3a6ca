"""The layout keeps its architecture: no import cycles, imports only against the layer order.

Read from the source with `ast`, imports inside functions included, so a cycle cannot
hide behind a lazy import. Layers, lowest first; a module may import its own layer
and the ones below:

    core  <-  config, log, resources, ruleset  <-  parsers  <-  store, templating
          <-  services  <-  intake, outbound, daemon  <-  cli, web, devtools
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("mailbot.core",),
    (
        "mailbot",
        "mailbot.config",
        "mailbot.log",
        "mailbot.metrics",
        "mailbot.resources",
        "mailbot.ruleset",
    ),
    ("parsers",),
    ("mailbot.store", "mailbot.templating"),
    ("mailbot.services",),
    ("mailbot.intake", "mailbot.outbound", "mailbot.daemon"),
    ("mailbot.cli", "mailbot.web", "mailbot.devtools", "mailbot.__main__"),
)
# What the pure core may use: the standard library's pure parts and nothing that does I/O.
CORE_FORBIDDEN = (
    "sqlalchemy",
    "imapclient",
    "smtplib",
    "socket",
    "ssl",
    "requests",
    "httpx",
    "pytesseract",
    "PIL",
    "pdfplumber",
    "mailparser",
    "jinja2",
    "apscheduler",
    "subprocess",
    "yaml",
    "psycopg",
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in ("mailbot", "parsers"):
        for path in (REPO / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules `name` imports (the longest known prefix of each import)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            targets += [mod, *(f"{mod}.{a.name}" for a in node.names)]
    found: set[str] = set()
    for target in targets:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def _all_imports() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in MODULES.items()}


def _external(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if layer_of(m) < 0] == []


def test_no_import_cycles() -> None:
    assert find_cycles(_all_imports()) == []


def test_imports_follow_the_layer_order() -> None:
    against = sorted(
        f"{name} -> {target}"
        for name, targets in _all_imports().items()
        for target in targets
        if layer_of(target) > layer_of(name)
    )
    assert against == []


def test_core_imports_no_io_library() -> None:
    offenders = sorted(
        f"{name}: {lib}"
        for name, path in MODULES.items()
        if layer_of(name) == 0
        for lib in _external(path) & set(CORE_FORBIDDEN)
    )
    assert offenders == []


def test_the_checker_sees_a_cycle_and_a_layer_breach() -> None:
    """The checks above can fail: a made-up graph with a cycle and an upward import."""
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert layer_of("mailbot.core.codes") < layer_of("mailbot.cli.main")
    assert layer_of("mailbot.services.inbound") < layer_of("mailbot.intake.pipeline")
