"""Write a chosen architecture as files users train from directly.

    paths = export(spec, "surefire-1b", "out/")

writes, for one `ArchSpec`:
  NAME.arch.json       the shape and its derived numbers (`lawsearch arch --json` form)
  NAME.config.py       an ml-collections config for `lawsearch train --config=out/NAME.config.py`
                       (lawsearch/configs/train.py with arch=NAME.arch.json; arg as there)
  NAME.hf_config.json  a Hugging Face config.json (explicit head_dim; LlamaForCausalLM for square
                       attention, else MistralForCausalLM, MixtralForCausalLM for a mixture of
                       experts: lawsearch.hf.config.model_type)
  NAME.maxtext.yml     a MaxText model file (decoder_block llama2, or mixtral for a mixture of
                       experts; LLaMA-3 RoPE)

The last two only for shapes those classes compute (hf.config.unsupported: not MLA, and a mixture
of experts only as Mixtral's).
"""

from __future__ import annotations

import json

from lawsearch import inputs, paths
from lawsearch.arch import ArchSpec
from lawsearch.hf.config import RMS_NORM_EPS, ROPE_THETA, hf_config, unsupported

_TRAIN_CONFIG = '''"""{name}: {doc}

Train it (from any directory, with lawsearch installed):
  lawsearch train --config={path}:recipe=paper --workdir runs/{name}
The arg is lawsearch/configs/train.py's (recipe=..., data=..., runlocal); the shape is {arch_file}.
"""

import os

from lawsearch import configs
from lawsearch.configlib import load

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_CONFIG = os.environ.get("LAWSEARCH_TRAIN_CONFIG", configs.TRAIN)


def get_config(arg=None):
  arch_arg = "arch=" + os.path.join(HERE, {arch_file!r})
  return load(TRAIN_CONFIG + ":" + ",".join(filter(None, [arch_arg, arg])))
'''


def maxtext_yaml(spec: ArchSpec, name: str) -> str:
  """A MaxText model config (the fields of its configs/models/llama3-*.yml files, and for a
  mixture of experts those of mixtral-*.yml)."""
  mlp = spec.expert_ffn_dim if spec.is_moe else spec.ffn_dim
  lines = [
      f"# {name}: written by lawsearch (non-embedding N = {spec.non_embedding_params:,})",
      f"base_emb_dim: {spec.d_model}",
      f"base_num_query_heads: {spec.n_heads}",
      f"base_num_kv_heads: {spec.n_kv_heads}",
      f"base_mlp_dim: {mlp}",
      f"base_num_decoder_layers: {spec.n_layers}",
      f"head_dim: {spec.head_dim}",
      'mlp_activations: ["silu", "linear"]',
      f"vocab_size: {spec.vocab_size}",
      "enable_dropout: False",
      f"logits_via_embedding: {spec.tie_embeddings}",
      f"normalization_layer_epsilon: {RMS_NORM_EPS}",
      f"rope_max_timescale: {int(ROPE_THETA)}",
  ]
  if spec.is_moe:
    lines += [f"base_moe_mlp_dim: {mlp}", f"num_experts: {spec.n_experts}",
              f"num_experts_per_tok: {spec.top_k}", 'decoder_block: "mixtral"']
  else:
    lines.append('decoder_block: "llama2"')
  return "\n".join(lines) + "\n"


def export(spec: ArchSpec, name: str, out_dir: str, doc: str = "an architecture from lawsearch"
           ) -> dict[str, str]:
  """Write the four files for `spec` under `out_dir` (the first two where no Hugging Face class
  computes it: module doc); returns {kind: path}."""
  inputs.instance(spec, "spec", ArchSpec, "an ArchSpec", "export.export")
  for arg, value in (("name", name), ("doc", doc)):
    inputs.argument(value, arg, "string", "export.export")
  inputs.argument(out_dir, "out_dir", "path", "export.export")
  kinds = (("arch", "arch.json"), ("config", "config.py"))
  with_hf = not unsupported(spec)
  if with_hf:
    kinds += (("hf", "hf_config.json"), ("maxtext", "maxtext.yml"))
  written = {kind: str(paths.path(out_dir) / f"{name}.{suffix}") for kind, suffix in kinds}
  texts = {
      "arch": json.dumps(spec.describe(), indent=2) + "\n",
      "config": _TRAIN_CONFIG.format(name=name, doc=doc, path=written["config"],
                                     arch_file=f"{name}.arch.json"),
  }
  if with_hf:
    texts.update(hf=json.dumps(hf_config(spec), indent=2) + "\n",
                 maxtext=maxtext_yaml(spec, name))
  for kind, path in written.items():
    paths.write_text(path, texts[kind])
  return written
