"""The two entry points: a run's checkpoint as a Hugging Face model directory, and back.

    export_hf("runs/surefire", "out/surefire-hf")   # HFExport: model.safetensors, config.json,
                                                     # generation_config.json, tokenizer files
    import_hf("Llama-3.2-1B/", "runs/llama3.2-1b")  # HFImport: a run directory lawsearch opens

Export restores one checkpoint's parameters (any step; a checkpoint a sharded run wrote restores
onto one device) and writes them with safetensors' numpy API (no torch) in the run's parameter
dtype. Import reads a local Llama/Mistral/Mixtral directory (model.safetensors or sharded files with
model.safetensors.index.json; nothing is downloaded) and writes a run directory: config.json
(configs/train.py for the shape, with the model's RoPE, norm epsilon and context), arch.json, the
tokenizer, the parameters as checkpoint 0 (params only, no optimizer state) and imported.json,
the run's record: the source and the end-of-sequence ids (`eos_token_ids`, from
generation_config.json and config.json; generation stops at any of them), to which `lawsearch eval
--tasks` adds its scores. `lawsearch eval` and `lawsearch bench --workdir` open it like a trained
run.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np

from lawsearch import configlib, configs, inputs
from lawsearch.rundir import RunDir, write_json_atomic
from lawsearch.data import tokens
from lawsearch.errors import UserError
from lawsearch.hf import config as hf_config_lib
from lawsearch.hf import tokenizer as hf_tokenizer
from lawsearch.hf import weights

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


@dataclasses.dataclass(frozen=True)
class HFExport:
  """A checkpoint written as a Hugging Face model directory.

  model_type: "llama" (square attention) or "mistral" (hf.config.model_type); files: every path
  written; n_params: scalars in model.safetensors.
  """

  workdir: str
  out_dir: str
  step: int
  model_type: str
  n_params: int
  files: tuple[str, ...]

  def summary(self) -> str:
    """The checkpoint, where it went, its architecture and size, then the files, one a line."""
    return "\n".join([f"{self.workdir} step {self.step} -> {self.out_dir}: {self.model_type} "
                      f"architecture, {self.n_params:,} parameters"]
                     + [f"  {f}" for f in self.files])


@dataclasses.dataclass(frozen=True)
class HFImport:
  """A Hugging Face model directory written as a lawsearch run directory.

  tokenizer: the tokenizer file the run's data.tokenizer names, or None when the source had none.
  """

  source: str
  workdir: str
  model: hf_config_lib.HFModel
  tokenizer: str | None

  def summary(self) -> str:
    return self.describe(self.model.model_type,
                         "no tokenizer.json or tokenizer.model in the source:")

  def describe(self, origin: str, no_tokenizer: str) -> str:
    """Two lines: the source (`origin` says what it was) -> the run with the model's shape,
    size, RoPE and context; then its tokenizer, or `no_tokenizer` and how to give one."""
    m = self.model
    return (f"{self.source} ({origin}) -> {self.workdir}: {m.spec}, N={m.spec.total_params:,} "
            f"in all, RoPE theta {m.rope_theta:g}{' (llama3 scaling)' if m.rope_scaling else ''}"
            f", context {m.max_seq_len:,}\n" + (
                f"tokenizer: {self.tokenizer}" if self.tokenizer else
                f"{no_tokenizer} pass --config.data.tokenizer=FILE to `lawsearch eval`"))


def _abstract_params(model_config, sharding):
  """The params tree of ShapeDtypeStruct for `model_config`, every leaf placed by `sharding`."""
  from lawsearch.train import step as step_lib  # pylint: disable=import-outside-toplevel

  shapes = step_lib.Model(model_config).shapes
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def export_hf(workdir: str, out_dir: str, step: int | None = None,
              tokenizer: bool = True) -> HFExport:
  """Writes checkpoint `step` (default the newest) of run `workdir` under `out_dir` as
  model.safetensors, config.json (hf.config.hf_config), generation_config.json and, with
  `tokenizer`, tokenizer.json and tokenizer_config.json."""
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  from lawsearch.train import evaluate, loop  # pylint: disable=import-outside-toplevel

  if RunDir(out_dir).is_run():
    raise UserError(f"--out {out_dir} is a lawsearch run directory; export into a new or empty "
                    "directory (or a previous export)")
  config = evaluate.run_config(workdir)
  model_config = loop.model_config(config, "cpu")
  spec = model_config.arch
  hf_config_lib.model_type(spec)  # refuses a shape no transformers class computes, before work
  if model_config.moe_bias_balancing:
    raise UserError(f"{workdir} routes with auxiliary-loss-free bias balancing "
                    "(train.moe_bias_update_rate > 0): its per-expert router biases change which "
                    "experts a token uses, and Mixtral has no place for them")
  if tokenizer and config.data.source == "synthetic":
    raise UserError(f"{workdir} trained on synthetic tokens and has no tokenizer; export with "
                    "--no-tokenizer (weights and config only)")
  tok = tokens.run_tokenizer(config.data) if tokenizer else None  # refuse before any work
  out_dir = inputs.output_dir(out_dir, "--out")
  ckpt = loop.run_checkpointer(config, workdir)
  try:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    restored = ckpt.restore_params(_abstract_params(model_config, sharding), step)
  finally:
    ckpt.close()
  if restored is None:
    raise UserError(f"{workdir} has no checkpoint to export (train it with "
                    "train.checkpoint_every > 0)")
  params, step = restored
  tensors = weights.to_hf(jax.device_get(params), spec)
  files = [os.path.join(out_dir, WEIGHTS)]
  save_file(tensors, files[0], metadata={"format": "pt"})
  scaling = model_config.rope_scaling
  eos = tok.eos_id if tok else None
  docs = {
      "config.json": hf_config_lib.hf_config(
          spec, rope_theta=model_config.rope_theta, norm_eps=model_config.norm_eps,
          rope_scaling=dataclasses.asdict(scaling) if scaling else None,
          max_position_embeddings=model_config.max_seq_len, dtype=model_config.param_dtype,
          eos_token_id=eos, bos_token_id=eos),
      "generation_config.json": {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos,
                                 "do_sample": False},
  }
  for name, doc in docs.items():
    files.append(os.path.join(out_dir, name))
    with open(files[-1], "w") as f:
      json.dump(doc, f, indent=2)
  if tok is not None:
    files += hf_tokenizer.write_tokenizer(tok, out_dir, model_config.max_seq_len)
  return HFExport(workdir, out_dir, step, hf_config_lib.model_type(spec),
                  sum(int(t.size) for t in tensors.values()), tuple(files))


def read_safetensors(src_dir: str) -> dict[str, np.ndarray]:
  """Every tensor of a model directory's safetensors file(s), as float32 numpy arrays."""
  from safetensors import safe_open  # pylint: disable=import-outside-toplevel

  if os.path.isfile(os.path.join(src_dir, INDEX)):
    index = inputs.read_json(os.path.join(src_dir, INDEX), "safetensors index")
    inputs.require(index, f"safetensors index in {src_dir}", {"weight_map": "object"})
    files = sorted(set(index["weight_map"].values()))
  elif os.path.isfile(os.path.join(src_dir, WEIGHTS)):
    files = [WEIGHTS]
  else:
    raise UserError(f"{src_dir} holds neither {WEIGHTS} nor {INDEX}; give a directory written "
                    "by save_pretrained (safetensors weights)")
  root = os.path.realpath(src_dir)
  tensors = {}
  for name in files:
    path = os.path.realpath(os.path.join(src_dir, str(name)))
    if os.path.dirname(path) != root:
      raise UserError(f"safetensors index in {src_dir} names {name!r}, outside the model "
                      "directory; a weight_map lists files beside the index only")
    if not os.path.isfile(path):
      raise UserError(f"{src_dir}: the safetensors index names {name!r}, which is missing; "
                      "copy every shard the index lists")
    try:
      with safe_open(path, framework="flax") as f:  # flax: bfloat16 too
        for key in f.keys():
          tensors[key] = f.get_tensor(key)
    except Exception as e:  # pylint: disable=broad-except  (safetensors raises its own kinds)
      raise UserError(f"{path} is not a readable safetensors file ({type(e).__name__}: "
                      f"{' '.join(str(e).split())[:200]})") from None
  for key, value in tensors.items():
    if not jax.numpy.issubdtype(value.dtype, jax.numpy.floating):
      raise UserError(f"{src_dir}: tensor {key} is {value.dtype}, not floating point; lawsearch "
                      "imports float32, float16 and bfloat16 weights (dequantise it first)")
    tensors[key] = np.asarray(value, np.float32)
    if not np.isfinite(tensors[key]).all():
      raise UserError(f"{src_dir}: tensor {key} holds NaN or infinite values")
  return tensors


def eos_token_ids(src_dir: str, vocab_size: int) -> list[int]:
  """The end-of-sequence ids a model directory names: generation_config.json's eos_token_id, then
  config.json's (each an id or a list of ids), without repeats; [] when neither names one.
  SmolLM2-135M-Instruct's, as published: generation config <|im_end|> (2), config <|endoftext|>
  (0) -> [2, 0]. A UserError for an id that is not an integer in [0, vocab_size)."""
  ids = []
  for name in ("generation_config.json", "config.json"):
    path = os.path.join(src_dir, name)
    if not os.path.isfile(path):
      continue
    named = inputs.read_json(path, f"model file {name}").get("eos_token_id")
    for i in named if isinstance(named, list) else [] if named is None else [named]:
      if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab_size:
        raise UserError(f"{path}: eos_token_id {named!r} is not an id (or list of ids) in [0, "
                        f"{vocab_size})")
      ids += [i] if i not in ids else []
  return ids


def import_hf(src_dir: str, workdir: str, source: str | None = None) -> HFImport:
  """Writes the Llama/Mistral/Mixtral model in `src_dir` (config.json + safetensors) as run `workdir`;
  `source` is the origin the run records (default `src_dir`; hf.gguf: the GGUF file)."""
  from lawsearch.train import loop  # pylint: disable=import-outside-toplevel

  if not os.path.isdir(src_dir):
    raise UserError(f"{src_dir} is not a directory; give a Hugging Face model directory "
                    "(config.json and safetensors weights)")
  model = hf_config_lib.read_hf_config(os.path.join(src_dir, "config.json"))
  if os.path.exists(RunDir(workdir).config):
    raise UserError(f"--workdir {workdir} already holds a run (config.json); give a new one")
  tensors = read_safetensors(src_dir)  # every refusal before anything is written
  eos_ids = eos_token_ids(src_dir, model.spec.vocab_size)
  workdir = inputs.output_dir(workdir, "--workdir")
  arch_path = os.path.join(os.path.abspath(workdir), "arch.json")
  write_json_atomic(arch_path, model.spec.describe())
  tok_path = hf_tokenizer.copy_tokenizer(src_dir, workdir)
  config = configlib.load(f"{configs.TRAIN}:arch={arch_path}")
  with config.unlocked():
    config.model.rope_theta = model.rope_theta
    config.model.max_seq_len = model.max_seq_len
    config.model.norm_eps = model.norm_eps
    if model.rope_scaling:
      config.model.rope_scaling = model.rope_scaling
    config.train.seq_len = min(config.train.seq_len, model.max_seq_len)
    if tok_path:
      config.data.tokenizer = os.path.abspath(tok_path)
  if not eos_ids and tok_path:  # neither file names one: the tokenizer's end of text
    eos_ids = [tokens.run_tokenizer(config.data).eos_id]
  model_config = loop.model_config(config, "cpu")
  params = weights.from_hf(tensors, model.spec,
                           _abstract_params(model_config, None), model_config.param_dtype)
  ckpt = loop.run_checkpointer(config, workdir)
  try:
    ckpt.save(0, {"params": params}, force=True)
  finally:
    ckpt.close()
  RunDir(workdir).bind(config)
  source = source or os.path.abspath(src_dir)
  write_json_atomic(RunDir(workdir).imported, {
      "source": source, "model_type": model.model_type,
      "tokenizer": tok_path and os.path.basename(tok_path),
      "eos_token_ids": eos_ids})
  return HFImport(source, workdir, model, tok_path)
