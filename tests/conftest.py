"""Test-wide setup: 8 fake CPU devices for sharding tests, set before jax is first imported."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# No LLVM backend optimisation: CPU compiles of the test programs get 2-4x faster (tests are
# compile-bound; set XLA_FLAGS yourself to override).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8" +
                           ("" if "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", "")
                            else " --xla_backend_optimization_level=0")).strip()
# The TPU runtime (for ahead-of-time TPU compiles) may be loaded by more than one test process.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
# Tests compile afresh: the persistent compilation cache the CLI turns on would make them depend
# on what earlier runs left on disk (tests/test_compilation_cache.py turns it on in a tmp dir).
os.environ.setdefault("LAWSEARCH_COMPILATION_CACHE", "off")
