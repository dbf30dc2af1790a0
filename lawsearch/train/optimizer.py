"""AdamW with linear warmup, cosine decay to a floor, and global-norm clipping (optax).

Schedule, for step s (0-based), peak p, warmup w, total T, floor fraction a (optax's linear and
cosine-decay schedules, joined at w):
    s <  w:  p * (s + 1) / w
    s >= w:  p * (a + (1 - a) * (1 + cos(pi * min(s - w, T - w) / (T - w))) / 2)
"""

from __future__ import annotations

import jax
import optax

from lawsearch.errors import UserError


def learning_rate(peak: float, warmup_steps: int, total_steps: int,
                  final_fraction: float = 0.1) -> optax.Schedule:
  """Warmup then cosine decay from `peak` to `final_fraction * peak` at `total_steps`."""
  if not peak > 0:
    raise UserError(f"peak learning rate must be positive, got {peak}")
  if not 0 <= warmup_steps < total_steps:
    raise UserError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps=} {total_steps=}")
  if not 0 <= final_fraction <= 1:
    raise UserError(f"final_fraction must be in [0, 1], got {final_fraction}")
  cosine = optax.cosine_decay_schedule(peak, total_steps - warmup_steps, alpha=final_fraction)
  if warmup_steps == 0:
    return cosine
  # peak / w at step 0, rising by peak / w a step: the peak at step w - 1
  warm = optax.linear_schedule(peak / warmup_steps, peak, max(warmup_steps - 1, 1))
  return optax.join_schedules([warm, cosine], [warmup_steps])


def decay_mask(params):
  """Weight decay on matrices only (ndim >= 2): not on RMSNorm scales."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def adamw(schedule: optax.Schedule, *, b1: float = 0.9, b2: float = 0.95, eps: float = 1e-8,
          weight_decay: float = 0.1, clip_norm: float = 1.0) -> optax.GradientTransformation:
  """clip_by_global_norm(clip_norm) -> AdamW(b1, b2, eps, weight_decay on matrices, lr=schedule)."""
  return optax.chain(
      optax.clip_by_global_norm(clip_norm),
      optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask))


def from_config(opt, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer and its schedule from `config.optimizer` (a ConfigDict or dict)."""
  warmup = opt["warmup_steps"]
  if 0 < warmup < 1:  # a fraction of the run
    warmup = int(round(warmup * total_steps))
  schedule = learning_rate(opt["peak_lr"], int(warmup), total_steps, opt["final_lr_fraction"])
  tx = adamw(schedule, b1=opt["b1"], b2=opt["b2"], eps=opt["eps"],
             weight_decay=opt["weight_decay"], clip_norm=opt["clip_norm"])
  return tx, schedule
