"""Seed groups: the seeds of one shape trained as one compiled program (a leading member axis).

    train_group(configs, workdirs) -> [result record], one per member, in order

A group's members are ordinary runs: each keeps its own run directory (identity.json,
config.json, metrics.jsonl, checkpoints/, result.json) exactly as if trained alone
(loop.train), so a group resumes as a group or its members alone, and sweeps claim, skip and
report them one by one. The members share the data order (the seed sets only the
initialisation), so one loader feeds `step.group_step`, the vmapped train step, every member
taking the same batch. One device only: the member axis is not sharded.
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import jax.numpy as jnp

from lawsearch import paths, rundir
from lawsearch.errors import UserError
from lawsearch.train import loop
from lawsearch.train import metrics as metrics_lib
from lawsearch.train import step as step_lib


def differences(configs: Sequence) -> list[str]:
  """The dotted keys (sorted) on which `configs` differ, besides `seed`: [] for seeds of one
  shape, which may train as one group."""
  flat = [rundir.leaves(rundir.plain(c)) for c in configs]
  for f in flat:
    f.pop("seed", None)
  keys = set().union(*flat)
  return sorted(k for k in keys if any(f.get(k, None) != flat[0].get(k, None) for f in flat))


def check_devices() -> None:
  """A UserError unless this program sees exactly one device."""
  if jax.device_count() != 1:
    raise UserError(f"seed groups train on one device; this program sees {jax.device_count()} "
                    f"({jax.process_count()} process(es)): train the seeds one by one (without "
                    "--seed-groups) or show it one device (e.g. CUDA_VISIBLE_DEVICES=0)")


def train_group(configs: Sequence, workdirs: Sequence[str], *, progress: bool = True,
                repair: bool = False) -> list[dict]:
  """Train (or resume) K >= 2 seeds of one shape, member k in `workdirs[k]`, as one program;
  returns their result records in order.

  configs: train configs equal but for `seed` (else a UserError naming the keys). Finished
  members are returned as they are; with fewer than two left, or members whose checkpoints
  stand at different steps, the unfinished ones train alone (loop.train). Every member gets
  loop.train's checks (loop.prepare) and its record; `repair` as in loop.train.
  """
  if len(configs) != len(workdirs) or len(configs) < 2:
    raise UserError(f"a seed group needs K >= 2 configs and as many workdirs; got "
                    f"{len(configs)} configs and {len(workdirs)} workdirs")
  differ = differences(configs)
  if differ:
    raise UserError(f"a seed group's configs may differ only in seed; these differ: "
                    f"{', '.join(differ)}")
  prepared = [loop.prepare(c, w, progress=progress, repair=repair, function="group.train_group")
              for c, w in zip(configs, workdirs)]
  check_devices()
  records = [finished for _, _, finished in prepared]
  todo = [k for k, r in enumerate(records) if r is None]
  trained = None
  if len(todo) >= 2:
    dirs = [workdirs[k] for k in todo]
    trained = loop.raising_disk_errors(
        lambda: _train_together([configs[k] for k in todo], dirs, [prepared[k][:2] for k in todo],
                                progress, repair), dirs)
  if trained is None:
    trained = [loop.train(configs[k], workdirs[k], progress=progress, repair=repair)
               for k in todo]
  for k, record in zip(todo, trained):
    records[k] = record
  return records


class Checkpointers(tuple):
  """The members' loop.run_checkpointer, as STEP_CALLBACKS see them: wait() waits for all."""

  def wait(self):
    for ckpt in self:
      ckpt.wait()


def member(state, k: int):
  """Member k of a group's state (leaves [K, ...] -> [...])."""
  return jax.tree.map(lambda x: x[k], state)


def _restore(program, configs, workdirs, loader):
  """(group state [K, ...], its step, Checkpointers or None) from the members' checkpoints, or
  fresh at step 0; None (checkpointers closed) when they do not all stand at one step."""
  config = configs[0]
  if config.train.checkpoint_every <= 0:
    ckpts, restored = None, [None] * len(configs)
  else:
    ckpts = Checkpointers(loop.run_checkpointer(c, w) for c, w in zip(configs, workdirs))
    restored = [ckpt.restore(program.abstract_state, loader) for ckpt in ckpts]
  steps = sorted({0 if r is None else r[1] for r in restored})
  if len(steps) > 1:
    for ckpt in ckpts:
      ckpt.close()
    return None
  if steps == [0]:
    init = step_lib.make_group_init(program.model, program.tx, [c.seed for c in configs])
    return jax.jit(init)(), 0, ckpts
  if isinstance(loader, loop.SyntheticLoader):
    loader.set_state({"next_index": steps[0]})
  state = jax.tree.map(lambda *xs: jnp.stack(xs), *[r[0] for r in restored])
  return state, steps[0], ckpts


def _train_together(configs, workdirs, prepared, progress: bool, repair: bool) -> list | None:
  """The group's loop (loop._train's, over a member axis): the members' records, or None when
  their checkpoints stand at different steps (they then train alone). prepared: each member's
  (RunDir, changes) from loop.prepare."""
  # ---- program, data, state ---------------------------------------------------------------------
  config, count = configs[0], len(configs)
  loop.check_memory(config, 1, members=count)
  program = loop.build_program(config)
  main = jax.process_index() == 0
  spec, t = program.spec, config.train
  tokens_per_step = t.batch_size * t.seq_len
  flops_per_token = metrics_lib.train_flops_per_token(spec, t.seq_len)
  peak = metrics_lib.peak_flops(jax.devices()[0].device_kind, t.peak_flops)
  loader = loop.make_loader(config, "train")
  restored = _restore(program, configs, workdirs, loader)
  if restored is None:
    print(f"lawsearch train: the checkpoints of seeds {[c.seed for c in configs]} stand at "
          "different steps; training them one by one", flush=True)
    return None
  state, start, ckpts = restored
  logs = []
  for (run_dir, _), workdir in zip(prepared, workdirs):
    if main:  # empty until the first step has run: a failed start binds nothing
      paths.make_dirs(workdir)
    logs.append(metrics_lib.MetricsLog(run_dir.metrics, enabled=main, repair=repair))
    logs[-1].truncate_after(start)
  if main:
    print(f"lawsearch train: seeds {[c.seed for c in configs]} as one program | {spec} | "
          f"N={spec.non_embedding_params:,} | {tokens_per_step:,} tokens/step x {program.steps} "
          "steps" + (f" | resuming at step {start}" if start else ""), flush=True)
    if note := loop.corpus_passes_note(loader, program.steps):
      print(note, flush=True)

  # ---- compile ---------------------------------------------------------------------------------
  t0 = time.perf_counter()
  raw = loop.make_train_step(config, program.model, program.tx, program.schedule, program.mesh,
                             program.rules)
  train_step = jax.jit(step_lib.group_step(raw), donate_argnums=0).lower(
      state, program.abstract_batch(config)).compile()
  compile_s = time.perf_counter() - t0

  # ---- loop ------------------------------------------------------------------------------------
  bar = None
  if progress and main:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel

    bar = tqdm(total=program.steps, initial=start, unit="step", dynamic_ncols=True)
  last_good = ckpts[0].latest_step() if ckpts else None
  mark, mark_step = time.perf_counter(), start
  throughputs = []  # tokens/s of each member (each its own batch) per logged interval
  losses = [log.last("loss") for log in logs]  # the train losses so far
  try:
    for step in range(start, program.steps):
      state, m = train_step(state, loop._global(program, next(loader)))  # pylint: disable=W0212
      done = step + 1
      if step == start and main:  # the first step ran: the directories are these configs' runs
        jax.block_until_ready(m)
        for c, (run_dir, changes) in zip(configs, prepared):
          run_dir.bind(c)
          if changes:
            run_dir.append_history(start, changes)
      save, evaluate, log_now = loop.step_events(t, done, program.steps, ckpts is not None)
      if log_now:
        m = jax.device_get(m)  # each [K]
        now = time.perf_counter()
        tps = (done - mark_step) * tokens_per_step / (now - mark)
        throughputs.append(tps)
        for k, (c, workdir, log) in enumerate(zip(configs, workdirs, logs)):
          mk = {key: value[k] for key, value in m.items()}
          losses[k] = float(mk["loss"])
          loop.check_loss(losses[k], done, mark_step, last_good, ckpts and ckpts[k], log,
                          who=f"seed {c.seed} of the group ({workdir}): ")
          record = loop.interval_record(
              mk, done, tokens_per_step, tps,
              metrics_lib.mfu(tps, flops_per_token, peak, 1) if peak else None,
              compile_s if done - start <= t.log_every else None)
          if evaluate:
            record["heldout_loss"] = loop.heldout_loss(program, c, member(state, k).params).loss
          log.write(record)
        mark, mark_step = now, done
        if bar is not None:
          bar.set_postfix(loss=f"{min(losses):.4f}", refresh=False)
      if save:
        for k, ckpt in enumerate(ckpts):
          ckpt.save(done, member(state, k), loader, force=True)
        last_good = done
      if save or evaluate:  # keep evals and saves out of tokens/s
        mark = time.perf_counter()
      if bar is not None:
        bar.update(1)
      for callback in loop.STEP_CALLBACKS:
        callback(done, ckpts)
  finally:
    if bar is not None:
      bar.close()
    for ckpt in ckpts or ():
      ckpt.close()

  # ---- results ---------------------------------------------------------------------------------
  return [loop.finish(program, c, workdir, member(state, k).params, logs[k],
                      train_loss=losses[k], throughputs=throughputs, compile_s=compile_s)
          for k, (c, workdir) in enumerate(zip(configs, workdirs))]
