"""lawsearch: scaling laws meet model architecture (arXiv 2510.18245) in JAX.

Importing the package is light: it pulls in no JAX, Flax, Orbax or Grain. Import submodules
directly: `lawsearch.arch`, `lawsearch.cost`, `lawsearch.laws`, `lawsearch.search`.
`lawsearch.enable_compilation_cache()` keeps compiled programs on disk across processes.
"""

from lawsearch.compilation_cache import enable as enable_compilation_cache

__version__ = "0.1.0"
