"""House rules: the fitter and the search import without Flax, Orbax, Grain or TensorFlow; the
arithmetic (arch, cost) without JAX at all; the package's imports form no cycle and never reach up
a layer (LAYERS, lowest first)."""

import ast
import functools
import pathlib
import subprocess
import sys

import pytest

HEAVY = ("flax", "orbax", "grain", "tensorflow")


@pytest.mark.parametrize("module,banned", [
    ("lawsearch", HEAVY + ("jax",)),
    ("lawsearch.arch", HEAVY + ("jax",)),
    ("lawsearch.cost", HEAVY + ("jax",)),
    ("lawsearch.search", HEAVY),
    ("lawsearch.search_stage", HEAVY),
    ("lawsearch.cli", HEAVY + ("jax",)),
    ("lawsearch.commands.runs", HEAVY + ("jax",)),
])
def test_light_imports(module, banned):
  code = (f"import sys, {module}\n"
          f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({banned!r})))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]", f"{module} imported {out.stdout.strip()}"


# -- the import graph, read from the source with `ast` (nothing is imported) ----------------------
PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "lawsearch"

# DESIGN.md's package map as layers, lowest first. A module may import from its own layer and the
# layers below it, never from one above. A name stands for that module or package and everything in
# it; "lawsearch" stands for the root package's __init__ only.
LAYERS = [
    # foundations: errors, paths and checked input files, ml-collections plumbing, process setup,
    # text tables
    ("lawsearch", "lawsearch.errors", "lawsearch.paths", "lawsearch.inputs", "lawsearch.configlib",
     "lawsearch.compilation_cache", "lawsearch.hostmem", "lawsearch.table"),
    ("lawsearch.arch",),
    ("lawsearch.cost", "lawsearch.recipe"),
    ("lawsearch.configs",),  # get_config files build on arch and recipe; hf.bridge reads its paths
    ("lawsearch.rundir", "lawsearch.runs"),  # the run directory contract; laws.fit_runs reads runs
    ("lawsearch.laws",),
    ("lawsearch.search", "lawsearch.attention_search", "lawsearch.moe_search", "lawsearch.regimes",
     "lawsearch.tradeoff"),
    ("lawsearch.kernels",),
    ("lawsearch.model",),
    ("lawsearch.data",),
    ("lawsearch.train",),
    ("lawsearch.bench",),
    ("lawsearch.downstream",),  # scores trained runs: train.evaluate, train.mesh
    ("lawsearch.hf",),
    ("lawsearch.export",),  # writes hf.config's config.json for search's picks
    ("lawsearch.report", "lawsearch.search_stage"),  # write their picks through export
    ("lawsearch.demo",),  # the end-to-end driver over all of the above
    ("lawsearch.commands", "lawsearch.cli"),  # the subcommands' handlers, and the table of them
]


def _modules() -> dict[str, pathlib.Path]:
  """Dotted name -> file of every module of the package (a package by its __init__.py)."""
  out = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return out


def _imports(name: str, path: pathlib.Path, modules) -> set[str]:
  """The lawsearch modules that `name` imports, at module level or inside functions alike.

  `from lawsearch.a import b` counts as importing lawsearch.a.b where that is a module, else
  lawsearch.a. A parent package run only because a submodule of it is imported does not count.
  """
  def module_of(dotted: str) -> str:
    while dotted not in modules:
      dotted = dotted.rpartition(".")[0]
    return dotted

  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found |= {module_of(a.name) for a in node.names if a.name.split(".")[0] == "lawsearch"}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: from the package, up level - 1
        anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      if base.split(".")[0] == "lawsearch":
        found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else module_of(base)
                  for a in node.names}
  return found - {name}


@functools.cache
def _graph() -> dict[str, set[str]]:
  modules = _modules()
  return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int | None:
  """Index in LAYERS of the layer that holds `module` (the longest matching name), else None."""
  matches = [(len(n), i) for i, names in enumerate(LAYERS) for n in names
             if module == n or (n != "lawsearch" and module.startswith(n + "."))]
  return max(matches)[1] if matches else None


def test_every_module_has_a_layer():
  assert [m for m in _graph() if _layer(m) is None] == [], "place these modules in LAYERS"


def test_no_import_cycle():
  graph, state, cycles = _graph(), {}, []  # state: 1 on the current path, 2 done

  def visit(module, path):
    state[module] = 1
    for imported in sorted(graph[module]):
      if state.get(imported) == 1:
        cycles.append(" -> ".join(path[path.index(imported):] + [imported]))
      elif imported not in state:
        visit(imported, path + [imported])
    state[module] = 2

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_no_import_from_a_layer_above():
  layer = {module: _layer(module) for module in _graph()}  # unplaced ones fail the test above
  violations = [f"{module} (layer {layer[module]}) imports {imported} (layer {layer[imported]})"
                for module, imported_set in sorted(_graph().items())
                for imported in sorted(imported_set)
                if None not in (layer[module], layer[imported]) and layer[module] < layer[imported]]
  assert violations == [], "imports from a layer above:\n" + "\n".join(violations)
