"""The LLaMA-style decoder (Flax NNX) and its KV cache.

    from lawsearch.model import ModelConfig, Transformer, KVCache, init_cache, build, param_count

Shapes in docstrings and comments use one alphabet, here and in lawsearch.kernels: B batch,
T tokens of a chunk, M cache length, D d_model, N query heads, K KV heads, G = N / K query heads
per KV head, H head_dim, F ffn_dim, V vocabulary, S splits of a flash-decoding kernel.
"""

from lawsearch.model.transformer import (ATTENTION_IMPLS, DECODE_IMPLS, KVCache, ModelConfig,
                                         Transformer, init_cache)
from lawsearch.model.build import abstract_model, build, logical_axes, param_count

__all__ = ["ATTENTION_IMPLS", "DECODE_IMPLS", "KVCache", "ModelConfig", "Transformer",
           "abstract_model", "build", "init_cache", "logical_axes", "param_count"]
