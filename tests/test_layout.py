"""The package's layout rules, read off the source with ``ast`` (nothing is imported).

* no import cycle inside ``nml``, counting imports made inside functions;
* no module imports another module's underscore names (``from .x import _y``) or reaches into
  them (``x._y`` where ``x`` is an ``nml`` module bound by an import);
* no module over :data:`MAX_MODULE_LINES` lines;
* no function over :data:`MAX_FUNCTION_LINES` lines unless its body says why in a comment that
  starts with ``# long:``.

The checker runs on a small synthetic package first (``test_checker_*``), so a checker that
silently finds nothing fails too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80
LONG_MARK = "# long:"


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: list[str]
    imports: dict[str, list[int]] = field(default_factory=dict)   # target module -> line numbers


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def collect(package_dir: Path) -> dict[str, Module]:
    """Every module of the package in ``package_dir`` (sub-packages included), parsed."""
    base = package_dir.parent
    mods = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        text = path.read_text()
        mods[name] = Module(name, path, ast.parse(text, str(path)), text.splitlines())
    return mods


def _package_of(mod: Module) -> str:
    return mod.name if mod.path.name == "__init__.py" else mod.name.rsplit(".", 1)[0]


def _resolve(mod: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = _package_of(mod).split(".")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


@dataclass
class Findings:
    cycles: list[list[str]]
    private: list[str]
    big_modules: list[str]
    long_functions: list[str]
    edges: dict[str, set[str]]


def check(package_dir: Path) -> Findings:
    """Apply every rule to the package in ``package_dir``."""
    mods = collect(package_dir)
    private = []
    for mod in mods.values():
        aliases: dict[str, str] = {}  # local name -> nml module it is bound to
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(mod, node)
                if target in mods and target != mod.name:
                    mod.imports.setdefault(target, []).append(node.lineno)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in mods:
                        if sub != mod.name:
                            mod.imports.setdefault(sub, []).append(node.lineno)
                        aliases[alias.asname or alias.name] = sub
                    elif target in mods and target != mod.name and _is_private(alias.name):
                        private.append(f"{mod.name}:{node.lineno} imports {target}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in mods:
                        if alias.name != mod.name:
                            mod.imports.setdefault(alias.name, []).append(node.lineno)
                        if alias.asname:
                            aliases[alias.asname] = alias.name
        for node in ast.walk(mod.tree):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr)
                    and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and aliases[node.value.id] != mod.name):
                private.append(f"{mod.name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return Findings(_cycles(mods), private, _big_modules(mods), _long_functions(mods),
                    {m.name: set(m.imports) for m in mods.values()})


def _cycles(mods: dict[str, Module]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (or a self-loop)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(u: str) -> None:   # Tarjan's algorithm
        index[u] = low[u] = counter[0]
        counter[0] += 1
        stack.append(u)
        on_stack.add(u)
        for v in mods[u].imports:
            if v not in index:
                visit(v)
                low[u] = min(low[u], low[v])
            elif v in on_stack:
                low[u] = min(low[u], index[v])
        if low[u] == index[u]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == u:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in mods:
        if name not in index:
            visit(name)
    return found


def _big_modules(mods: dict[str, Module]) -> list[str]:
    return [f"{m.name}: {len(m.lines)} lines" for m in mods.values() if len(m.lines) > MAX_MODULE_LINES]


def _long_functions(mods: dict[str, Module]) -> list[str]:
    out = []
    for mod in mods.values():
        for node in ast.walk(mod.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                body = mod.lines[node.lineno - 1: node.end_lineno]
                if length > MAX_FUNCTION_LINES and not any(
                        line.strip().startswith(LONG_MARK) for line in body):
                    out.append(f"{mod.name}.{node.name} ({mod.path.name}:{node.lineno}): {length} lines")
    return out


# ------------------------------------------------------------------------------------------
# The checker on a package made to break every rule
# ------------------------------------------------------------------------------------------

@pytest.fixture
def bad_package(tmp_path) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from .b import helper\n\ndef f():\n    return helper()\n",
        "b.py": "def helper():\n    from . import a   # inside a function: still a cycle\n    return a\n",
        "c.py": "from .d import _hidden\n",
        "d.py": "_hidden = 1\n_other = 2\n",
        "e.py": "from pkg import d\nimport pkg.d as dd\n\nx = d._other + dd._other\n",
        "clean.py": "from .d import __doc__ as doc\nfrom .sub.leaf import value\n",
        "sub/__init__.py": "from .leaf import value\n",
        "sub/leaf.py": "value = 1\n",
        "big.py": "x = 1\n" * (MAX_MODULE_LINES + 1),
        "fn.py": ("def long_one():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
                  + "\n\ndef long_with_reason():\n    # long: one table, read top to bottom\n"
                  + "    x = 1\n" * MAX_FUNCTION_LINES),
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    return pkg


def test_checker_finds_a_cycle_made_inside_a_function(bad_package):
    assert check(bad_package).cycles == [["pkg.a", "pkg.b"]]


def test_checker_finds_private_imports_and_attribute_access(bad_package):
    private = check(bad_package).private
    assert "pkg.c:1 imports pkg.d._hidden" in private
    assert "pkg.e:4 uses pkg.d._other" in private
    assert len(private) == 3   # d._other and dd._other in e.py; nothing from clean.py (dunder, public)


def test_checker_finds_big_modules_and_unexplained_long_functions(bad_package):
    found = check(bad_package)
    assert found.big_modules == [f"pkg.big: {MAX_MODULE_LINES + 1} lines"]
    assert len(found.long_functions) == 1 and found.long_functions[0].startswith("pkg.fn.long_one ")


def test_checker_passes_a_clean_package(tmp_path):
    pkg = tmp_path / "ok"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .low import f\n")
    (pkg / "low.py").write_text("def f():\n    return 1\n")
    (pkg / "high.py").write_text("from . import low\n\ndef g():\n    return low.f()\n")
    found = check(pkg)
    assert (found.cycles, found.private, found.big_modules, found.long_functions) == ([], [], [], [])
    assert set(collect(pkg)) == {"ok", "ok.low", "ok.high"}


# ------------------------------------------------------------------------------------------
# The rules on nml itself
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nml_findings() -> Findings:
    return check(ROOT / "nml")


def test_nml_has_no_import_cycle(nml_findings):
    assert nml_findings.cycles == []


def test_nml_modules_import_no_private_names_of_other_modules(nml_findings):
    assert nml_findings.private == []


def test_nml_modules_are_small(nml_findings):
    assert nml_findings.big_modules == []


def test_nml_long_functions_say_why(nml_findings):
    assert nml_findings.long_functions == []


def test_nml_checker_sees_the_whole_package(nml_findings):
    assert {"nml", "nml.results", "nml.cli", "nml.benchmarks"} <= set(nml_findings.edges)
    assert "nml.errors" in nml_findings.edges["nml.results"]   # imports are found at all
    assert "nml.experiments" in nml_findings.edges["nml.cli"]


def test_chapters_reach_no_private_names_of_nml():
    """Notebooks use the package's public names only (``data._world()`` was one)."""
    offenders = []
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        tree = ast.parse(path.read_text())
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nml"):
                for alias in node.names:
                    if _is_private(alias.name):
                        offenders.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
                    modules[alias.asname or alias.name] = node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("nml"):
                        modules[alias.asname or alias.name.split(".")[0]] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr)
                    and isinstance(node.value, ast.Name) and node.value.id in modules):
                offenders.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert offenders == []



def test_shared_facts_have_one_home():
    """The method sets, the method -> experiment map and lambda's default are written in
    nml.vocab only; every other module imports them (a second copy would drift)."""
    from nml import vocab
    facts = {tuple(vocab.METHODS): "METHODS", tuple(vocab.BLACKBOX_METHODS): "BLACKBOX_METHODS",
             tuple(vocab.WHITEBOX_METHODS): "WHITEBOX_METHODS",
             tuple(vocab.NMTUNE_METHODS): "NMTUNE_METHODS"}
    copies = []
    for path in sorted((ROOT / "nml").rglob("*.py")):
        if path.name == "vocab.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
                value = tuple(e.value for e in node.elts)
                if value in facts:
                    copies.append(f"{where} writes {facts[value]}")
            elif isinstance(node, ast.Dict) and len(node.keys) > 3:
                try:
                    value = ast.literal_eval(node)
                except ValueError:
                    continue
                if value == vocab.EXPERIMENT_OF:
                    copies.append(f"{where} writes EXPERIMENT_OF")
            elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                  and node.target.id == "lam" and isinstance(node.value, ast.Constant)
                  and node.value.value == vocab.PAPER_LAMBDA):
                copies.append(f"{where} writes lambda's default")
    assert copies == []
