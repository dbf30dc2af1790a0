"""The LLaMA-style decoder (Flax NNX) and its KV cache.

    from lawsearch.model import ModelConfig, Transformer, KVCache, init_cache, build, param_count
"""

from lawsearch.model.transformer import (ATTENTION_IMPLS, DECODE_IMPLS, KVCache, ModelConfig,
                                         Transformer, init_cache)
from lawsearch.model.build import abstract_model, build, logical_axes, param_count

__all__ = ["ATTENTION_IMPLS", "DECODE_IMPLS", "KVCache", "ModelConfig", "Transformer",
           "abstract_model", "build", "init_cache", "logical_axes", "param_count"]
