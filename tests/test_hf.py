"""The Hugging Face bridge against transformers itself (torch, CPU, float32): a trained run exported
with `lawsearch export-hf` loads with AutoModelForCausalLM and AutoTokenizer and gives lawsearch's
logits and ids; random Llama and Mistral models saved by transformers import with `lawsearch
import-hf` and give transformers' logits; export(import(x)) returns x's tensors."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lawsearch import arch, cli, configlib, export, runs  # noqa: E402
from lawsearch.data import tokenizer as tokenizer_lib  # noqa: E402
from lawsearch.downstream import evaluate as downstream  # noqa: E402
from lawsearch.downstream import tasks as downstream_tasks  # noqa: E402
from lawsearch.errors import UserError  # noqa: E402
from lawsearch.hf import bridge, hf_config, model_type, read_hf_config  # noqa: E402
from lawsearch.hf import tokenizer as hf_tokenizer  # noqa: E402
from lawsearch.model.layers import Llama3RopeScaling, rope_frequencies  # noqa: E402
from lawsearch.train import evaluate, loop  # noqa: E402
from lawsearch.train import step as step_lib  # noqa: E402

TOL = 1e-4  # float32 logits of the same computation in two frameworks
TEXT = "Scaling laws meet model shape: how many heads, how wide a layer?\n\tÜber 日本 42."
WORDS = "the law of scaling meets model shape and every width asks how many heads".split()


def _torch_logits(model, ids: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(torch.tensor(ids)).logits.numpy()


def _lawsearch_logits(workdir: str, ids: np.ndarray, step=None, **changes) -> np.ndarray:
  """The run's own forward pass on one device (its checkpoint `step`, default the newest)."""
  config = evaluate.run_config(workdir)
  mc = loop.model_config(config, "cpu")
  mc = dataclasses.replace(mc, **changes)
  ckpt = loop.run_checkpointer(config, workdir)
  params, _ = ckpt.restore_params(bridge._abstract_params(  # pylint: disable=protected-access
      mc, jax.sharding.SingleDeviceSharding(jax.devices()[0])), step)
  ckpt.close()
  return np.asarray(step_lib.Model(mc).apply(params, jnp.asarray(ids)))


# -- the architecture-class choice -----------------------------------------------------------------
def test_config_class_is_llama_for_square_attention_and_mistral_otherwise(tmp_path):
  surefire, llama = arch.preset("surefire-1b"), arch.preset("llama3.2-1b")
  assert surefire.n_heads * surefire.head_dim != surefire.d_model  # 36 x 64 = 2304 != 2560
  assert (model_type(surefire), model_type(llama)) == ("mistral", "llama")
  # Why: current transformers refuses this shape as a LlamaConfig, explicit head_dim or not.
  with pytest.raises(Exception, match="not a multiple of the number of attention heads"):
    transformers.LlamaConfig(**{k: v for k, v in hf_config(surefire).items()
                                if k not in ("architectures", "model_type")})
  # The file `lawsearch search` / `make demo` writes for a Surefire-1B-like pick loads.
  paths = export.export(surefire.replace(d_model=3712, n_heads=20, n_kv_heads=4), "sf", tmp_path)
  (tmp_path / "sf").mkdir()
  os.replace(paths["hf"], tmp_path / "sf" / "config.json")
  loaded = transformers.AutoConfig.from_pretrained(tmp_path / "sf")
  assert type(loaded).__name__ == "MistralConfig" and loaded.sliding_window is None
  assert (loaded.hidden_size, loaded.num_attention_heads, loaded.head_dim) == (3712, 20, 64)
  assert loaded.rope_parameters["rope_theta"] == 500_000.0


# -- export ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
  root = tmp_path_factory.mktemp("text")
  rng = np.random.default_rng(0)
  (root / "corpus.txt").write_text(
      "\n".join(" ".join(rng.choice(WORDS, 12)) + "." for _ in range(400)))
  return root


def _train(root, text_file, arch_overrides):
  """Two steps of the train loop on all 8 fake devices (fsdp), a checkpoint after each."""
  workdir = str(root)
  overrides = ["--config.train.steps=2", "--config.train.batch_size=8",
               "--config.train.seq_len=16", "--config.train.checkpoint_every=1",
               "--config.train.eval_batches=1", "--config.model.max_seq_len=64",
               "--config.optimizer.peak_lr=0.05", "--config.data.tokenizer=bytes",
               "--config.data.vocab_size=257", f"--config.data.path={text_file / 'corpus.txt'}",
               f"--config.data.cache_dir={text_file / 'cache'}", "--config.data.heldout_fraction=0.1",
               "--config.model.arch.vocab_size=257"] + arch_overrides
  config = configlib.load("train:preset=nano,data=text", overrides)
  assert dict(config.mesh) == {"data": 1, "fsdp": -1, "tensor": 1} and jax.device_count() == 8
  loop.train(config, workdir, progress=False)
  return workdir


@pytest.mark.parametrize("shape, kind", [
    (["--config.model.arch.d_model=48", "--config.model.arch.tie_embeddings=False"], "mistral"),
    ([], "llama"),  # nano: 4 heads x 16 = d_model 64
])
def test_export_gives_transformers_the_same_logits_and_token_ids(tmp_path, text_file, shape,
                                                                 kind):
  workdir = _train(tmp_path / "run", text_file, shape)
  out = tmp_path / "hf"
  assert cli.main(["export-hf", "--workdir", workdir, "--out", str(out), "--step", "1"]) == 0
  files = sorted(os.listdir(out))
  assert files == ["config.json", "generation_config.json", "model.safetensors",
                   "tokenizer.json", "tokenizer_config.json"]
  config = json.loads((out / "config.json").read_text())
  assert config["model_type"] == kind and config["head_dim"] == 16
  model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
  assert type(model).__name__ == {"llama": "LlamaForCausalLM",
                                  "mistral": "MistralForCausalLM"}[kind]
  tok = transformers.AutoTokenizer.from_pretrained(out)
  texts = (TEXT, "the law of scaling " * 3)
  assert [tok(t).input_ids for t in texts] == [list(t.encode()) for t in texts]  # bytes
  ids = np.array([list(t.encode()[:40]) for t in texts])
  theirs = _torch_logits(model, ids)
  np.testing.assert_allclose(_lawsearch_logits(workdir, ids, step=1), theirs, atol=TOL)
  # The newest step is another set of weights: --step chose step 1.
  assert np.abs(_lawsearch_logits(workdir, ids) - theirs).max() > 100 * TOL
  # Greedy generation from transformers continues as lawsearch's argmax says.
  generated = model.generate(torch.tensor(ids[:1, :12]), max_new_tokens=6, do_sample=False)
  full = generated.numpy()
  assert (full[0, 12:] == _lawsearch_logits(workdir, full, step=1)[0, 11:-1].argmax(-1)).all()


def test_bpe_tokenizer_exports_with_the_same_ids(tmp_path):
  tok = tokenizer_lib.train_bpe(iter([TEXT * 20, " ".join(WORDS) * 50]), 300,
                                tmp_path / "bpe.json")
  out = tmp_path / "out"
  out.mkdir()
  hf_tokenizer.write_tokenizer(tok, str(out), 128)
  loaded = transformers.AutoTokenizer.from_pretrained(out)
  for text in (TEXT, " ".join(WORDS), "unseen words: quixotic zephyr"):
    assert loaded(text).input_ids == tok.encode(text)
  assert loaded.eos_token_id == tok.eos_id == 0


def test_tokenizers_without_an_export_are_refused(tmp_path):
  import base64  # pylint: disable=import-outside-toplevel

  ranks = tmp_path / "ranks.tiktoken"
  ranks.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
  with pytest.raises(UserError, match="TiktokenTokenizer; only tokenizers JSON"):
    hf_tokenizer.write_tokenizer(tokenizer_lib.load_tokenizer(str(ranks)), str(tmp_path), 64)
  run = tmp_path / "synthetic"
  run.mkdir()
  (run / "config.json").write_text(configlib.load("train:preset=nano,data=synthetic").to_json())
  with pytest.raises(UserError, match="synthetic tokens and has no tokenizer.*--no-tokenizer"):
    bridge.export_hf(str(run), str(tmp_path / "out"))


# -- import ----------------------------------------------------------------------------------------
SCALING = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
               original_max_position_embeddings=32)


def _hf_model(kind: str, directory, **save):
  """A random transformers model saved with save_pretrained, with a byte-level tokenizer.json."""
  common = dict(vocab_size=257, intermediate_size=56, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
  if kind == "llama":  # square, tied, LLaMA-3 RoPE scaling, eps 1e-5
    config = transformers.LlamaConfig(
        hidden_size=64, tie_word_embeddings=True, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10_000.0, **SCALING}, **common)
  else:  # non-square (4 x 8 != 40), untied, eps 1e-6
    config = transformers.MistralConfig(hidden_size=40, head_dim=8, sliding_window=None,
                                        tie_word_embeddings=False, **common)
  torch.manual_seed(0)
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  with torch.no_grad():  # norms away from 1 so their weights count
    for name, p in model.named_parameters():
      if "norm" in name:
        p.copy_(1 + 0.5 * torch.randn_like(p))
  model.save_pretrained(directory, **save)
  (directory / "tokenizer.json").write_text(hf_tokenizer._byte_tokenizer_json())  # pylint: disable=protected-access
  return transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()


@pytest.mark.parametrize("kind, save", [
    ("llama", {"max_shard_size": "40KB"}),  # sharded safetensors with an index
    ("mistral", {}),
])
def test_import_gives_lawsearch_the_logits_of_transformers(tmp_path, kind, save):
  model = _hf_model(kind, tmp_path / "src", **save)
  assert (tmp_path / "src" / "model.safetensors.index.json").exists() == bool(save)
  run = tmp_path / "run"
  assert cli.main(["import-hf", str(tmp_path / "src"), "--workdir", str(run)]) == 0
  ids = np.random.default_rng(1).integers(0, 257, (2, 60))
  theirs = _torch_logits(model, ids)
  np.testing.assert_allclose(_lawsearch_logits(str(run), ids), theirs, atol=TOL)
  if kind == "llama":  # the scaling matters at these wavelengths: without it, logits differ
    assert np.abs(_lawsearch_logits(str(run), ids, rope_scaling=None) - theirs).max() > 30 * TOL
  assert tokenizer_lib.load_tokenizer(str(run / "tokenizer.json")).encode(TEXT) == list(
      TEXT.encode())
  # export(import(x)) writes x's tensors.
  assert cli.main(["export-hf", "--workdir", str(run), "--out", str(tmp_path / "back")]) == 0
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

  back = load_file(tmp_path / "back" / "model.safetensors")
  original = {k: v.numpy() for k, v in model.state_dict().items()
              if not (kind == "llama" and k == "lm_head.weight")}  # tied: not saved
  assert sorted(back) == sorted(original)
  for name, tensor in original.items():
    assert np.array_equal(back[name], tensor), name
  again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back", dtype=torch.float32)
  np.testing.assert_allclose(_torch_logits(again, ids), theirs, atol=TOL)


def test_llama3_rope_frequencies_match_transformers():
  from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # pylint: disable=import-outside-toplevel

  config = transformers.LlamaConfig(
      hidden_size=256, num_attention_heads=2, max_position_embeddings=131072,
      rope_parameters={"rope_type": "llama3", "rope_theta": 500_000.0, "factor": 32.0,
                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192})
  theirs, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
  ours = rope_frequencies(128, 500_000.0, Llama3RopeScaling(32.0, 1.0, 4.0, 8192))
  np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-6)


def test_imported_run_opens_in_eval_and_bench(tmp_path, text_file):
  model = _hf_model("mistral", tmp_path / "src")
  run = str(tmp_path / "run")
  bridge.import_hf(str(tmp_path / "src"), run)
  with pytest.raises(UserError, match=r"no checkpoint 5 in .* it holds steps \[0\]"):
    bridge.export_hf(run, str(tmp_path / "out"), step=5)
  with pytest.raises(UserError, match="already holds a run"):
    bridge.import_hf(str(tmp_path / "src"), run)
  # Downstream accuracy (lawsearch eval --tasks) equals the pick of transformers' log-likelihoods.
  rng = np.random.default_rng(2)
  items = [{"id": i, "context": " ".join(rng.choice(WORDS, 5)),
            "choices": [" " + " ".join(rng.choice(WORDS, 2)) for _ in range(3)], "gold": i % 3}
           for i in range(12)]
  task_dir = downstream_tasks.directory(tmp_path / "cache")
  task_dir.mkdir(parents=True)
  (task_dir / "tasks.json").write_text('{"version": 1, "tasks": []}')
  (task_dir / "arc_easy.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
  scores = downstream.evaluate(run, "arc_easy", cache=tmp_path / "cache", progress=False)
  picks = []
  for item in items:
    context = list(item["context"].encode())
    logliks = []
    for choice in item["choices"]:
      ids = context + list(choice.encode())
      logp = torch.log_softmax(torch.tensor(_torch_logits(model, np.array([ids]))[0]), -1)
      logliks.append(sum(float(logp[t - 1, ids[t]]) for t in range(len(context), len(ids))))
    picks.append(int(np.argmax(logliks)))
  [score] = scores.scores
  assert len(set(picks)) > 1  # the picks follow the weights, not a position
  assert scores.step == 0 and scores.tokenizer.endswith("run/tokenizer.json")
  assert score.acc == np.mean([p == i["gold"] for p, i in zip(picks, items)])
  # An imported run has no result.json: its record, imported.json, keeps the scores beside where
  # the model came from and its end-of-sequence ids (transformers' default config: 2).
  record = json.loads((tmp_path / "run" / "imported.json").read_text())
  assert scores.recorded == str(tmp_path / "run" / "imported.json")
  assert record["acc_arc_easy"] == score.acc
  assert record["downstream"]["tasks"]["arc_easy"]["n"] == 12
  assert record["source"] == str(tmp_path / "src") and record["eos_token_ids"] == [2]
  record = evaluate.evaluate(run, ["--config.data.source=text",
                                   f"--config.data.path={text_file / 'corpus.txt'}",
                                   f"--config.data.cache_dir={tmp_path / 'cache'}",
                                   "--config.train.batch_size=8", "--config.train.seq_len=32",
                                   "--config.train.eval_batches=1"])
  assert record.step == 0 and 0 < record.heldout_loss < 2 * np.log(257)
  out = tmp_path / "bench.json"
  assert cli.main(["bench", "--workdir", run, "--batch", "1", "--input-len", "8",
                   "--output-len", "4", "--trials", "1", "--warmup", "0", "--out", str(out)]) == 0
  [record] = json.loads(out.read_text())
  assert (record["name"], record["d_model"], record["head_dim"]) == ("run", 40, 8)
  assert record["output_tokens_per_s"] > 0
  # Not a training run: `lawsearch train` says so (not "corrupt checkpoint"), and a fit's note on
  # unfinished runs leaves it out.
  with pytest.raises(UserError, match="holds imported weights .* not supported"):
    loop.train(evaluate.run_config(run), run, progress=False)
  assert runs.unfinished(run) == []


def test_end_of_sequence_ids_come_from_both_configs(tmp_path):
  # SmolLM2-135M-Instruct as published: generation_config.json names <|im_end|> (2), config.json
  # <|endoftext|> (0); generation stops at either, the generation config's first.
  (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 0}))
  (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 0]}))
  assert bridge.eos_token_ids(str(tmp_path), 49152) == [2, 0]
  (tmp_path / "generation_config.json").unlink()
  assert bridge.eos_token_ids(str(tmp_path), 49152) == [0]
  (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": None}))
  assert bridge.eos_token_ids(str(tmp_path), 49152) == []
  for bad in (49152, -1, "2", True, [2, 1.5]):
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": bad}))
    with pytest.raises(UserError, match=r"config.json: eos_token_id .* is not an id"):
      bridge.eos_token_ids(str(tmp_path), 49152)


def test_import_refuses_what_lawsearch_cannot_compute(tmp_path):
  src = tmp_path / "src"
  src.mkdir()
  base = hf_config(arch.ArchSpec(2, 64, 4, 2, 16, 56, 257))
  for change, words in (({"attention_bias": True}, "attention_bias is true"),
                        ({"hidden_act": "gelu"}, "SwiGLU"),
                        ({"model_type": "gpt2"}, "model_type 'gpt2' is not supported"),
                        ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}},
                         "RoPE scaling 'yarn'")):
    (src / "config.json").write_text(json.dumps({**base, **change}))
    with pytest.raises(UserError, match=words):
      bridge.import_hf(str(src), str(tmp_path / "run"))
  (src / "config.json").write_text(json.dumps(base))
  with pytest.raises(UserError, match="neither model.safetensors nor"):
    bridge.import_hf(str(src), str(tmp_path / "run2"))


# -- Mixtral: lawsearch's MoE with a softmax router, every layer routed ---------------------------
MOE_ARGS = ["--config.model.arch.mlp=moe", "--config.model.arch.n_experts=4",
            "--config.model.arch.top_k=2", "--config.model.arch.expert_ffn_dim=24",
            "--config.model.arch.d_model=40", "--config.model.arch.tie_embeddings=False"]


def test_moe_export_gives_transformers_mixtral_the_same_logits(tmp_path, text_file):
  workdir = _train(tmp_path / "run", text_file, MOE_ARGS)
  out = tmp_path / "hf"
  assert cli.main(["export-hf", "--workdir", workdir, "--out", str(out)]) == 0
  config = json.loads((out / "config.json").read_text())
  assert (config["model_type"], config["num_local_experts"], config["num_experts_per_tok"],
          config["intermediate_size"]) == ("mixtral", 4, 2, 24)
  model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
  assert type(model).__name__ == "MixtralForCausalLM"
  ids = np.array([list(t.encode()[:40]) for t in (TEXT, "the law of scaling " * 3)])
  np.testing.assert_allclose(_lawsearch_logits(workdir, ids), _torch_logits(model, ids), atol=TOL)


def _mixtral(directory, **save):
  """A random Mixtral (4 experts of width 24, top-2, non-square attention) saved by transformers."""
  config = transformers.MixtralConfig(
      vocab_size=257, hidden_size=40, head_dim=8, intermediate_size=24, num_hidden_layers=2,
      num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
      max_position_embeddings=128, sliding_window=None, tie_word_embeddings=False)
  torch.manual_seed(0)
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  with torch.no_grad():  # a router far from uniform, so the choice of experts matters
    for name, p in model.named_parameters():
      if name.endswith("mlp.gate.weight"):
        p.copy_(torch.randn_like(p))
  model.save_pretrained(directory, **save)
  return model


@pytest.mark.parametrize("save", [{}, {"save_original_format": False}])  # per-expert, fused
def test_mixtral_imports_with_transformers_logits_and_exports_back(tmp_path, save):
  model = _mixtral(tmp_path / "src", **save)
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

  saved = load_file(tmp_path / "src" / "model.safetensors")
  assert any(".experts.gate_up_proj" in k for k in saved) == bool(save)
  run = tmp_path / "run"
  assert cli.main(["import-hf", str(tmp_path / "src"), "--workdir", str(run)]) == 0
  spec = arch.load_json(str(run / "arch.json"))
  assert (spec.mlp, spec.n_experts, spec.top_k, spec.expert_ffn_dim) == ("moe", 4, 2, 24)
  ids = np.random.default_rng(1).integers(0, 257, (2, 60))
  theirs = _torch_logits(model, ids)
  np.testing.assert_allclose(_lawsearch_logits(str(run), ids), theirs, atol=TOL)
  assert cli.main(["export-hf", "--workdir", str(run), "--out", str(tmp_path / "back"),
                   "--no-tokenizer"]) == 0
  back = load_file(tmp_path / "back" / "model.safetensors")
  if not save:  # export(import(x)) writes x's tensors, in save_pretrained's per-expert names
    assert sorted(back) == sorted(saved)
    for name, tensor in saved.items():
      assert np.array_equal(back[name], tensor), name
  again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back", dtype=torch.float32)
  np.testing.assert_allclose(_torch_logits(again, ids), theirs, atol=TOL)


def test_moe_shapes_mixtral_cannot_compute_are_refused(tmp_path):
  with pytest.raises(UserError, match=r"n_shared_experts=1, first_dense_layers=3, "
                     r"router='sigmoid'\) has no transformers class"):
    model_type(arch.moe(arch.ArchSpec(4, 64, 4, 2, 16, 128, 257), n_experts=8, top_k=2,
                        expert_ffn_dim=32, n_shared_experts=1, first_dense_layers=3,
                        router="sigmoid"))
  with pytest.raises(UserError, match="MLA shape"):
    model_type(arch.preset("deepseek-v3"))
  src = tmp_path / "src"
  src.mkdir()
  base = hf_config(arch.ArchSpec(2, 64, 4, 2, 16, 56, 257))
  (src / "config.json").write_text(json.dumps({**base, "model_type": "qwen3_moe"}))
  with pytest.raises(UserError, match="'qwen3_moe' is not supported; lawsearch imports llama, "
                     "mistral, mixtral"):
    bridge.import_hf(str(src), str(tmp_path / "run"))
  (src / "config.json").write_text(json.dumps({**base, "model_type": "mixtral"}))
  with pytest.raises(UserError, match="num_local_experts"):
    bridge.import_hf(str(src), str(tmp_path / "run"))


def test_llama32_1b_config_reads_as_its_preset_and_hf_config_reads_back(tmp_path):
  # LLaMA-3.2-1B's published config.json (transformers 4.45 form: rope_theta beside rope_scaling).
  llama = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 128000,
           "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
           "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False,
           "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
           "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
           "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
           "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 128256}
  (tmp_path / "config.json").write_text(json.dumps(llama))
  model = read_hf_config(str(tmp_path / "config.json"))
  assert model.spec == arch.preset("llama3.2-1b") and model.eos_token_id == 128001
  assert (model.rope_theta, model.norm_eps, model.max_seq_len) == (500000.0, 1e-5, 131072)
  assert model.rope_scaling == {k: float(v) for k, v in llama["rope_scaling"].items()
                                if k != "rope_type"}
  # What hf_config writes reads back as the same model, and transformers reads it the same way.
  (tmp_path / "config.json").write_text(json.dumps(hf_config(
      model.spec, rope_theta=model.rope_theta, norm_eps=model.norm_eps,
      rope_scaling=model.rope_scaling, max_position_embeddings=model.max_seq_len,
      eos_token_id=128001)))
  assert read_hf_config(str(tmp_path / "config.json")) == model
  loaded = transformers.AutoConfig.from_pretrained(tmp_path)
  assert loaded.rope_parameters == {"rope_type": "llama3", "rope_theta": 500000.0,
                                    **model.rope_scaling}
  # A Mistral sliding window shorter than the context caps the context lawsearch runs.
  mistral = hf_config(arch.preset("surefire-1b"), max_position_embeddings=32768)
  (tmp_path / "config.json").write_text(json.dumps({**mistral, "sliding_window": 4096}))
  assert read_hf_config(str(tmp_path / "config.json")).max_seq_len == 4096
