"""lawsearch parameters <-> Hugging Face Llama/Mistral/Mixtral tensors (numpy, no torch).

lawsearch keeps weights as [in, out] with heads split out (wq [D, N, H], wo [N, H, D]); a torch
Linear stores [out, in] (q_proj [N*H, D], o_proj [D, N*H]). Both rotate halves in RoPE
(lawsearch.model.layers.rope), so q and k need no permutation, and query head n reads KV head
n // (N/K) in both. Names on the Hugging Face side:

    model.embed_tokens.weight                       [V, D]     embed
    model.layers.{i}.input_layernorm.weight         [D]        layer_{i}.attn_norm.scale
    model.layers.{i}.self_attn.{q,k,v}_proj.weight  [N*H, D]   layer_{i}.attn.w{q,k,v} [D, N, H]
    model.layers.{i}.self_attn.o_proj.weight        [D, N*H]   layer_{i}.attn.wo [N, H, D]
    model.layers.{i}.post_attention_layernorm.weight [D]       layer_{i}.mlp_norm.scale
    model.layers.{i}.mlp.{gate,up}_proj.weight      [F, D]     layer_{i}.mlp.{gate,up} [D, F]
    model.layers.{i}.mlp.down_proj.weight           [D, F]     layer_{i}.mlp.down [F, D]
    model.norm.weight                               [D]        final_norm.scale
    lm_head.weight                                  [V, D]     lm_head [D, V] (untied only)

A Mixtral layer's MLP is its sparse block (E experts of width F, j < E), as save_pretrained
writes it (transformers 5 fuses the experts in memory and splits them again on save):

    model.layers.{i}.block_sparse_moe.gate.weight   [E, D]     layer_{i}.mlp.router [D, E]
    ...block_sparse_moe.experts.{j}.w1.weight       [F, D]     layer_{i}.mlp.gate[j] [D, F]
    ...block_sparse_moe.experts.{j}.w3.weight       [F, D]     layer_{i}.mlp.up[j] [D, F]
    ...block_sparse_moe.experts.{j}.w2.weight       [D, F]     layer_{i}.mlp.down[j] [F, D]

Imports also take the fused form (`model.layers.{i}.mlp.gate.weight`, `.mlp.experts.gate_up_proj`
[E, 2F, D], `.mlp.experts.down_proj` [E, D, F]). A path ending in an integer names one expert's
slice of lawsearch's stacked array.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from lawsearch.arch import ArchSpec
from lawsearch.errors import UserError


def _layer(i: int, spec: ArchSpec) -> dict[str, tuple]:
  """HF name -> lawsearch path within the params tree, for layer i."""
  hf, ls = f"model.layers.{i}.", (f"layer_{i}",)
  out = {
      hf + "input_layernorm.weight": ls + ("attn_norm", "scale"),
      hf + "self_attn.q_proj.weight": ls + ("attn", "wq"),
      hf + "self_attn.k_proj.weight": ls + ("attn", "wk"),
      hf + "self_attn.v_proj.weight": ls + ("attn", "wv"),
      hf + "self_attn.o_proj.weight": ls + ("attn", "wo"),
      hf + "post_attention_layernorm.weight": ls + ("mlp_norm", "scale"),
  }
  if not spec.is_moe:
    return {**out, **{hf + f"mlp.{w}_proj.weight": ls + ("mlp", w) for w in ("gate", "up", "down")}}
  moe = hf + "block_sparse_moe."
  out[moe + "gate.weight"] = ls + ("mlp", "router")
  for j in range(spec.n_experts):
    out.update({moe + f"experts.{j}.{hf_w}.weight": ls + ("mlp", w, j)
                for hf_w, w in (("w1", "gate"), ("w3", "up"), ("w2", "down"))})
  return out


def names(spec: ArchSpec) -> dict[str, tuple]:
  """Every HF tensor name of `spec` -> its path in lawsearch's params tree (module doc)."""
  out = {"model.embed_tokens.weight": ("embed",), "model.norm.weight": ("final_norm", "scale")}
  for i in range(spec.n_layers):
    out.update(_layer(i, spec))
  if not spec.tie_embeddings:
    out["lm_head.weight"] = ("lm_head",)
  return out


def _leaf(path: tuple) -> str:
  """The parameter's name: the path's last string (an expert's index may follow it)."""
  return path[-2] if isinstance(path[-1], int) else path[-1]


def _to_hf(path: tuple, w: np.ndarray) -> np.ndarray:
  """One lawsearch array as its HF tensor (torch Linear layout [out, in])."""
  leaf = _leaf(path)
  if leaf in ("wq", "wk", "wv"):  # [D, N, H] -> [N*H, D]
    return w.reshape(w.shape[0], -1).T
  if leaf == "wo":  # [N, H, D] -> [D, N*H]
    return w.reshape(-1, w.shape[-1]).T
  if leaf in ("gate", "up", "down", "lm_head", "router"):
    return w.T
  return w  # embed [V, D], norm scales [D]


def _from_hf(path: tuple, t: np.ndarray, spec: ArchSpec) -> np.ndarray:
  """One HF tensor as lawsearch's array (the inverse of _to_hf)."""
  leaf, h = _leaf(path), spec.head_dim
  if leaf in ("wq", "wk", "wv"):
    return t.T.reshape(spec.d_model, -1, h)
  if leaf == "wo":
    return t.T.reshape(-1, h, spec.d_model)
  if leaf in ("gate", "up", "down", "lm_head", "router"):
    return t.T
  return t


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


_FUSED = re.compile(r"(model\.layers\.\d+\.)mlp\.(gate\.weight|experts\.gate_up_proj|"
                    r"experts\.down_proj)$")


def _unfused(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """`tensors` with transformers 5's fused Mixtral experts split into save_pretrained's names."""
  out = {}
  for name, t in tensors.items():
    match = _FUSED.match(name)
    if not match:
      out[name] = t
      continue
    moe, what = match.group(1) + "block_sparse_moe.", match.group(2)
    t = np.asarray(t)
    if what == "gate.weight":
      out[moe + "gate.weight"] = t
    elif what == "experts.down_proj":  # [E, D, F]
      out.update({moe + f"experts.{j}.w2.weight": t[j] for j in range(len(t))})
    else:  # gate_up_proj [E, 2F, D]: gate rows first
      f = t.shape[1] // 2
      for j in range(len(t)):
        out[moe + f"experts.{j}.w1.weight"], out[moe + f"experts.{j}.w3.weight"] = (
            t[j, :f], t[j, f:])
  return out


def to_hf(params: Mapping, spec: ArchSpec) -> dict[str, np.ndarray]:
  """lawsearch params (pure dict of arrays) -> {HF name: contiguous numpy array}."""
  return {name: np.ascontiguousarray(_to_hf(path, np.asarray(_get(params, path))))
          for name, path in names(spec).items()}


def from_hf(tensors: Mapping[str, np.ndarray], spec: ArchSpec, shapes: Mapping,
            dtype: str = "float32") -> dict:
  """{HF name: array} -> lawsearch params (pure dict of numpy `dtype` arrays).

  shapes: the params tree of ShapeDtypeStruct (`lawsearch.train.step.Model(config).shapes`); every
  tensor must be there with the shape `spec` implies. A tied model's lm_head.weight, if present
  (some files carry the tied copy), must equal the embedding.
  """
  wanted = names(spec)
  tensors = _unfused(tensors) if spec.is_moe else tensors
  missing = [n for n in wanted if n not in tensors]
  if missing:
    raise UserError(f"the checkpoint lacks {len(missing)} tensor(s) of this architecture, e.g. "
                    f"{missing[:3]}; is config.json the one these weights were saved with?")
  params: dict = {}
  for name, path in wanted.items():
    w = _from_hf(path, np.asarray(tensors[name]), spec)
    expert = path[-1] if isinstance(path[-1], int) else None
    array = path if expert is None else path[:-1]
    full = tuple(_get(shapes, array).shape)
    if w.shape != (full if expert is None else full[1:]):
      raise UserError(f"tensor {name} has shape {tuple(np.shape(tensors[name]))}, which does not "
                      f"fit config.json's architecture ({spec}); the config and weights disagree")
    node = params
    for key in array[:-1]:
      node = node.setdefault(key, {})
    if expert is None:
      node[array[-1]] = w.astype(dtype, copy=False)  # a view of the tensor where it can be
    else:  # one expert's slice of the stacked [E, ...] array
      node.setdefault(array[-1], np.empty(full, dtype))[expert] = w
  extra = sorted(n for n in set(tensors) - set(wanted) - {"lm_head.weight"}
                 if not n.endswith("rotary_emb.inv_freq"))  # a buffer older files carry
  if extra:
    raise UserError(f"the checkpoint has {len(extra)} tensor(s) lawsearch's decoder has no place "
                    f"for, e.g. {extra[:3]}; only Llama/Mistral/Mixtral decoders import")
  if spec.tie_embeddings and "lm_head.weight" in tensors and not np.array_equal(
      np.asarray(tensors["lm_head.weight"]), np.asarray(tensors["model.embed_tokens.weight"])):
    raise UserError("config.json ties the embeddings (tie_word_embeddings) but lm_head.weight "
                    "differs from model.embed_tokens.weight; fix tie_word_embeddings")
  return params
