"""Ahead-of-time compile of the sharded train step for a Cloud TPU topology, on a CPU machine.

With the TPU runtime installed (`pip install -e '.[tpu-aot]'`), XLA compiles for a pod described by
`jax.experimental.topologies` (as MaxText's train_compile does), and `memory_analysis()` says how
many bytes each chip needs: a user learns whether a config compiles and fits before renting it.
Run with JAX_PLATFORMS=cpu (only one process may load the runtime unless
ALLOW_MULTIPLE_LIBTPU_LOAD=1).
"""

from __future__ import annotations

import dataclasses
import math
import time

from lawsearch.cost import HARDWARE
from lawsearch.errors import UserError

# Accelerator -> (lawsearch.cost.HARDWARE name, TensorCores counted per chip in "-N" names,
# topology shapes by chip count).
_V5P_SHAPES = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
               256: "4x8x8", 512: "8x8x8"}
_LITE_SHAPES = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
                256: "16x16"}
ACCELERATORS = {"v5p": ("tpu-v5p", 2, _V5P_SHAPES), "v5e": ("tpu-v5e", 1, _LITE_SHAPES),
                "v6e": ("tpu-v6e", 1, _LITE_SHAPES)}


def topology_name(name: str) -> tuple[str, str]:
  """("v5p:2x4x4", hardware name) from "v5p-64" (Cloud TPU names) or "v5p:2x4x4"."""
  kind, sep, rest = name.replace(":", "-", 1).partition("-") if ":" not in name else (
      name.partition(":"))
  if kind not in ACCELERATORS or not sep:
    raise UserError(f"unknown TPU topology {name!r}; give e.g. v5p-64, v5e-16, v6e-8 or "
                     f"v5p:2x2x2 (accelerators: {', '.join(ACCELERATORS)})")
  hw, cores_per_chip, shapes = ACCELERATORS[kind]
  if ":" in name:
    return name, hw
  try:
    chips = int(rest) // cores_per_chip
  except ValueError:
    raise UserError(f"TPU topology {name!r}: expected <accelerator>-<size>") from None
  if chips not in shapes:
    sizes = ", ".join(f"{kind}-{c * cores_per_chip}" for c in shapes)
    raise UserError(f"no {kind} slice named {name!r}; known: {sizes}")
  return f"{kind}:{shapes[chips]}", hw


_SHRINK = ("shrink the batch per chip (train.batch_size, or more data/fsdp shards), set "
           "model.remat=True, or take a larger slice")


@dataclasses.dataclass(frozen=True)
class AotReport:
  """What one topology's compile says. A compile that ran out of HBM has `out_of_memory` (the
  compiler's message) and no memory figures."""

  topology: str
  n_devices: int
  hardware: str
  compile_s: float
  bytes_per_device: int | None  # arguments + outputs - aliased + temporaries + code
  hbm_bytes: int
  memory: dict  # the raw memory_analysis() fields
  out_of_memory: str = ""

  @property
  def fits(self) -> bool:
    return not self.out_of_memory and self.bytes_per_device <= self.hbm_bytes

  def summary(self) -> str:
    head = f"{self.topology}: {self.n_devices} chip{'s' if self.n_devices > 1 else ''}, "
    if self.out_of_memory:
      return (f"{head}the compiler ran out of HBM ({self.out_of_memory}): DOES NOT FIT; "
              f"{_SHRINK}")
    verdict = "fits" if self.fits else f"DOES NOT FIT; {_SHRINK}"
    return (f"{head}compiled in {self.compile_s:.1f}s; "
            f"{self.bytes_per_device / 2**30:.2f} GiB per chip of {self.hbm_bytes / 2**30:.0f} "
            f"GiB HBM ({self.hardware}): {verdict}")


def compile_runs(configs: dict, topologies: list[str], log=print) -> bool:
  """Compiles each named config (name -> train config) for each topology, logging each run's
  `AotReport.summary()` and then how many fit; whether all do."""
  fits = 0
  for topology in topologies:
    for name, config in configs.items():
      report = compile_for_topology(config, topology)
      fits += report.fits
      log(f"{name}: {report.summary()}")
  total = len(configs) * len(topologies)
  log(f"{fits} of {total} run compiles fit {', '.join(topologies)}")
  return fits == total


def compile_for_topology(config, topology: str) -> AotReport:
  """Compile the config's sharded train step for `topology` and measure its memory per chip."""
  import jax  # pylint: disable=import-outside-toplevel
  from jax.experimental import topologies  # pylint: disable=import-outside-toplevel

  from lawsearch.train import loop  # pylint: disable=import-outside-toplevel

  name, hw = topology_name(topology)
  dims = tuple(int(n) for n in name.partition(":")[2].split("x"))
  # The runtime assumes hosts of 2x2x1 chips: a smaller slice is one host of its own shape.
  host = {"chips_per_host_bounds": dims + (1,) * (3 - len(dims))} if math.prod(dims) < 4 else {}
  try:
    devices = topologies.get_topology_desc(platform="tpu", topology_name=name, **host).devices
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(f"the TPU runtime could not describe {name!r} ({e}); install it with "
                       "pip install -e '.[tpu-aot]' and set JAX_PLATFORMS=cpu") from e
  program = loop.build_program(config, devices, platform="tpu")
  hbm = int(HARDWARE[hw].hbm_bytes)
  start = time.perf_counter()
  try:
    compiled = program.train_step.lower(program.abstract_state,
                                        program.abstract_batch(config)).compile()
  except jax.errors.JaxRuntimeError as e:
    message = str(e)
    if "RESOURCE_EXHAUSTED" not in message:
      raise
    first_line = message.split("RESOURCE_EXHAUSTED:", 1)[1].strip().splitlines()[0].rstrip(".")
    return AotReport(name, len(devices), hw, time.perf_counter() - start, None, hbm, {},
                     out_of_memory=first_line)
  compile_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  fields = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
            "temp_size_in_bytes", "generated_code_size_in_bytes")
  raw = {f: int(getattr(mem, f)) for f in fields}
  used = (raw["argument_size_in_bytes"] + raw["output_size_in_bytes"]
          - raw["alias_size_in_bytes"] + raw["temp_size_in_bytes"]
          + raw["generated_code_size_in_bytes"])
  return AotReport(name, len(devices), hw, compile_s, used, hbm, raw)
