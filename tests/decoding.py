"""Prefill plus decode against the full forward pass, for any decoder the model package builds."""

import jax.numpy as jnp
import numpy as np
from flax import nnx


def assert_decode_matches_forward(model, tokens, full, prompt_lengths, max_len: int,
                                  steps: int = 4) -> None:
  """Prefills each row of `tokens` [B, T] to its prompt length, decodes `steps` tokens, and checks
  every next-token distribution against the full forward's logits `full` [B, T, V] to 1e-5 of
  their largest value (float32)."""
  tol = 1e-5 * np.abs(full).max()
  lengths = jnp.asarray(prompt_lengths)
  prompt = int(max(prompt_lengths))
  logits, cache = nnx.jit(lambda m, t, n: m.prefill(t, n, max_len))(model, tokens[:, :prompt],
                                                                    lengths)
  for b, n in enumerate(prompt_lengths):
    np.testing.assert_allclose(logits[b], full[b, n - 1], rtol=0, atol=tol)
  decode = nnx.jit(lambda m, t, c: m.decode(t, c))
  rows = jnp.arange(tokens.shape[0])
  for step in range(steps):
    positions = lengths + step
    logits, cache = decode(model, tokens[rows, positions], cache)
    for b in range(tokens.shape[0]):
      np.testing.assert_allclose(logits[b], full[b, int(positions[b])], rtol=0, atol=tol)
