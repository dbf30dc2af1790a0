"""Scoring continuations by log-likelihood in JAX, and the tasks' metrics.

Each (context, continuation) request is tokenized as lm-evaluation-harness does (`encode_pair`:
trailing spaces of the context move to the continuation; the continuation's ids are those of
context + continuation after the context's; an empty context becomes the end-of-text id). The
model sees (context + continuation)[-(max_len + 1):][:-1]: a context longer than the model's
window is cut from the left, and a continuation longer than the window keeps only its last
max_len tokens (`Requests.truncated` counts the requests cut at all).

`Scorer` runs the requests through the model in batches of at most `batch_tokens` padded tokens,
longest first, each of one length bucket (`bucket_width`, `batches`), the batch sharded over the
mesh like training's. Only the continuation positions reach the output head, whose logits are
folded a vocabulary chunk at a time into log-sum-exp, argmax and the target's logit
(`continuation_logprobs`): memory is bounded by the batch, never by items x length x vocabulary.
It returns each request's summed log-likelihood (nats) and whether greedy decoding reproduces
every continuation token.

Metrics (`task_score`), following lm-evaluation-harness:
  choice   acc: argmax of the choices' log-likelihoods is the gold one; acc_norm: the same for
           log-likelihood / len(choice) in characters (the choice without its leading space)
  lambada  acc: the last word is the greedy continuation; perplexity: exp(-mean log-likelihood)
  bpb      bits per byte of the gold continuation (-log-likelihood / ln 2 / UTF-8 bytes), averaged
           over items
Standard errors are the sample standard error of the mean over items (None for a single item).
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
def continuation_logprobs(h: jax.Array, head: jax.Array, targets: jax.Array,
                          vocab_chunk: int) -> tuple[jax.Array, jax.Array]:
  """log p(target) and the most likely id at each scored position, the vocabulary in chunks.

  h [..., D]: the final (normed) hidden states at the scored positions; head [D, V]: the output
  projection (logits = h @ head, formed in h's dtype and taken to float32 as the model does);
  targets [...] int32 in [0, V). The logits are formed `vocab_chunk` columns at a time (the last
  chunk overlaps the one before it, its repeated columns masked) and folded into a running
  log-sum-exp, a running argmax and the target's logit, so memory holds positions x vocab_chunk
  logits, never positions x V.

  Returns (log-probabilities [...] float32, argmax [...] int32: the first id of highest logit,
  as jnp.argmax picks it).
  """
  v = head.shape[1]
  size = min(vocab_chunk, v)

  def fold(i, carry):
    top, total, best, target = carry  # [...] each: running max, sum of exp(logit - top), ...
    first = i * size  # the chunk's first column not seen before
    start = jnp.minimum(first, v - size)
    cols = start + jnp.arange(size)
    logits = (h @ jax.lax.dynamic_slice_in_dim(head, start, size, axis=1)).astype(jnp.float32)
    logits = jnp.where(cols >= first, logits, -jnp.inf)  # [..., size]
    chunk_top = logits.max(axis=-1)
    new_top = jnp.maximum(top, chunk_top)
    total = total * jnp.exp(top - new_top) + jnp.exp(logits - new_top[..., None]).sum(axis=-1)
    best = jnp.where(chunk_top > top, start + jnp.argmax(logits, axis=-1), best)
    at = jnp.clip(targets - start, 0, size - 1)[..., None]
    picked = jnp.take_along_axis(logits, at, axis=-1)[..., 0]
    target = jnp.where((targets >= first) & (targets < start + size), picked, target)
    return new_top, total, best.astype(jnp.int32), target

  zeros = jnp.zeros(targets.shape, jnp.float32)
  init = (jnp.full(targets.shape, -jnp.inf, jnp.float32), zeros,
          jnp.zeros(targets.shape, jnp.int32), zeros)
  top, total, best, target = jax.lax.fori_loop(0, -(-v // size), fold, init)
  return target - top - jnp.log(total), best


def bucket_width(n: int, quantum: int) -> int:
  """The padded length of a row of n tokens: a multiple of `quantum`, and above 4 * quantum one
  of four steps per octave (n in (2^k, 2^(k+1)] rounds up to a multiple of 2^(k-2)), so padding
  stays under 25% while the distinct lengths, each a compile, grow only as log(n)."""
  step = max(quantum, 1 << max((n - 1).bit_length() - 3, 0))
  return -(-n // step) * step


@dataclasses.dataclass(frozen=True)
class Batch:
  """One batch of requests as the scorer runs it.

  index [n] int64: the requests it holds, in row order; inputs [R, W] int32: their tokens, one
  row each (rows past n and tokens past a request's length are 0, never scored); at [P] int32: the
  flat position (row * W + column) of every scored input, request after request, then padding;
  targets [P] int32: the token each one predicts; scored: the real ones (the rest pad P to a power
  of two).
  """

  index: np.ndarray
  inputs: np.ndarray
  at: np.ndarray
  targets: np.ndarray
  scored: int


def batches(requests: Requests, batch_tokens: int, shards: int = 1, quantum: int = 8):
  """The requests in batches, longest first, each of one length bucket (`bucket_width`, capped at
  the longest request): R = the most rows whose R * W fits `batch_tokens`, a multiple of `shards`
  (at least one row per shard); a bucket's last batch rounds its rows up to an eighth of R. Its
  scored positions are flattened and padded to a power of two. Few distinct shapes (each a
  compile), little padding."""
  lengths = np.array([len(t) - 1 for t in requests.tokens])
  order = np.argsort(-lengths, kind="stable")
  widths = np.minimum([bucket_width(int(n), quantum) for n in lengths], lengths.max())
  start = 0
  while start < len(order):
    width = int(widths[order[start]])
    full = max(batch_tokens // (width * shards), 1) * shards
    stop = start + 1
    while stop < min(start + full, len(order)) and widths[order[stop]] == width:
      stop += 1
    index = order[start:stop]
    granule = max(full // (8 * shards), 1) * shards
    rows = min(-(-len(index) // granule) * granule, full)
    scored = int(sum(requests.scored[i] for i in index))
    at = np.zeros(1 << (scored - 1).bit_length(), np.int32)
    targets = np.zeros_like(at)
    inputs = np.zeros((rows, width), np.int32)
    k = 0
    for row, i in enumerate(index):
      ids, n, m = requests.tokens[i], len(requests.tokens[i]) - 1, requests.scored[i]
      inputs[row, :n] = ids[:-1]
      at[k:k + m] = row * width + np.arange(n - m, n)
      targets[k:k + m] = ids[n - m + 1:]
      k += m
    yield Batch(index, inputs, at, targets, scored)
    start = stop


class Scorer:
  """Log-likelihoods of requests under a model, in length-bucketed batches of bounded size.

  features: (params, int32 [B, T]) -> the final hidden states [B, T, D]; head: params -> the
  output projection [D, V] (logits = features @ head; `Transformer.features`, `.output_head`).
  The model runs over each batch's tokens; only the scored positions go through the head, a
  vocabulary chunk at a time (continuation_logprobs), so no [B, T, V] array is ever formed.
  params are placed with `param_shardings` (a tree like params, or one sharding for all); mesh,
  rules: the device mesh and the logical-axis rules the model's constraints follow (() for none);
  batches are split over the mesh axes `batch_spec` names, into `shards` parts.
  batch_tokens: rows x padded length per batch (see `batches`), which bounds the activations;
  vocab_chunk: output-head columns per step; bucket: the padding quantum of row lengths.
  """

  def __init__(self, features: Callable, head: Callable, params: Any, *, mesh, rules=(),
               param_shardings=None, batch_spec=PartitionSpec(), shards: int = 1,
               batch_tokens: int = 4096, vocab_chunk: int = 4096, bucket: int = 8):
    if min(shards, batch_tokens, vocab_chunk, bucket) < 1:
      raise UserError(f"shards={shards}, batch_tokens={batch_tokens}, vocab_chunk={vocab_chunk} "
                      f"and bucket={bucket} must all be >= 1")
    self.shards, self.batch_tokens, self.bucket = shards, batch_tokens, bucket
    batch = NamedSharding(mesh, batch_spec)
    replicated = NamedSharding(mesh, PartitionSpec())
    shardings = replicated if param_shardings is None else param_shardings
    self.params = jax.device_put(params, shardings)
    scope = lambda: axis_rules(mesh, rules) if rules else contextlib.nullcontext()

    def hidden(params, inputs):  # [R, W] -> [F, D]: row after row, then zeros up to F
      with scope():
        h = features(params, inputs)
      h = h.reshape(-1, h.shape[-1])
      return jnp.pad(h, ((0, self.flat_rows(len(h)) - len(h)), (0, 0)))

    def score(params, h, at, targets):  # -> (log p(target) [P], argmax == target [P])
      with scope():
        w = head(params)
      logp, best = continuation_logprobs(h[at], w, targets, vocab_chunk)
      return logp, best == targets

    self.hidden = jax.jit(hidden, in_shardings=(shardings, batch), out_shardings=batch)
    self.score = jax.jit(score, in_shardings=(shardings, batch, replicated, replicated),
                         out_shardings=(replicated, replicated))
    self.batch_sharding, self.replicated = batch, replicated

  def flat_rows(self, n: int) -> int:
    """F, the rows of a batch's flattened hidden states: n = R * W tokens padded to at least
    batch_tokens, a multiple of the shards. One F for (almost) every batch: the head's program
    is compiled per number of scored positions only, not per batch shape."""
    return -(-max(n, self.batch_tokens) // self.shards) * self.shards

  def __call__(self, requests: Requests, progress: Callable[[int], None] | None = None):
    """(log-likelihood float64 [n], greedy bool [n]) of the n requests, in their order;
    `progress(k)` is called after each batch with the k requests it scored."""
    ll = np.zeros(len(requests), np.float64)
    greedy = np.zeros(len(requests), bool)
    for b in batches(requests, self.batch_tokens, self.shards, self.bucket):
      h = self.hidden(self.params, jax.device_put(b.inputs, self.batch_sharding))
      logp, hit = jax.device_get(self.score(self.params, h,
                                            *jax.device_put((b.at, b.targets), self.replicated)))
      starts = np.cumsum([0] + [requests.scored[i] for i in b.index[:-1]])
      ll[b.index] = np.add.reduceat(logp[:b.scored].astype(np.float64), starts)
      greedy[b.index] = np.logical_and.reduceat(hit[:b.scored], starts)
      if progress:
        progress(len(b.index))
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


def _mean_se(hits: np.ndarray) -> tuple[float, float | None]:
  """The mean of `hits` and its standard error (None for one item: undefined, and a record's
  JSON cannot hold NaN)."""
  n = len(hits)
  return float(hits.mean()), float(hits.std(ddof=1) / math.sqrt(n)) if n > 1 else None


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
