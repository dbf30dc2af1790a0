"""A trained run on the downstream tasks: `lawsearch eval --workdir RUN --tasks all [--limit N]`.

The run's config.json rebuilds its model, mesh and tokenizer (the one its data were tokenized
with: the BPE trained for its corpus, a tokenizer file, or bytes); the newest checkpoint's
parameters are restored and every task's requests are scored with the model's trained window
(train.seq_len tokens; longer contexts are cut from the left), in batches of at most
`batch_tokens` padded tokens (scoring.Scorer: memory is bounded by the batch, not by the number of
items or tasks). The scores go into the run's record as flat keys: its result.json once it has
finished (so `lawsearch.runs.collect` carries them as columns), or imported.json for a model
brought in with `lawsearch import-hf` (its record: where it came from, no loss, no result.json):

    acc_<task>      the task's headline accuracy (acc or acc_norm, see tasks.TASKS), 0..1
    ppl_lambada     LAMBADA's per-word perplexity
    bpb_coqa        CoQA's bits per byte of the gold answer
    acc_mean        the mean headline accuracy over the eight accuracy tasks (only when all eight
                    were scored); acc_mean_chance the same mean for a uniform random pick
    downstream      the details: step, limit, window, tokenizer and every TaskScore field

An evaluation replaces the downstream keys of an earlier one. A run with neither record (still
training) is scored but not recorded.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from lawsearch import paths, runs
from lawsearch.data import tokens as tokens_lib
from lawsearch.downstream import scoring, tasks as tasks_lib
from lawsearch.errors import UserError
from lawsearch.rundir import RunDir, write_json_atomic
from lawsearch.table import format_table
from lawsearch.train import mesh as mesh_lib
from lawsearch.train import step as step_lib
from lawsearch.train.evaluate import restore

ACCURACY_TASKS = tuple(t.name for t in tasks_lib.TASKS.values() if t.metric)
RECORD_PREFIXES = ("acc_", "ppl_", "bpb_")


@dataclasses.dataclass(frozen=True)
class DownstreamResult:
  """A run's scores on the tasks. step: the checkpoint scored; window: tokens the model saw per
  request; limit: items per task (0: all); mean/mean_chance: the headline accuracy averaged over
  the accuracy tasks scored, and the same for a uniform random pick; recorded: the record the
  scores went into (result.json, or imported.json of an imported model), None when the run has
  neither (it has not finished)."""

  workdir: str
  step: int
  tokenizer: str
  window: int
  limit: int
  scores: tuple[scoring.TaskScore, ...]
  recorded: str | None

  @property
  def mean(self) -> float | None:
    accs = [s.accuracy for s in self.scores if s.accuracy is not None]
    return float(np.mean(accs)) if accs else None

  @property
  def mean_chance(self) -> float | None:
    chances = [s.chance for s in self.scores if s.accuracy is not None]
    return float(np.mean(chances)) if chances else None

  def summary(self) -> str:
    """What `lawsearch eval --tasks` prints: the per-task table with the mean, and where the
    scores went."""
    fmt = lambda v: "" if v is None else f"{v:.4f}"
    rows = [{"task": s.task, "n": s.n, "metric": s.metric or "bits/byte",
             "score": fmt(s.accuracy if s.metric else s.bits_per_byte),
             "se": fmt(getattr(s, f"{s.metric}_se") if s.metric else None),
             "chance": fmt(s.chance), "acc": fmt(s.acc), "acc_norm": fmt(s.acc_norm),
             "perplexity": fmt(s.perplexity), "truncated": s.truncated} for s in self.scores]
    if self.mean is not None:
      rows.append({"task": "mean", "n": "", "metric": "accuracy", "score": fmt(self.mean),
                   "se": "", "chance": fmt(self.mean_chance), "acc": "", "acc_norm": "",
                   "perplexity": "", "truncated": ""})
    return "\n".join([
        f"{self.workdir}: step {self.step}, window {self.window} tokens (longer requests cut "
        f"from the left: 'truncated'), tokenizer {self.tokenizer}"
        + (f", first {self.limit} items per task" if self.limit else ""),
        format_table(rows, list(rows[0])),
        f"recorded in {self.recorded}" if self.recorded else
        "not recorded: the run has no result.json yet (it has not finished)"])

  def record_keys(self) -> dict:
    """The keys this evaluation puts into the run's record (see module doc)."""
    keys = {}
    for s in self.scores:
      if s.accuracy is not None:
        keys[f"acc_{s.task}"] = s.accuracy
      if s.perplexity is not None:
        keys[f"ppl_{s.task}"] = s.perplexity
      if s.bits_per_byte is not None:
        keys[f"bpb_{s.task}"] = s.bits_per_byte
    if set(ACCURACY_TASKS) <= {s.task for s in self.scores}:
      keys["acc_mean"], keys["acc_mean_chance"] = self.mean, self.mean_chance
    keys["downstream"] = {"step": self.step, "limit": self.limit, "window": self.window,
                          "tokenizer": self.tokenizer,
                          "tasks": {s.task: dataclasses.asdict(s) for s in self.scores}}
    return keys


def _tokenizer(config):
  """The tokenizer the run's data were tokenized with."""
  if config.data.source == "synthetic":
    raise UserError("the run was trained on synthetic token ids, which have no tokenizer; "
                    "downstream tasks need text: evaluate a run trained on text")
  return tokens_lib.run_tokenizer(config.data)


def evaluate(workdir: str, task_spec: str = "all", *, limit: int = 0,
             overrides: Sequence[str] = (), batch_tokens: int = 4096, progress: bool = True,
             cache: str | os.PathLike | None = None) -> DownstreamResult:
  """Scores the newest checkpoint of `workdir` on the tasks `task_spec` names ("all" or
  comma-separated names) and records the scores in its record (module doc).

  limit: the first `limit` items of each task (0: all); batch_tokens: rows x padded length per
  batch (scoring.batches; at least one row per batch shard), which bounds the activations;
  progress: a bar per task; cache: the lawsearch cache holding the tasks (default: the data
  cache, $LAWSEARCH_CACHE or ~/.cache/lawsearch).
  """
  chosen = tasks_lib.select(task_spec)
  if limit < 0:
    raise UserError(f"--limit must be >= 0 (0: every item), got {limit}")
  if batch_tokens < 1:
    raise UserError(f"--batch-tokens must be >= 1, got {batch_tokens}")
  cache = Path(cache) if cache else tokens_lib.DataSpec().cache
  config, program, params, step = restore(workdir, overrides)
  tok = _tokenizer(config)
  window = min(config.train.seq_len, config.model.max_seq_len)
  rules = tuple(tuple(r) for r in config.sharding_rules)
  scanned = layer_scan(program.model, params, program.shardings.params)
  if scanned:
    features, head, params, shardings = scanned
  else:
    module = program.model.module
    features, head = lambda p, t: module(p).features(t), lambda p: module(p).output_head()
    shardings = program.shardings.params
  scorer = scoring.Scorer(features, head, params, mesh=program.mesh, rules=rules,
                          param_shardings=shardings, batch_spec=program.batch_sharding.spec,
                          shards=mesh_lib.batch_shards(program.mesh, rules),
                          batch_tokens=batch_tokens)
  main = jax.process_index() == 0
  _record(workdir)  # a damaged record is reported now, not after all the scoring
  scores = []
  for task in chosen:
    items = tasks_lib.load(task, cache, limit)
    requests = scoring.tokenize(tok, scoring.pairs(items), window)
    bar = None
    if progress and main:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel

      bar = tqdm(total=len(requests), desc=task.name, unit="req", dynamic_ncols=True)
    try:
      ll, greedy = scorer(requests, bar.update if bar else None)
    finally:
      if bar is not None:
        bar.close()
    scores.append(scoring.task_score(task, items, ll, greedy, requests.truncated))
  result = DownstreamResult(workdir, step, tok.name, window, limit, tuple(scores), None)
  run = RunDir(workdir)
  record, imported = _record(workdir)  # read again: it may have changed while scoring
  if record is None:
    return result
  if main:
    kept = {k: v for k, v in record.items()
            if k != "downstream" and not k.startswith(RECORD_PREFIXES)}
    if imported:
      write_json_atomic(run.imported, {**kept, **result.record_keys()})
    else:
      runs.write_result(workdir, {**kept, **result.record_keys()})
  return dataclasses.replace(result, recorded=str(run.imported if imported else run.result))


def layer_scan(model: step_lib.Model, params: dict, shardings: dict):
  """(features, head, params', shardings') that run the model's layers as one jax.lax.scan over
  their stacked parameters, or None where the layers differ in structure (a MoE model's leading
  dense layers) or there is one.

  model: the run's step.Model; params, shardings: its pure dicts of parameters and of their
  NamedShardings. features(params', int32 [B, T]) -> [B, T, D] and head(params') -> [D, V] do what
  Transformer.features and .output_head do, with one layer's program compiled instead of L: every
  batch shape of an evaluation is a compile, and on CPU the compiles of an unrolled 30-layer model
  take longer than scoring a few hundred items. params' = {"rest": the embedding, final norm
  (and output head), "layers": each layer leaf stacked [L, ...]}; the layers are moved out of
  `params` leaf by leaf as they are stacked, so that only one leaf is held twice at a time.
  """
  n = model.config.arch.n_layers
  names = [f"layer_{i}" for i in range(n)]
  shape = lambda tree: (jax.tree.structure(tree),
                        [(a.shape, a.dtype) for a in jax.tree.leaves(tree)])
  if n < 2 or any(shape(params[k]) != shape(params[names[0]]) for k in names[1:]):
    return None
  one = step_lib.Model(dataclasses.replace(
      model.config, arch=dataclasses.replace(model.config.arch, n_layers=1)))
  treedef = jax.tree.structure(params[names[0]])
  per_layer = [jax.tree.leaves(params.pop(k)) for k in names]
  stacked = []
  for j in range(len(per_layer[0])):
    stacked.append(jnp.stack([leaves[j] for leaves in per_layer]))
    for leaves in per_layer:
      leaves[j] = None
  stacked_params = {"rest": params, "layers": jax.tree.unflatten(treedef, stacked)}
  with_layers = lambda spec: PartitionSpec(None, *spec)
  stacked_shardings = {
      "rest": {k: v for k, v in shardings.items() if k not in names},
      "layers": jax.tree.map(lambda s: NamedSharding(s.mesh, with_layers(s.spec)),
                             shardings[names[0]])}

  def module(p, layer):  # the one-layer Transformer holding `layer` as its layer_0
    return one.module({**p["rest"], "layer_0": layer})

  def features(p, tokens):
    first = module(p, jax.tree.map(lambda a: a[0], p["layers"]))
    x, positions = first.embed_tokens(tokens)

    def body(x, layer):
      return module(p, layer).layer_0(x, positions)[0], None

    x, _ = jax.lax.scan(body, x, p["layers"])
    return first.final_norm(x)

  def head(p):
    return module(p, jax.tree.map(lambda a: a[0], p["layers"])).output_head()

  return features, head, stacked_params, stacked_shardings


def _record(workdir: str) -> tuple[dict | None, bool]:
  """(the run's record, whether it is an import record): result.json of a finished run,
  imported.json of a model brought in with import-hf, (None, False) for a run still training. A
  damaged one is an inputs.DamagedFile saying how to recover."""
  record = runs.read_result(workdir)
  run = RunDir(workdir)
  if record is not None or not paths.exists(run.imported):
    return record, False
  return run.read_json(run.imported, "import record (lawsearch import-hf)"), True
