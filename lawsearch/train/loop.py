"""The train loop: config -> run directory (config.json, metrics.jsonl, checkpoints/, result.json).

Top to bottom, big_vision style: distributed setup, validation (before any compile), mesh, model
shapes, shardings, jit(init, out_shardings), restore, a donated jitted step, the loop with
metrics, held-out evals and checkpoints, and the result record. Every process runs this same
program; only process 0 writes records.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import shutil
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from lawsearch import inputs, paths, rundir, runs
from lawsearch.rundir import RunDir
from lawsearch.arch import ArchSpec
from lawsearch.errors import UserError
from lawsearch.laws.noise import block_bootstrap_se
from lawsearch.model import ModelConfig
from lawsearch.model.attention import resolve_impl
from lawsearch.model.layers import Llama3RopeScaling
from lawsearch.model.transformer import resolve_dtype
from lawsearch.train import mesh as mesh_lib
from lawsearch.train import metrics as metrics_lib
from lawsearch.train import optimizer as optimizer_lib
from lawsearch.train import step as step_lib

FILE_SOURCES = ("text", "tokens", "arrayrecord")


# Called as f(step, checkpointer or None) after every train step, once that step's checkpoint is
# saved (tests hook a crash mid-run in here: tests/crash_at_step/).
STEP_CALLBACKS: list[Callable[[int, Any], None]] = []


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


# -- config -> typed pieces ------------------------------------------------------------------------
def arch_spec(config) -> ArchSpec:
  return ArchSpec(**dict(config.model.arch))


def model_config(config, platform: str | None = None) -> ModelConfig:
  m = dict(config.model)
  platform = platform or jax.default_backend()
  dtype = resolve_dtype(m["dtype"], platform)
  attention = resolve_impl(m["attention_impl"], platform, dtype)
  # An imported model's config (lawsearch import-hf) also sets norm_eps and rope_scaling.
  scaling = m.get("rope_scaling")
  return ModelConfig(arch=arch_spec(config), max_seq_len=m["max_seq_len"],
                     rope_theta=m["rope_theta"], dtype=dtype, param_dtype=m["param_dtype"],
                     attention_impl=attention, decode_impl=m["decode_impl"],
                     remat=m["remat"], norm_eps=m.get("norm_eps", ModelConfig.norm_eps),
                     moe_bias_balancing=config_value(config, "train.moe_bias_update_rate") > 0,
                     rope_scaling=Llama3RopeScaling(**scaling) if scaling else None)


def total_steps(config) -> int:
  t = config.train
  if (t.steps > 0) == (t.tokens > 0):
    raise UserError(f"give exactly one of train.steps ({t.steps}) and train.tokens ({t.tokens}) "
                     "as a positive number")
  return t.steps if t.steps > 0 else math.ceil(t.tokens / (t.batch_size * t.seq_len))


# The numeric fields of a train config: dotted key -> (integer?, low, high, inclusive bounds?).
RANGES = {
    "train.steps": (True, 0, math.inf, True), "train.tokens": (True, 0, math.inf, True),
    "train.batch_size": (True, 1, math.inf, True), "train.seq_len": (True, 1, math.inf, True),
    "train.grad_accum_steps": (True, 1, math.inf, True),
    "train.log_every": (True, 1, math.inf, True), "train.eval_every": (True, 0, math.inf, True),
    "train.eval_batches": (True, 0, math.inf, True),
    "train.checkpoint_every": (True, 0, math.inf, True),
    "train.keep_checkpoints": (True, 1, math.inf, True),
    "optimizer.peak_lr": (False, 0, math.inf, False),
    "optimizer.warmup_steps": (False, 0, math.inf, True),
    "optimizer.final_lr_fraction": (False, 0, 1, True),
    "optimizer.b1": (False, 0, 1, False), "optimizer.b2": (False, 0, 1, False),
    "optimizer.eps": (False, 0, math.inf, False),
    "optimizer.weight_decay": (False, 0, math.inf, True),
    "optimizer.clip_norm": (False, 0, math.inf, False),
    "train.moe_load_balance_weight": (False, 0, math.inf, True),
    "train.moe_z_loss_weight": (False, 0, math.inf, True),
    "train.moe_bias_update_rate": (False, 0, math.inf, True),
}


def config_value(config, key: str):
  """The value of dotted `key` ("group.field") in `config`; a field that a config recorded before
  it existed (an older run's config.json) lacks has its rundir.EXTRA_DEFAULTS value."""
  group, field = key.split(".")
  if key in rundir.EXTRA_DEFAULTS:
    return config[group].get(field, rundir.EXTRA_DEFAULTS[key])
  return config[group][field]


def check_ranges(config) -> None:
  """A UserError naming the first numeric field (RANGES) of the wrong type or out of range."""
  for key, (integer, low, high, inclusive) in RANGES.items():
    value = config_value(config, key)
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
      raise UserError(f"{key}={value!r}: expected {kind}")
    inside = (low <= value <= high) if inclusive else (low < value < high)
    if not (inside and math.isfinite(value)):
      bounds = f"[{low:g}, {high:g}]" if inclusive else f"({low:g}, {high:g})"
      raise UserError(f"{key}={value!r}: expected {kind} in {bounds}")


def validate(config, n_devices: int) -> dict[str, int]:
  """Check the config against the devices before anything is compiled; returns the mesh shape."""
  check_ranges(config)
  t = config.train
  shape = mesh_lib.mesh_shape(config.mesh, n_devices)
  spec = arch_spec(config)
  if t.seq_len > config.model.max_seq_len:
    raise UserError(f"train.seq_len={t.seq_len} exceeds model.max_seq_len="
                     f"{config.model.max_seq_len}; shorten the sequence or raise the maximum")
  rules = dict(config.sharding_rules)
  target = rules.get("act_batch")
  axes = () if target is None else (target,) if isinstance(target, str) else tuple(target)
  shards = math.prod(shape.get(a, 1) for a in axes)
  accum = t.grad_accum_steps
  if accum < 1 or t.batch_size % accum:
    raise UserError(f"train.batch_size={t.batch_size} must be a multiple of "
                     f"train.grad_accum_steps={accum}")
  if (t.batch_size // accum) % shards:
    raise UserError(f"train.batch_size={t.batch_size} (micro-batch {t.batch_size // accum}) is "
                     f"not divisible by the {shards} batch shards of mesh axes {axes} "
                     f"{ {a: shape.get(a, 1) for a in axes} }; make it a multiple of {shards}")
  src, path = config.data.source, config.data.path
  if src in FILE_SOURCES:
    if not path:
      raise UserError(f"data.source={src!r} needs data.path (a file, directory or glob)")
    if not paths.is_remote(path) and not (os.path.exists(path) or glob.glob(path)):
      raise UserError(f"data.path={path!r} does not exist (data.source={src!r})")
  if src == "synthetic" and t.eval_batches < 1:
    raise UserError("train.eval_batches=0 evaluates the whole held-out split, which synthetic "
                     "data does not have; give train.eval_batches >= 1")
  if src == "synthetic" and config.data.vocab_size > spec.vocab_size:
    raise UserError(f"data.vocab_size={config.data.vocab_size} exceeds the model's vocab_size="
                     f"{spec.vocab_size}")
  total_steps(config)
  return shape


def check_memory(config, n_devices: int, members: int = 1) -> None:
  """A UserError when a train step of `members` seeds at once (a seed group, train/group.py)
  cannot fit this process's devices (`train_memory_bytes` each, against 90% of
  `device_memory`); before anything compiles."""
  t, spec = config.train, arch_spec(config)
  need, available = members * train_memory_bytes(config, n_devices), device_memory()
  if need > 0.9 * available:
    raise UserError(
        f"{spec} trained at micro-batch {t.batch_size // t.grad_accum_steps} x {t.seq_len} "
        + (f"as a group of {members} seeds " if members > 1 else "") + "needs at least "
        f"~{need / 2**30:.3g} GiB per device (float32 weights, gradients and Adam's two moments, "
        f"the activations a step keeps), more than 90% of the device's {available / 2**30:.3g} "
        "GiB; shrink the model, raise train.grad_accum_steps, set model.remat=True, or add "
        "devices")


def train_memory_bytes(config, n_devices: int) -> float:
  """A lower bound on the bytes one device holds in a train step: the float32 parameters, their
  gradients and Adam's two moments (16 bytes a parameter), sharded over the devices, and the
  activations the backward pass keeps for the micro-batch, spread over the devices by the batch:
  per layer and token its input, norms, q/k/v/o and the MLP's three widths (or one layer's worth
  with remat), the attention probabilities (n_heads x T), and the logits and their gradient."""
  t, spec = config.train, arch_spec(config)
  tokens = t.batch_size // t.grad_accum_steps * t.seq_len
  width = 6 * spec.d_model + 4 * spec.attn_width + 3 * spec.ffn_dim + spec.n_heads * t.seq_len
  layers = 1 if config.model.remat else spec.n_layers
  activations = 4 * tokens * (layers * width + 2 * spec.vocab_size)
  return (16 * spec.total_params + activations) / n_devices


def device_memory() -> float:
  """Bytes this process's first device can hold: its allocator's limit, or the host's RAM on
  CPU."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return float(stats["bytes_limit"])
  return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


# -- data ------------------------------------------------------------------------------------------
class SyntheticLoader:
  """Uniform random tokens; global batch i is a pure function of (seed, i), the same on any
  number of processes (each takes its contiguous rows)."""

  def __init__(self, vocab_size: int, seq_len: int, global_batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    self.vocab, self.seq_len, self.batch, self.seed = vocab_size, seq_len, global_batch_size, seed
    self.local = global_batch_size // process_count
    self.rows = slice(process_index * self.local, (process_index + 1) * self.local)
    self.index = 0

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, self.index])
    window = rng.integers(0, self.vocab, (self.batch, self.seq_len + 1), dtype=np.int32)
    self.index += 1
    return {"inputs": window[self.rows, :-1], "targets": window[self.rows, 1:]}

  def get_state(self) -> dict[str, Any]:
    return {"next_index": self.index}

  def set_state(self, state: dict[str, Any]) -> None:
    self.index = int(state["next_index"])


def make_loader(config, split: str):
  """The train loader, or the held-out one over the fixed evaluation sample: train.eval_batches
  batches of windows spread evenly over the whole held-out split (0: every window)."""
  t, data = config.train, config.data
  if data.source == "synthetic":
    seed = data.seed if split == "train" else data.seed + 10_000
    return SyntheticLoader(data.vocab_size, t.seq_len, t.batch_size, seed, jax.process_index(),
                           jax.process_count())
  from lawsearch.data import pipeline  # pylint: disable=import-outside-toplevel

  return pipeline.make_loader(data, seq_len=t.seq_len, global_batch_size=t.batch_size,
                              seed=data.seed, split=split,
                              model_vocab_size=config.model.arch.vocab_size,
                              heldout_windows=t.eval_batches * t.batch_size)


def corpus_passes_note(loader, steps: int) -> str | None:
  """A note when `steps` batches of `loader` read its split more than once (a scaling law assumes
  every training token is fresh); None for one pass or less, and for synthetic tokens."""
  per_pass = getattr(loader, "batches_per_epoch", 0)
  if not per_pass or steps <= per_pass:
    return None
  return (f"note: {steps:,} steps read the train split {steps / per_pass:.1f} times ({per_pass:,}"
          " batches a pass), and a scaling law assumes every training token is fresh: give a "
          "larger corpus (--config.data.source=text --config.data.path=FILE)")


# -- the program: shapes, shardings and jitted functions ------------------------------------------
@dataclasses.dataclass
class Program:
  spec: ArchSpec
  model: step_lib.Model
  mesh: Any
  shardings: step_lib.TrainState  # of NamedSharding
  batch_sharding: Any
  abstract_state: step_lib.TrainState  # of ShapeDtypeStruct with shardings
  init: Any  # jitted () -> TrainState
  train_step: Any  # jitted (state, batch) -> (state, metrics), state donated
  eval_step: Any  # jitted (params, batch) -> loss
  schedule: Any
  steps: int
  tx: Any  # the optax GradientTransformation
  rules: tuple  # the sharding rules, ((logical axis, mesh axes), ...)

  def abstract_batch(self, config):
    shape = (config.train.batch_size, config.train.seq_len)
    x = jax.ShapeDtypeStruct(shape, jnp.int32, sharding=self.batch_sharding)
    return {"inputs": x, "targets": x}


def build_program(config, devices=None, platform: str | None = None) -> Program:
  """Everything but data and state: validated, no compilation yet."""
  devices = list(jax.devices() if devices is None else devices)
  validate(config, len(devices))
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  rules = tuple(tuple(r) for r in config.sharding_rules)
  model = step_lib.Model(model_config(config, platform or devices[0].platform))
  steps = total_steps(config)
  tx, schedule = optimizer_lib.from_config(config.optimizer, steps)
  shardings = step_lib.state_shardings(model, tx, mesh, rules)
  batch_sharding = mesh_lib.batch_sharding(mesh, rules)
  init = jax.jit(step_lib.make_init(model, tx, config.seed), out_shardings=shardings)
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                          jax.eval_shape(init), shardings)
  batch_shardings = {"inputs": batch_sharding, "targets": batch_sharding}
  train_step = jax.jit(
      make_train_step(config, model, tx, schedule, mesh, rules),
      in_shardings=(shardings, batch_shardings),
      out_shardings=(shardings, mesh_lib.replicated(mesh)), donate_argnums=0)
  eval_step = jax.jit(step_lib.make_eval_step(model, mesh=mesh, rules=rules),
                      in_shardings=(shardings.params, batch_shardings),
                      out_shardings=mesh_lib.replicated(mesh))
  return Program(model.config.arch, model, mesh, shardings, batch_sharding, abstract, init,
                 train_step, eval_step, schedule, steps, tx, rules)


def make_train_step(config, model: step_lib.Model, tx, schedule, mesh, rules):
  """The unjitted (state, batch) -> (state, metrics) of `config` (step_lib.make_train_step with
  the config's accumulation and MoE loss settings): build_program jits it, a seed group
  (train/group.py) vmaps it first."""
  return step_lib.make_train_step(
      model, tx, schedule, grad_accum_steps=config.train.grad_accum_steps, mesh=mesh,
      rules=rules,
      moe_load_balance_weight=config_value(config, "train.moe_load_balance_weight"),
      moe_z_loss_weight=config_value(config, "train.moe_z_loss_weight"),
      moe_bias_update_rate=config_value(config, "train.moe_bias_update_rate"))


def run_checkpointer(config, workdir: str):
  """The Checkpointer of a run directory: <workdir>/checkpoints at the config's interval and
  retention, with the architecture as metadata (a checkpoint of another shape is refused)."""
  from lawsearch.train.checkpoint import Checkpointer  # pylint: disable=import-outside-toplevel

  t, meta = config.train, {"arch": arch_spec(config).fields()}
  return Checkpointer(RunDir(workdir).checkpoints, every=max(t.checkpoint_every, 1),
                      keep=t.keep_checkpoints, meta=meta)


def initialize_distributed(config) -> None:
  """jax.distributed.initialize as config.distributed says: "auto" (from the cluster's
  environment: SLURM, Cloud TPU, ...), "explicit" (the config's coordinator and ids), or "" (one
  process), except that "" inside a multi-task SLURM step (`srun -n 2 ...`) means "auto": every
  task of an srun launch joins one JAX program with no config change (so the run's hash, and its
  directory, stay those of the one-process run)."""
  d = config.distributed
  mode = d.initialize or ("auto" if int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1 else "")
  if not mode or jax.distributed.is_initialized():  # a sweep's later runs: already done
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes only
  if mode == "auto":
    jax.distributed.initialize()
  elif mode == "explicit":
    ids = [int(i) for i in str(d.local_device_ids).split(",") if i.strip()] or None
    jax.distributed.initialize(coordinator_address=d.coordinator_address,
                               num_processes=d.num_processes, process_id=d.process_id,
                               local_device_ids=ids)
  else:
    raise UserError(f"distributed.initialize={d.initialize!r}; use '', 'auto' or 'explicit'")


# -- the loop --------------------------------------------------------------------------------------
def _global(program: Program, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  return {k: jax.make_array_from_process_local_data(program.batch_sharding, v)
          for k, v in local.items()}


@dataclasses.dataclass(frozen=True)
class HeldoutLoss:
  """The held-out loss of one set of parameters on the run's fixed evaluation sample."""

  loss: float  # mean next-token loss, nats per token
  se: float  # its standard error: block bootstrap over the corpus blocks of the sample's windows
  windows: int  # sequences evaluated (of seq_len tokens each)
  tokens: int
  sources: dict[str, int]  # evaluated tokens per corpus source ({} when the data has no sources)
  block_loss: list[float]  # mean loss of the sample's windows in each corpus block, block order
  block_windows: list[int]  # windows of the sample in each block (paired comparisons of runs on
  #                           the same sample bootstrap the per-block differences)


def _sample_blocks(loader, batches: int) -> tuple[np.ndarray, dict[str, int]]:
  """Corpus block id of each global row of the first `batches` held-out batches, and the tokens
  per source they hold. Row order is process-major within a batch, as _global assembles it."""
  if isinstance(loader, SyntheticLoader):  # independent random rows: each its own block
    return np.arange(batches * loader.batch), {}
  p_count, local = jax.process_count(), loader.local_batch_size
  per_process = [loader.sample[p::p_count][:batches * local].reshape(batches, local)
                 for p in range(p_count)]
  windows = np.concatenate(per_process, axis=1).reshape(-1)
  starts = windows * loader.seq_len
  positions = (starts[:, None] + np.arange(loader.seq_len)).reshape(-1)
  return starts // loader.tokens.block_tokens, loader.tokens.heldout_sources(positions)


def heldout_loss(program: Program, config, params) -> HeldoutLoss:
  """Mean loss over the fixed held-out sample (see make_loader), with its standard error."""
  loader = make_loader(config, "heldout")
  wanted = config.train.eval_batches or loader.batches_per_epoch
  rows = [program.eval_step(params, _global(program, batch))
          for _, batch in zip(range(wanted), loader)]
  if not rows:
    raise UserError("the held-out split yielded no batch; lower train.batch_size or seq_len, or "
                     "raise data.heldout_fraction")
  losses = np.concatenate(jax.device_get(rows)).astype(np.float64)
  blocks, sources = _sample_blocks(loader, len(rows))
  _, means, counts = metrics_lib.block_means(losses, blocks)
  return HeldoutLoss(loss=float(losses.mean()), se=block_bootstrap_se(means, counts),
                     windows=len(losses), tokens=len(losses) * config.train.seq_len,
                     sources=sources, block_loss=[round(float(m), 6) for m in means],
                     block_windows=[int(c) for c in counts])


def run(config, workdir: str, *, progress: bool = True, repair: bool = False) -> runs.RunRecord:
  """The training stage's entry point: `train`, its record typed (`runs.RunRecord`)."""
  _check_arguments(config, workdir, progress, repair, "loop.run")
  return runs.RunRecord.from_dict(train(config, workdir, progress=progress, repair=repair),
                                  workdir)


def _check_arguments(config, workdir, progress, repair, function: str) -> None:
  if not all(hasattr(config, g) for g in ("model", "train", "optimizer", "data")):
    raise UserError(f"{function}: config must be a train config (a ConfigDict with model, train, "
                    f"optimizer and data groups, from configlib.load), got "
                    f"{type(config).__name__}")
  inputs.argument(workdir, "workdir", "path", function)
  inputs.argument(progress, "progress", "bool", function)
  inputs.argument(repair, "repair", "bool", function)


def train(config, workdir: str, *, progress: bool = True, repair: bool = False) -> dict:
  """Train (or resume) the run in `workdir`; returns the result record (see _train). A full or
  read-only disk is raised as its OSError (paths.disk_error) with the partial checkpoint that
  the failed save left removed, however the checkpointing library reported it."""
  return raising_disk_errors(lambda: _train(config, workdir, progress=progress, repair=repair),
                             [workdir])


def raising_disk_errors(train_fn: Callable[[], Any], workdirs: list[str]) -> Any:
  """train_fn()'s value; a full or read-only disk is raised as its OSError (paths.disk_error)
  with the partial checkpoints that the failed save left in `workdirs` removed."""
  try:
    return train_fn()
  except Exception as e:  # pylint: disable=broad-except
    disk = paths.disk_error(e, workdirs[0])
    if disk is None or disk is e:
      raise
    for workdir in workdirs:
      _remove_partial_checkpoints(workdir)
    raise disk from None


def step_events(t, done: int, steps: int, checkpointing: bool) -> tuple[bool, bool, bool]:
  """(save, evaluate, log) after step `done` of `steps` (t: config.train): a checkpoint every
  checkpoint_every steps and at the end, a held-out eval every eval_every (none at the end: the
  final one follows), a metrics record every log_every steps and at each of those."""
  save = checkpointing and (done % t.checkpoint_every == 0 or done == steps)
  evaluate = bool(t.eval_every) and done % t.eval_every == 0 and done != steps
  return save, evaluate, done % t.log_every == 0 or save or evaluate or done == steps


def _remove_partial_checkpoints(workdir) -> None:
  """Removes the temporary directories of checkpoints whose save failed (local runs)."""
  folder = RunDir(workdir).checkpoints
  if paths.is_remote(workdir) or not folder.is_dir():
    return
  for partial in folder.glob("*.orbax-checkpoint-tmp*"):
    shutil.rmtree(partial, ignore_errors=True)


def prepare(config, workdir: str, *, progress: bool = True, repair: bool = False,
            function: str = "loop.train") -> tuple[RunDir, dict, dict | None]:
  """The checks before a run in `workdir` builds anything: (its RunDir, the SAFE_ON_RESUME
  changes of `config` against its record (RunDir.config_changes), its result record when it is
  finished, else None). UserErrors for bad arguments, a workdir that is a file, holds imported
  weights or others' files, or a changed identity; a damaged log stops here unless `repair`."""
  _check_arguments(config, workdir, progress, repair, function)
  check_ranges(config)  # before the run directory is read or written
  initialize_distributed(config)
  if paths.exists(workdir) and not paths.is_dir(workdir):
    raise UserError(f"--workdir {workdir} is a file; give a directory (new or a run's)")
  run_dir = RunDir(workdir)
  if paths.exists(run_dir.imported):
    raise UserError(f"{workdir} holds imported weights (lawsearch import-hf), not a training "
                    "run: its checkpoint has parameters only, no optimizer or data state. Use it "
                    "with lawsearch eval, bench or export-hf; training on from imported weights "
                    "is not supported")
  run_dir.check_ours("--workdir")
  changes = run_dir.config_changes(config)
  finished = runs.read_result(workdir)
  if finished is not None:
    if jax.process_index() == 0:
      print(f"lawsearch train: {workdir} is finished (result.json); nothing to do", flush=True)
    return run_dir, changes, finished
  if jax.process_index() == 0:  # a damaged log stops the run now, before any compile
    run_dir.read_history(repair)
    if paths.exists(run_dir.metrics):
      metrics_lib.read(run_dir.metrics, repair)
  return run_dir, changes, None


def check_loss(loss: float, done: int, checked: int, last_good: int | None, ckpt, log,
               who: str = "") -> None:
  """Logs and raises NonFiniteLossError when the train loss `loss` at step `done` is not finite
  (`checked`: the step it was last finite at; `last_good`: the newest checkpoint's step, in
  `ckpt`; `who`: a prefix naming the run, for a seed group's member)."""
  if math.isfinite(loss):
    return
  log.write({"step": done, "loss": loss, "error": "non-finite loss"})
  raise NonFiniteLossError(
      f"{who}loss is {loss} at step {done} (finite when last checked, at step {checked}); "
      f"stopped. The last good checkpoint is "
      f"{'step ' + str(last_good) if last_good is not None else 'none'}"
      f"{' in ' + ckpt.directory if ckpt else ''}; lower optimizer.peak_lr or raise "
      "warmup, then rerun the same command to resume from it")


def interval_record(m: dict, done: int, tokens_per_step: int, tps: float, mfu: float | None,
                    compile_s: float | None) -> dict:
  """A metrics.jsonl record of one log interval: the step's metrics `m` (host floats: loss, lr,
  grad_norm, MoE metrics), tokens so far, `tps` (tokens/s of the interval), `mfu` (None: not
  known) and `compile_s` (None: not this process's first record)."""
  record = {"step": done, "loss": float(m["loss"]), "lr": float(m["lr"]),
            "grad_norm": float(m["grad_norm"]), "tokens": done * tokens_per_step,
            "tokens_per_s": tps}
  record.update({k: float(m[k]) for k in step_lib.MOE_METRICS if k in m})  # MoE only
  if mfu is not None:
    record["mfu"] = mfu
  if compile_s is not None:
    record["compile_s"] = compile_s
  return record


def finish(program: Program, config, workdir: str, params, log, *, train_loss: float,
           throughputs: list[float], compile_s: float) -> dict:
  """The run's final held-out loss (logged), its result record, written to result.json by
  process 0 (runs.write_result), and returned."""
  t = config.train
  final = heldout_loss(program, config, params)
  log.write({"step": program.steps, "heldout_loss": final.loss, "heldout_loss_se": final.se})
  record = runs.result_record(program.spec, tokens=program.steps * t.batch_size * t.seq_len,
                              loss=final.loss, loss_se=final.se, heldout_tokens=final.tokens,
                              heldout_sources=final.sources, heldout_block_loss=final.block_loss,
                              heldout_block_windows=final.block_windows, train_loss=train_loss,
                              steps=program.steps,
                              seq_len=t.seq_len, batch_size=t.batch_size, seed=config.seed,
                              peak_lr=config.optimizer.peak_lr,
                              preset=config.model.preset,
                              tokens_per_s=float(np.median(throughputs)) if throughputs else None,
                              compile_s=compile_s)
  history = RunDir(workdir).read_history()
  if history:
    record["config_history"] = history
  if jax.process_index() == 0:
    runs.write_result(workdir, record)
  return record


def _train(config, workdir: str, *, progress: bool = True, repair: bool = False) -> dict:
  """Train (or resume) the run in `workdir`; returns the result record.

  A finished run (its result.json exists) is not retrained: its record is returned. A workdir
  belongs to one run identity (lawsearch.rundir): a config that differs from its record outside
  rundir.SAFE_ON_RESUME is refused (UserError naming the fields); allowed changes are kept in its
  config_history.jsonl and the result record. Every record read back is checked first
  (inputs.read_file); `repair` drops the unreadable lines of its logs (metrics.jsonl,
  config_history.jsonl) instead of refusing them.
  """
  # ---- distributed, validation, program -------------------------------------------------------
  run_dir, changes, finished = prepare(config, workdir, progress=progress, repair=repair)
  if finished is not None:
    return finished
  check_memory(config, jax.device_count())
  program = build_program(config)
  main = jax.process_index() == 0
  spec, t = program.spec, config.train
  tokens_per_step = t.batch_size * t.seq_len
  flops_per_token = metrics_lib.train_flops_per_token(spec, t.seq_len)
  peak = metrics_lib.peak_flops(jax.devices()[0].device_kind, t.peak_flops)

  # ---- data, state (fresh or restored) --------------------------------------------------------
  loader = make_loader(config, "train")
  ckpt = None
  if t.checkpoint_every > 0:
    ckpt = run_checkpointer(config, workdir)
    restored = ckpt.restore(program.abstract_state, loader)
  else:
    restored = None
  if restored is None:
    state, start = program.init(), 0
  else:
    state, start = restored
    if isinstance(loader, SyntheticLoader):
      loader.set_state({"next_index": start})
  if main:  # empty until the first step has run: a failed start binds nothing
    paths.make_dirs(workdir)
  log = metrics_lib.MetricsLog(run_dir.metrics, enabled=main, repair=repair)
  log.truncate_after(start)
  if main:
    print(f"lawsearch train: {spec} | N={spec.non_embedding_params:,} total={spec.total_params:,}"
          f" | mesh {dict(program.mesh.shape)} | {tokens_per_step:,} tokens/step x "
          f"{program.steps} steps" + (f" | resuming at step {start}" if start else ""), flush=True)
    if note := corpus_passes_note(loader, program.steps):
      print(note, flush=True)

  # ---- compile ---------------------------------------------------------------------------------
  t0 = time.perf_counter()
  train_step = program.train_step.lower(program.abstract_state,
                                        program.abstract_batch(config)).compile()
  compile_s = time.perf_counter() - t0

  # ---- loop ------------------------------------------------------------------------------------
  bar = None
  if progress and main:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel

    bar = tqdm(total=program.steps, initial=start, unit="step", dynamic_ncols=True)
  last_good = ckpt.latest_step() if ckpt else None
  mark, mark_step = time.perf_counter(), start
  throughputs = []  # tokens/s of each logged interval of this process
  loss = log.last("loss")  # the train loss so far: a run resumed at its last step trains none
  try:
    for step in range(start, program.steps):
      state, m = train_step(state, _global(program, next(loader)))
      done = step + 1
      if step == start and main:  # the first step ran: the directory is this config's run
        jax.block_until_ready(m)
        run_dir.bind(config)
        if changes:
          run_dir.append_history(start, changes)
      save, evaluate, log_now = step_events(t, done, program.steps, ckpt is not None)
      if log_now:
        m = jax.device_get(m)
        loss = float(m["loss"])
        check_loss(loss, done, mark_step, last_good, ckpt, log)
        now = time.perf_counter()
        tps = (done - mark_step) * tokens_per_step / (now - mark)
        throughputs.append(tps)
        first = done - start <= t.log_every  # the first record of this process
        record = interval_record(
            m, done, tokens_per_step, tps,
            metrics_lib.mfu(tps, flops_per_token, peak, jax.device_count()) if peak else None,
            compile_s if first else None)
        mark, mark_step = now, done
        if evaluate:
          record["heldout_loss"] = heldout_loss(program, config, state.params).loss
        log.write(record)
        if bar is not None:
          bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
      if save:
        ckpt.save(done, state, loader, force=True)
        last_good = done
      if save or evaluate:  # keep evals and saves out of tokens/s
        mark = time.perf_counter()
      if bar is not None:
        bar.update(1)
      for callback in STEP_CALLBACKS:
        callback(done, ckpt)
  finally:
    if bar is not None:
      bar.close()
    if ckpt is not None:
      ckpt.close()

  # ---- result ----------------------------------------------------------------------------------
  return finish(program, config, workdir, state.params, log, train_loss=loss,
                throughputs=throughputs, compile_s=compile_s)
