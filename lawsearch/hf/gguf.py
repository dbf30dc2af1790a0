"""GGUF (llama.cpp's and Ollama's file format) in and out, through the `gguf` package.

    import_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "runs/smollm2")  # GGUFImport: a run directory
    export_gguf("runs/surefire", "surefire.q8_0.gguf", "q8_0")      # GGUFExport: llama.cpp loads it

Both go through the Hugging Face bridge, so a GGUF import is the HF import of the same model and an
export is the HF export of the same checkpoint: `gguf_to_hf` writes a GGUF file as a Llama/Mistral
model directory (config.json from hf.config.hf_config, float32 model.safetensors, tokenizer.json,
generation_config.json) that `bridge.import_hf` makes a run; `export_gguf` writes the checkpoint
with `bridge.export_hf` and `hf_to_gguf` converts that directory.

Reading. The file's `general.architecture` must be "llama" (LLaMA, Mistral, SmolLM and every model
llama.cpp converts to that graph); `{arch}.*` metadata gives the shape, RoPE base, norm epsilon
and context. Tensors are dequantised to float32 with gguf's own dequantizers: the types in
`READ_TYPES` (float, the legacy block quants and the K-quants); any other type, a mixture of
experts, partial rotary embeddings, biases or a split file are refused, naming what was found.
llama.cpp's converter permutes each head's rows of attn_q and attn_k from rotate-half order into
interleaved pairs (its RoPE rotates adjacent elements); `unpermute_rope` undoes it. A `rope_freqs`
tensor (LLaMA-3.1's frequency scaling, stored as per-frequency divisors) is read back as the
LLaMA-3 scaling parameters that reproduce it (`llama3_scaling`), or refused. The vocabulary
becomes a tokenizers JSON for byte-level BPE vocabularies (`tokenizer.ggml.model` "gpt2") whose
pre-tokenizer is in `PRE_TOKENIZERS`; any other vocabulary imports without a tokenizer and the
result says why (`GGUFImport.tokenizer_note`).

Writing. `hf_to_gguf` writes the "llama" graph llama.cpp runs: attention of any head_dim
(`attention.key_length`), GQA, tied or untied output, LLaMA-3 RoPE scaling as `rope_freqs`. Types:
"f32" (everything float32), "f16" (matrices float16, norms float32) and "q8_0" (matrices Q8_0
where a row is a multiple of 32 values, float16 otherwise; norms float32), as llama.cpp's own
converter does. A byte-level BPE tokenizer with merges (lawsearch's, or a tokenizer.json whose
pre-tokenizer is in PRE_TOKENIZERS) is written as a "gpt2" vocabulary; others ("bytes", tiktoken,
sentencepiece) are refused, and with `tokenizer=False` the file has no vocabulary
(`tokenizer.ggml.model` "none": llama.cpp runs it on token ids).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Mapping

import gguf
import numpy as np

from lawsearch import inputs
from lawsearch.arch import ArchSpec
from lawsearch.errors import UserError
from lawsearch.hf import config as hf_config_lib
from lawsearch.hf import weights

if TYPE_CHECKING:
  from lawsearch.hf.bridge import HFImport  # JAX and orbax: imported when used

ARCH = "llama"
Q = gguf.GGMLQuantizationType
READ_TYPES = (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1,
              Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K)
WRITE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
               "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
CONTROL, USER_DEFINED = int(gguf.TokenType.CONTROL), int(gguf.TokenType.USER_DEFINED)

ROPE_FREQS = "rope_freqs.weight"

# LLaMA-3's published scaling constants: rope_freqs is matched against these for any factor and
# original context (llama.cpp stores only the resulting divisors).
_LLAMA3_BANDS = (1.0, 4.0)  # low_freq_factor, high_freq_factor


def _pre_gpt2():
  from tokenizers import pre_tokenizers  # pylint: disable=import-outside-toplevel

  return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def _pre_smollm():
  from tokenizers import pre_tokenizers  # pylint: disable=import-outside-toplevel

  return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                  pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                           use_regex=True)])


_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _pre_llama3():
  from tokenizers import Regex, pre_tokenizers  # pylint: disable=import-outside-toplevel

  return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), "isolated"),
                                  pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                           use_regex=False)])


# llama.cpp's `tokenizer.ggml.pre` names -> the tokenizers pre-tokenizer that splits text as
# llama.cpp does for it (llama-vocab.cpp): GPT-2's regex; SmolLM's digits one by one, then GPT-2's;
# LLaMA-3's regex (three names; its tokenizer.json also sets ignore_merges). Export writes the
# first name whose pre-tokenizer a run's tokenizer.json has.
PRE_TOKENIZERS: dict[str, Callable] = {"gpt-2": _pre_gpt2, "smollm": _pre_smollm,
                                       "llama-bpe": _pre_llama3, "llama3": _pre_llama3,
                                       "llama-v3": _pre_llama3}


@dataclasses.dataclass(frozen=True)
class GGUFImport:
  """A GGUF file written as a run directory.

  run: the HF import of the converted model (bridge.HFImport; its source is the GGUF file);
  tensor_types: GGML type name -> tensors of that type in the file; tokenizer_note: why the run
  has no tokenizer, or None when it has one.
  """

  run: HFImport
  tensor_types: dict[str, int]
  tokenizer_note: str | None

  def summary(self) -> str:
    return self.run.describe(f"GGUF, {_counts(self.tensor_types)}; dequantised to float32",
                             f"no tokenizer: {self.tokenizer_note};")


@dataclasses.dataclass(frozen=True)
class GGUFExport:
  """A checkpoint written as a GGUF file.

  tensor_types: GGML type name -> tensors written in it; vocabulary: the `tokenizer.ggml.model`
  written ("gpt2" or "none").
  """

  workdir: str
  out: str
  step: int
  file_type: str
  n_params: int
  tensor_types: dict[str, int]
  vocabulary: str

  def summary(self) -> str:
    return (f"{self.workdir} step {self.step} -> {self.out}: GGUF {self.file_type} "
            f"({_counts(self.tensor_types)}), {self.n_params:,} parameters, vocabulary "
            f"{self.vocabulary!r}")


def _counts(tensor_types: dict[str, int]) -> str:
  """GGML type name -> count as "F32 x3, Q8_0 x7" (by name)."""
  return ", ".join(f"{n} x{c}" for n, c in sorted(tensor_types.items()))


# -- names and the RoPE permutation ---------------------------------------------------------------
def tensor_names(spec: ArchSpec) -> dict[str, str]:
  """GGUF name -> Hugging Face name of every tensor of `spec` (hf.weights.names through gguf's
  TensorNameMap, the table llama.cpp's converter uses)."""
  table = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, spec.n_layers)
  return {table.get_name(name, try_suffixes=(".weight",)): name for name in weights.names(spec)}


def permute_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
  """llama.cpp's reordering of a q or k projection [n_heads * H, D] for its RoPE: each head's rows
  (first half, second half: the rotate-half pairs i and i + H/2) interleaved as (i, i + H/2)."""
  return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


def unpermute_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
  """The inverse of `permute_rope`: a GGUF attn_q / attn_k [n_heads * H, D] in HF order."""
  return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


def rope_freq_divisors(head_dim: int, theta: float, scaling: Mapping[str, float]) -> np.ndarray:
  """LLaMA-3 scaling as llama.cpp's rope_freqs [H/2] float32: each unscaled inverse wavelength
  over the scaled one (lawsearch.model.layers.rope_frequencies)."""
  from lawsearch.model import layers  # pylint: disable=import-outside-toplevel  (JAX)

  plain = np.asarray(layers.rope_frequencies(head_dim, theta))
  scaled = np.asarray(layers.rope_frequencies(head_dim, theta, layers.Llama3RopeScaling(
      **{k: scaling[k] for k in hf_config_lib.LLAMA3_SCALING_KEYS})))
  return (plain / scaled).astype(np.float32)


def llama3_scaling(divisors: np.ndarray, head_dim: int, theta: float,
                   source: str) -> dict[str, float] | None:
  """The LLaMA-3 RoPE scaling whose `rope_freq_divisors` are `divisors` (factor: their maximum;
  low/high frequency factors 1 and 4; original context a power of two from 16 to 2^20), None for
  divisors of 1 (no scaling), or a UserError."""
  if np.allclose(divisors, 1.0, rtol=0, atol=1e-6):
    return None
  for log2 in range(4, 21):
    scaling = {"factor": float(f"{divisors.max():.6g}"), "low_freq_factor": _LLAMA3_BANDS[0],
               "high_freq_factor": _LLAMA3_BANDS[1],
               "original_max_position_embeddings": float(2 ** log2)}
    if np.allclose(rope_freq_divisors(head_dim, theta, scaling), divisors, rtol=1e-5, atol=0):
      return scaling
  raise UserError(f"{source}: tensor {ROPE_FREQS} holds RoPE frequency divisors that no LLaMA-3 "
                  "scaling (low/high frequency factors 1 and 4) reproduces; lawsearch computes "
                  "plain RoPE and LLaMA-3's scaling only")


# -- reading -------------------------------------------------------------------------------------
_MISSING = object()


class _Metadata:
  """A GGUF file's key-value metadata, read with clear errors."""

  def __init__(self, reader: gguf.GGUFReader, path: str):
    self.reader, self.path = reader, path

  def get(self, key: str, default=_MISSING):
    field = self.reader.get_field(key)
    if field is None:
      if default is _MISSING:
        raise UserError(f"GGUF file {self.path} lacks the metadata key {key}")
      return default
    return field.contents()

  def count(self, key: str, default=_MISSING) -> int:
    """A positive integer (a per-layer array is refused: lawsearch's layers are all alike)."""
    value = self.get(key, default)
    if isinstance(value, list):
      raise UserError(f"GGUF file {self.path}: {key} differs per layer ({value[:4]}...); "
                      "lawsearch's decoder has one shape for every layer")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise UserError(f"GGUF file {self.path}: {key} must be a positive integer, got {value!r}")
    return value


def open_gguf(path: str) -> gguf.GGUFReader:
  """gguf's reader over `path` (memory-mapped), or a UserError saying what the file is not."""
  if not os.path.isfile(path):
    raise UserError(f"{path} is not a file; give a .gguf file")
  with open(path, "rb") as f:
    if f.read(4) != b"GGUF":
      raise UserError(f"{path} is not a GGUF file (it does not start with 'GGUF'); give a .gguf "
                      "file or a Hugging Face model directory")
  try:
    return gguf.GGUFReader(path)
  except Exception as e:  # pylint: disable=broad-except  (gguf raises ValueError, struct errors)
    raise UserError(f"{path} is not a readable GGUF file ({type(e).__name__}: "
                    f"{' '.join(str(e).split())[:200]})") from None


def _model(meta: _Metadata, shapes: Mapping[str, tuple[int, ...]]) -> hf_config_lib.HFModel:
  """The HFModel (shape, RoPE, norm, context, end of sequence) the llama metadata describes;
  shapes: GGUF tensor name -> its shape (rows first), for the vocabulary and the output's tie."""
  source = f"GGUF file {meta.path}"
  arch = meta.get("general.architecture")
  if arch != ARCH:
    raise UserError(f"{source}: architecture {arch!r} is not supported; lawsearch reads {ARCH!r} "
                    "GGUF files (LLaMA, Mistral, SmolLM: pre-norm, RoPE, GQA, SwiGLU)")
  if meta.get("split.count", 1) > 1:
    raise UserError(f"{source} is one of {meta.get('split.count')} parts of a split model; merge "
                    "them first (llama.cpp's `llama-gguf-split --merge`)")
  k = lambda name: f"{ARCH}.{name}"  # noqa: E731
  if meta.get(k("expert_count"), 0):
    raise UserError(f"{source}: a mixture of experts ({meta.get(k('expert_count'))} experts); "
                    "lawsearch imports dense LLaMA models")
  if "token_embd.weight" not in shapes:
    raise UserError(f"{source} has no token_embd.weight tensor")
  d_model, heads = meta.count(k("embedding_length")), meta.count(k("attention.head_count"))
  head_dim = meta.count(k("attention.key_length"), d_model // heads)
  if meta.count(k("attention.value_length"), head_dim) != head_dim:
    raise UserError(f"{source}: value heads of {meta.get(k('attention.value_length'))} differ "
                    f"from key heads of {head_dim}; lawsearch's attention has one head_dim")
  if meta.count(k("rope.dimension_count"), head_dim) != head_dim:
    raise UserError(f"{source}: RoPE rotates {meta.get(k('rope.dimension_count'))} of "
                    f"{head_dim} dimensions per head; lawsearch rotates all of them")
  scaling_type = meta.get(k("rope.scaling.type"), "none")
  if scaling_type != "none":
    raise UserError(f"{source}: RoPE scaling {scaling_type!r} is not supported (lawsearch "
                    "computes plain RoPE and LLaMA-3's scaling)")
  embed_rows = shapes["token_embd.weight"][0]
  vocab = meta.count(k("vocab_size"), embed_rows)
  if vocab != embed_rows:
    raise UserError(f"{source}: {k('vocab_size')} is {vocab} but token_embd has {embed_rows} rows")
  spec = ArchSpec(n_layers=meta.count(k("block_count")), d_model=d_model, n_heads=heads,
                  n_kv_heads=meta.count(k("attention.head_count_kv"), heads), head_dim=head_dim,
                  ffn_dim=meta.count(k("feed_forward_length")), vocab_size=vocab,
                  tie_embeddings="output.weight" not in shapes)
  eps = float(meta.get(k("attention.layer_norm_rms_epsilon"), 1e-5))
  theta = float(meta.get(k("rope.freq_base"), 10_000.0))
  eos = meta.get("tokenizer.ggml.eos_token_id", None)
  return hf_config_lib.HFModel(spec, hf_config_lib.model_type(spec), theta, eps, None,
                               meta.count(k("context_length")), eos)


def _dequantised(reader: gguf.GGUFReader, path: str, spec: ArchSpec) -> dict[str, np.ndarray]:
  """Every tensor of the file as float32 numpy arrays in Hugging Face names (rope_freqs kept under
  its own name), or a UserError naming the first tensor lawsearch cannot use."""
  names = {**tensor_names(spec), ROPE_FREQS: ROPE_FREQS}
  for t in reader.tensors:  # every refusal before any work
    if t.name not in names:
      raise UserError(f"GGUF file {path}: tensor {t.name} has no place in lawsearch's decoder "
                      "(biases, experts and extra norms are not supported)")
    if t.tensor_type not in READ_TYPES:
      raise UserError(f"GGUF file {path}: tensor {t.name} is {t.tensor_type.name}, which "
                      "lawsearch does not dequantise; it reads "
                      f"{', '.join(q.name for q in READ_TYPES)}")
  out = {}
  for t in reader.tensors:
    w = np.array(gguf.dequantize(t.data, t.tensor_type), np.float32)  # a copy: the file is mapped
    if not np.isfinite(w).all():
      raise UserError(f"GGUF file {path}: tensor {t.name} holds NaN or infinite values")
    out[names[t.name]] = w.reshape([int(n) for n in reversed(t.shape)])  # GGML's order: reversed
  return out


def _tokenizer_json(meta: _Metadata) -> tuple[str | None, str | None]:
  """(tokenizers JSON of the file's vocabulary, None), or (None, why it has none)."""
  kind = meta.get("tokenizer.ggml.model", None)
  if kind is None or kind in ("none", "no_vocab"):
    return None, "the GGUF file has no vocabulary"
  if kind != "gpt2":
    return None, (f"its vocabulary is {kind!r}; lawsearch converts byte-level BPE ('gpt2') "
                  "vocabularies only")
  pre = meta.get("tokenizer.ggml.pre", "default")
  if pre not in PRE_TOKENIZERS:
    return None, (f"its pre-tokenizer {pre!r} is not one lawsearch reproduces "
                  f"({', '.join(PRE_TOKENIZERS)})")
  # pylint: disable-next=import-outside-toplevel
  from tokenizers import AddedToken, Tokenizer, decoders, models, processors

  tokens = meta.get("tokenizer.ggml.tokens")
  types = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
  if len(set(tokens)) != len(tokens):
    return None, "its vocabulary lists a token twice, which a tokenizer.json cannot hold"
  merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
  tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                             ignore_merges=PRE_TOKENIZERS[pre] is _pre_llama3))
  tok.pre_tokenizer = PRE_TOKENIZERS[pre]()
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                          for t, kind in zip(tokens, types) if kind == CONTROL])
  tok.add_tokens([AddedToken(t, special=False, normalized=False)
                  for t, kind in zip(tokens, types) if kind == USER_DEFINED])
  bos = meta.get("tokenizer.ggml.bos_token_id", None)
  if meta.get("tokenizer.ggml.add_bos_token", False) and bos is not None:
    tok.post_processor = processors.TemplateProcessing(
        single=f"{tokens[bos]} $A", pair=f"{tokens[bos]} $A $B",
        special_tokens=[(tokens[bos], bos)])
  return tok.to_str(), None


def gguf_to_hf(path: str, out_dir: str) -> tuple[hf_config_lib.HFModel, dict[str, int],
                                                  str | None]:
  """Writes the LLaMA model in GGUF file `path` under `out_dir` as a Hugging Face model directory
  (config.json, generation_config.json, float32 model.safetensors, tokenizer.json when the
  vocabulary converts). Returns (the model, GGML type name -> tensor count, why there is no
  tokenizer.json or None)."""
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  reader = open_gguf(path)
  meta = _Metadata(reader, path)
  model = _model(meta, {t.name: tuple(reversed([int(n) for n in t.shape])) for t in reader.tensors})
  spec = model.spec
  tensors = _dequantised(reader, path, spec)
  divisors = tensors.pop(ROPE_FREQS, None)
  if divisors is not None:
    model = dataclasses.replace(model, rope_scaling=llama3_scaling(
        divisors, spec.head_dim, model.rope_theta, f"GGUF file {path}"))
  for i in range(spec.n_layers):
    for proj, heads in (("q_proj", spec.n_heads), ("k_proj", spec.n_kv_heads)):
      name = f"model.layers.{i}.self_attn.{proj}.weight"
      # A missing or misshapen tensor is named by bridge.import_hf (hf.weights.from_hf).
      if name in tensors and tensors[name].shape[0] == heads * spec.head_dim:
        tensors[name] = unpermute_rope(tensors[name], heads)
  tokenizer, note = _tokenizer_json(meta)
  out_dir = inputs.output_dir(out_dir, "--out")
  save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
  bos = meta.get("tokenizer.ggml.bos_token_id", None)
  docs = {"config.json": hf_config_lib.hf_config(
              spec, rope_theta=model.rope_theta, norm_eps=model.norm_eps,
              rope_scaling=model.rope_scaling, max_position_embeddings=model.max_seq_len,
              dtype="float32", eos_token_id=model.eos_token_id, bos_token_id=bos),
          "generation_config.json": {"bos_token_id": bos, "eos_token_id": model.eos_token_id}}
  if tokenizer is not None:
    docs["tokenizer.json"] = json.loads(tokenizer)
  for name, doc in docs.items():
    with open(os.path.join(out_dir, name), "w") as f:
      json.dump(doc, f, indent=1)
  return model, dict(collections.Counter(t.tensor_type.name for t in reader.tensors)), note


def import_gguf(path: str, workdir: str) -> GGUFImport:
  """Writes the LLaMA model in GGUF file `path` as run `workdir` (`gguf_to_hf` into a temporary
  directory beside the run, then `bridge.import_hf`; imported.json names the GGUF file)."""
  from lawsearch.hf import bridge  # pylint: disable=import-outside-toplevel  (JAX, orbax)

  parent = os.path.dirname(os.path.abspath(workdir))
  os.makedirs(parent, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix=".gguf-import-", dir=parent) as tmp:
    _, types, note = gguf_to_hf(path, tmp)
    run = bridge.import_hf(tmp, workdir, source=os.path.abspath(path))
  return GGUFImport(run, types, note)


# -- writing -------------------------------------------------------------------------------------
def _gguf_tensor(w: np.ndarray, file_type: str) -> tuple[np.ndarray, Any]:
  """(data, GGML type) of one tensor: vectors (norms, rope_freqs) float32; matrices as
  `file_type` says (Q8_0 only where a row is a multiple of its 32-value block, else float16)."""
  if w.ndim == 1 or file_type == "f32":
    return w.astype(np.float32), Q.F32
  if file_type == "q8_0" and w.shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0] == 0:
    return gguf.quantize(w.astype(np.float32), Q.Q8_0), Q.Q8_0
  return w.astype(np.float16), Q.F16


def _vocabulary(writer: gguf.GGUFWriter, tokenizer_path: str, source: str) -> None:
  """Writes a tokenizer.json (byte-level BPE with merges) as a "gpt2" GGUF vocabulary with its
  special tokens and whether it starts a text with one (BOS), or a UserError."""
  from tokenizers import Tokenizer  # pylint: disable=import-outside-toplevel

  doc = inputs.read_json(tokenizer_path, "tokenizer")
  model = doc.get("model") or {}
  merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
  if model.get("type") != "BPE" or not merges:
    raise UserError(f"{source}: the tokenizer is not a BPE with merges ({model.get('type')!r}, "
                    f"{len(merges)} merges; 'bytes' has none), which a GGUF 'gpt2' vocabulary "
                    "needs; export with --no-tokenizer")
  pre = next((name for name, build in PRE_TOKENIZERS.items()
              if doc.get("pre_tokenizer") == _pre_tokenizer_json(build)), None)
  if pre is None:
    raise UserError(f"{source}: the tokenizer's pre-tokenizer {doc.get('pre_tokenizer')} is none "
                    f"that llama.cpp runs ({', '.join(PRE_TOKENIZERS)}); export with "
                    "--no-tokenizer")
  tok = Tokenizer.from_file(tokenizer_path)
  vocab = tok.get_vocab(with_added_tokens=True)
  tokens = [None] * (max(vocab.values()) + 1)
  for token, i in vocab.items():
    tokens[i] = token
  if None in tokens:
    raise UserError(f"{source}: the tokenizer's ids are not contiguous from 0")
  added = {a["content"]: a for a in doc.get("added_tokens", [])}
  writer.add_tokenizer_model("gpt2")
  writer.add_tokenizer_pre(pre)
  writer.add_token_list(tokens)
  writer.add_token_types([CONTROL if added.get(t, {}).get("special") else
                          USER_DEFINED if t in added else int(gguf.TokenType.NORMAL)
                          for t in tokens])
  writer.add_token_merges(merges)
  starts = tok.encode("").ids  # [BOS] where the tokenizer's post-processor prepends one
  writer.add_add_bos_token(len(starts) == 1)
  if len(starts) == 1:
    writer.add_bos_token_id(starts[0])


def _pre_tokenizer_json(build: Callable) -> dict:
  """The tokenizer.json form of the pre-tokenizer `build` returns."""
  from tokenizers import Tokenizer, models  # pylint: disable=import-outside-toplevel

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = build()
  return json.loads(tok.to_str())["pre_tokenizer"]


def hf_to_gguf(src_dir: str, out: str, file_type: str = "f32",
               name: str | None = None) -> tuple[dict[str, int], str]:
  """Writes the Llama/Mistral model directory `src_dir` (config.json, safetensors, optional
  tokenizer.json) as GGUF file `out` of `file_type` ("f32", "f16", "q8_0"), atomically.

  Returns (GGML type name -> number of tensors written, the vocabulary: "gpt2" or "none").
  """
  from lawsearch.hf import bridge  # pylint: disable=import-outside-toplevel

  if file_type not in WRITE_TYPES:
    raise UserError(f"--type {file_type!r}: GGUF export writes {', '.join(WRITE_TYPES)}")
  model = hf_config_lib.read_hf_config(os.path.join(src_dir, "config.json"))
  spec = model.spec
  tensors = bridge.read_safetensors(src_dir)
  missing = [n for n in weights.names(spec) if n not in tensors]
  if missing:
    raise UserError(f"{src_dir} lacks {len(missing)} tensor(s) of its config's architecture, "
                    f"e.g. {missing[:3]}")
  out = inputs.output_file(out, "OUT")
  partial = f"{out}.partial{os.getpid()}"
  writer = gguf.GGUFWriter(partial, ARCH)
  try:
    writer.add_name(name or os.path.basename(os.path.normpath(src_dir)))
    writer.add_file_type(int(WRITE_TYPES[file_type]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(spec.vocab_size)
    writer.add_context_length(model.max_seq_len)
    writer.add_embedding_length(spec.d_model)
    writer.add_block_count(spec.n_layers)
    writer.add_feed_forward_length(spec.ffn_dim)
    writer.add_head_count(spec.n_heads)
    writer.add_head_count_kv(spec.n_kv_heads)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_rope_freq_base(model.rope_theta)
    writer.add_layer_norm_rms_eps(model.norm_eps)
    tokenizer = os.path.join(src_dir, "tokenizer.json")
    if os.path.isfile(tokenizer):
      _vocabulary(writer, tokenizer, src_dir)
      vocabulary = "gpt2"
    else:
      writer.add_tokenizer_model("none")
      vocabulary = "none"
    if model.eos_token_id is not None:
      writer.add_eos_token_id(model.eos_token_id)
    ordered = {ours: tensors[theirs] for ours, theirs in tensor_names(spec).items()}
    for q, heads in (("attn_q", spec.n_heads), ("attn_k", spec.n_kv_heads)):
      for i in range(spec.n_layers):
        key = f"blk.{i}.{q}.weight"
        ordered[key] = permute_rope(ordered[key], heads)
    if model.rope_scaling:
      ordered[ROPE_FREQS] = rope_freq_divisors(spec.head_dim, model.rope_theta,
                                               model.rope_scaling)
    types = collections.Counter()
    for key, w in ordered.items():
      data, qtype = _gguf_tensor(w, file_type)
      writer.add_tensor(key, data, raw_dtype=qtype)
      types[qtype.name] += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, out)
  finally:
    if os.path.exists(partial):
      os.remove(partial)
  return dict(types), vocabulary


def export_gguf(workdir: str, out: str, file_type: str = "f32", step: int | None = None,
                tokenizer: bool = True) -> GGUFExport:
  """Writes checkpoint `step` (default the newest) of run `workdir` as GGUF file `out`:
  `bridge.export_hf` into a temporary directory beside `out`, then `hf_to_gguf`."""
  from lawsearch.hf import bridge  # pylint: disable=import-outside-toplevel  (JAX, orbax)

  if file_type not in WRITE_TYPES:
    raise UserError(f"--type {file_type!r}: GGUF export writes {', '.join(WRITE_TYPES)}")
  out = inputs.output_file(out, "OUT")
  with tempfile.TemporaryDirectory(prefix=".gguf-export-",
                                   dir=os.path.dirname(os.path.abspath(out))) as tmp:
    hf = bridge.export_hf(workdir, tmp, step, tokenizer=tokenizer)
    types, vocabulary = hf_to_gguf(tmp, out, file_type,
                                   name=os.path.basename(os.path.normpath(workdir)))
  return GGUFExport(workdir, out, hf.step, file_type, hf.n_params, types, vocabulary)
