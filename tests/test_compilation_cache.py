"""The persistent compilation cache: a second process reuses the first one's compiled programs."""

import os
import subprocess
import sys

from lawsearch import compilation_cache

PROGRAM = """
import sys
import lawsearch
print(lawsearch.enable_compilation_cache(sys.argv[1]))
import jax, jax.numpy as jnp
print(jax.config.jax_compilation_cache_dir)
print(float(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))).sum()))
"""


def _entries(path):
  return sorted(n for n in os.listdir(path) if not n.startswith("."))


def test_a_second_process_reuses_the_first_ones_programs(tmp_path):
  cache = tmp_path / "cache"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  env.pop("LAWSEARCH_COMPILATION_CACHE", None)
  outputs = []
  for _ in range(2):
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(cache)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    outputs.append(done.stdout.split())
    if len(outputs) == 1:
      first = _entries(cache)
  assert outputs[0][:2] == [str(cache), str(cache)]  # set before jax was imported
  assert first and _entries(cache) == first  # the second process compiled nothing new
  assert outputs[0][2] == outputs[1][2]


def test_off_and_the_default_place(tmp_path, monkeypatch):
  monkeypatch.setenv("LAWSEARCH_COMPILATION_CACHE", "off")
  assert compilation_cache.enable() is None and compilation_cache.directory() is None
  monkeypatch.setenv("LAWSEARCH_COMPILATION_CACHE", "")
  monkeypatch.setenv("LAWSEARCH_CACHE", str(tmp_path))
  assert compilation_cache.directory() == str(tmp_path / "jax_compilation_cache")
