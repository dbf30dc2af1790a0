"""Scoring continuations by log-likelihood in JAX, and the tasks' metrics.

Each (context, continuation) request is tokenized as lm-evaluation-harness does (`encode_pair`:
trailing spaces of the context move to the continuation; the continuation's ids are those of
context + continuation after the context's; an empty context becomes the end-of-text id). The
model sees (context + continuation)[-(max_len + 1):][:-1]: a context longer than the model's
window is cut from the left, and a continuation longer than the window keeps only its last
max_len tokens (`Requests.truncated` counts the requests cut at all).

`Scorer` runs the requests through the model in batches of `batch_size` rows, grouped into
length buckets (multiples of `bucket` tokens, so padding stays below one bucket per row), the
batch sharded over the mesh like training's; it returns each request's summed log-likelihood
(nats) and whether greedy decoding reproduces every continuation token.

Metrics (`task_score`), following lm-evaluation-harness:
  choice   acc: argmax of the choices' log-likelihoods is the gold one; acc_norm: the same for
           log-likelihood / len(choice) in characters (the choice without its leading space)
  lambada  acc: the last word is the greedy continuation; perplexity: exp(-mean log-likelihood)
  bpb      bits per byte of the gold continuation (-log-likelihood / ln 2 / UTF-8 bytes), averaged
           over items
Standard errors are the sample standard error of the mean over items.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from lawsearch.errors import UserError
from lawsearch.model.partitioning import axis_rules


# -- requests ------------------------------------------------------------------------------------
def encode_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
  """(context ids, continuation ids) of one request, as lm-evaluation-harness splits them."""
  spaces = len(context) - len(context.rstrip())
  if spaces:
    context, continuation = context[:-spaces], context[-spaces:] + continuation
  if not context:
    return [tok.eos_id], tok.encode(continuation)
  whole, ctx = tok.encode(context + continuation), tok.encode(context)
  return ctx, whole[len(ctx):]


@dataclasses.dataclass(frozen=True)
class Requests:
  """Tokenized requests, each one window of at most max_len inputs.

  tokens: per request, the model's inputs followed by the last target ((inputs + 1) ids);
  scored: per request, how many final targets belong to the continuation (>= 1);
  truncated: requests whose context + continuation exceeded max_len + 1 tokens.
  """

  tokens: tuple[tuple[int, ...], ...]
  scored: tuple[int, ...]
  truncated: int

  def __len__(self) -> int:
    return len(self.tokens)


def tokenize(tok, pairs: Sequence[tuple[str, str]], max_len: int) -> Requests:
  """Requests for (context, continuation) pairs; a UserError for an empty continuation."""
  tokens, scored, truncated = [], [], 0
  for context, continuation in pairs:
    ctx, cont = encode_pair(tok, context, continuation)
    if not cont:
      raise UserError(f"continuation {continuation!r} after context {context[-60:]!r} encodes "
                      "to no token; a task item needs a non-empty continuation")
    ids = ctx + cont
    truncated += len(ids) > max_len + 1
    ids = ids[-(max_len + 1):]
    tokens.append(tuple(ids))
    scored.append(min(len(cont), len(ids) - 1))
  return Requests(tuple(tokens), tuple(scored), truncated)


# -- the scorer ----------------------------------------------------------------------------------
def _score_fn(apply: Callable, mesh, rules):
  """(params, inputs, targets, mask) -> (log-likelihood [B] float32, greedy [B] bool).

  inputs, targets int32 [B, T]; mask float32 [B, T], 1 on continuation targets."""

  def score(params, inputs, targets, mask):
    with axis_rules(mesh, rules) if rules else contextlib.nullcontext():
      logits = apply(params, inputs).astype(jnp.float32)  # [B, T, V]
    logp = jax.nn.log_softmax(logits, axis=-1)
    target_logp = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # [B, T]
    ll = jnp.sum(target_logp * mask, axis=-1)
    hit = (jnp.argmax(logits, axis=-1) == targets) | (mask == 0)
    return ll, jnp.all(hit, axis=-1)

  return score


class Scorer:
  """Log-likelihoods of requests under a model, batched in length buckets and sharded.

  apply: (params, int32 [B, T]) -> logits [B, T, V]; params: its parameters, placed with
  `param_shardings` (a tree like params, or one sharding for all). mesh, rules: the device mesh
  and the logical-axis rules the model's constraints follow (rules () for a model without any);
  the batch is split over the mesh axes `batch_spec` names. batch_size: rows per batch, a
  multiple of the batch shards. bucket: padded lengths are multiples of it (and of nothing
  larger than the longest request).
  """

  def __init__(self, apply: Callable, params: Any, *, mesh, rules=(), param_shardings=None,
               batch_spec=PartitionSpec(), batch_size: int = 64, bucket: int = 16):
    if batch_size < 1 or bucket < 1:
      raise UserError(f"batch_size={batch_size} and bucket={bucket} must be >= 1")
    self.batch_size, self.bucket = batch_size, bucket
    batch = NamedSharding(mesh, batch_spec)
    replicated = NamedSharding(mesh, PartitionSpec())
    shardings = replicated if param_shardings is None else param_shardings
    self.params = jax.device_put(params, shardings)
    self.fn = jax.jit(_score_fn(apply, mesh, rules),
                      in_shardings=(shardings, batch, batch, batch),
                      out_shardings=(replicated, replicated))
    self.batch_sharding = batch

  def _batches(self, requests: Requests):
    """(request indices, inputs, targets, mask) per batch: requests sorted by length, cut into
    batches, each padded to its longest row's bucket (rows past the end are zeros, masked)."""
    lengths = np.array([len(t) - 1 for t in requests.tokens])
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), self.batch_size):
      idx = order[start:start + self.batch_size]
      width = int(min(math.ceil(lengths[idx].max() / self.bucket) * self.bucket, lengths.max()))
      inputs = np.zeros((self.batch_size, width), np.int32)
      targets = np.zeros((self.batch_size, width), np.int32)
      mask = np.zeros((self.batch_size, width), np.float32)
      for row, i in enumerate(idx):
        ids, n = requests.tokens[i], len(requests.tokens[i]) - 1
        inputs[row, :n], targets[row, :n] = ids[:-1], ids[1:]
        mask[row, n - requests.scored[i]:n] = 1
      yield idx, inputs, targets, mask

  def __call__(self, requests: Requests, progress: Callable[[int], None] | None = None):
    """(log-likelihood float64 [n], greedy bool [n]) of the n requests, in their order;
    `progress(k)` is called after each batch with the k requests it scored."""
    ll = np.zeros(len(requests), np.float64)
    greedy = np.zeros(len(requests), bool)
    for idx, inputs, targets, mask in self._batches(requests):
      out = self.fn(self.params, *(jax.device_put(a, self.batch_sharding)
                                   for a in (inputs, targets, mask)))
      batch_ll, batch_greedy = jax.device_get(out)
      ll[idx], greedy[idx] = batch_ll[:len(idx)], batch_greedy[:len(idx)]
      if progress:
        progress(len(idx))
    return ll, greedy


# -- metrics -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TaskScore:
  """One task's scores over `n` items (None where the task kind has no such metric).

  acc, acc_norm: fractions in [0, 1], with acc_se / acc_norm_se their standard errors;
  perplexity: LAMBADA's exp(-mean log-likelihood of the last word), per word;
  bits_per_byte: mean over items of the gold continuation's bits per UTF-8 byte;
  chance: the accuracy of a uniform random pick (mean of 1 / number of choices; 0 for LAMBADA,
  None for bpb tasks); metric: the field that enters the mean accuracy ("" for bpb tasks);
  truncated: requests cut to the model's window.
  """

  task: str
  n: int
  metric: str
  chance: float | None
  truncated: int
  acc: float | None = None
  acc_se: float | None = None
  acc_norm: float | None = None
  acc_norm_se: float | None = None
  perplexity: float | None = None
  bits_per_byte: float | None = None

  @property
  def accuracy(self) -> float | None:
    """The headline accuracy (acc or acc_norm, as `metric` says); None for bpb tasks."""
    return getattr(self, self.metric) if self.metric else None


def _mean_se(hits: np.ndarray) -> tuple[float, float]:
  n = len(hits)
  return float(hits.mean()), float(hits.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")


def pairs(items: Sequence[dict]) -> list[tuple[str, str]]:
  """Every item's (context, continuation) requests, item by item, choice by choice."""
  out = []
  for item in items:
    contexts = item["context"]
    for k, choice in enumerate(item["choices"]):
      out.append((contexts[k] if isinstance(contexts, list) else contexts, choice))
  return out


def task_score(task, items: Sequence[dict], ll: np.ndarray, greedy: np.ndarray,
               truncated: int = 0) -> TaskScore:
  """The metrics of `task` (a tasks.Task) from its requests' log-likelihoods and greedy flags,
  given in `pairs(items)` order."""
  counts = [len(item["choices"]) for item in items]
  if len(ll) != sum(counts) or len(greedy) != len(ll):
    raise ValueError(f"{len(ll)} scores for {sum(counts)} requests of {task.name}")
  base = dict(task=task.name, n=len(items), metric=task.metric, truncated=truncated)
  if task.kind == "lambada":
    acc, se = _mean_se(greedy.astype(np.float64))
    return TaskScore(**base, chance=0.0, acc=acc, acc_se=se,
                     perplexity=float(math.exp(-ll.mean())))
  if task.kind == "bpb":
    n_bytes = np.array([len(item["choices"][0].encode("utf-8")) for item in items], np.float64)
    return TaskScore(**base, chance=None,
                     bits_per_byte=float(np.mean(-ll / math.log(2) / n_bytes)))
  starts = np.cumsum([0] + counts)
  hits, hits_norm = [], []
  for item, lo, hi in zip(items, starts[:-1], starts[1:]):
    lls = ll[lo:hi]
    chars = np.array([max(len(c.removeprefix(" ")), 1) for c in item["choices"]], np.float64)
    hits.append(int(np.argmax(lls)) == item["gold"])
    hits_norm.append(int(np.argmax(lls / chars)) == item["gold"])
  acc, se = _mean_se(np.array(hits, np.float64))
  acc_norm, se_norm = _mean_se(np.array(hits_norm, np.float64))
  return TaskScore(**base, chance=float(np.mean([1 / c for c in counts])), acc=acc, acc_se=se,
                   acc_norm=acc_norm, acc_norm_se=se_norm)
