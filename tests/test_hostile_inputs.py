"""Hostile and mistaken input across every subcommand: each case must exit with status 2, print
exactly one line on stderr that names the offending argument or file, show no traceback, and
leave every file the user already had unchanged. CASES_28 adds lawsearch's own files read back
damaged (run records, token directories, laws), SLURM fields, oversized search grids, an
unreachable bucket and more config ranges; API_CASES give the Python entry points wrong arguments
(a UserError that names the argument)."""

import hashlib
import json
import os

import numpy as np
import pytest

from lawsearch import cli

SEARCH = ["search", "--params", "1e9", "--tokens", "1e11", "--layers", "16", "--head-dim", "64",
          "--baseline", "llama3.2-1b"]
NANO = "configs/train.py:preset=nano,data=synthetic"
GOOD_RUNS = "\n".join(["n_params,tokens,loss,d_model,mlp_attn_ratio"] + [
    f"{n},{20 * n},{3 + 1e3 / n ** 0.5 + 0.01 * i},{d},{r}"
    for i, (n, d, r) in enumerate([(1e5, 64, 1), (1e5, 96, 2), (1e5, 48, 4), (2e5, 96, 1),
                                   (2e5, 128, 2), (2e5, 64, 4), (4e5, 128, 1), (4e5, 160, 3),
                                   (4e5, 96, 5)])])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """A user's directory of files, good and bad."""
  root = tmp_path_factory.mktemp("user")
  write = lambda name, text: (root / name).write_text(text)
  write("law_list.json", "[1, 2, 3]")
  names = ("a0", "a1", "a2", "b0", "b1", "b2")
  write("law_missing.json", json.dumps({"form": "multiplicative"}))
  write("law_strings.json", json.dumps({"form": "multiplicative",
                                        "coefficients": {n: "x" for n in names}}))
  write("law_badform.json", json.dumps({"form": "cubic",
                                        "coefficients": {n: 1.0 for n in names}}))
  paper = (2.697, 0.0974, 0.0078, 0.3870, 0.0063, 0.0065)
  law = lambda *c: json.dumps({"form": "multiplicative", "coefficients": dict(zip(names, c))})
  write("law_negative.json", law(-2.697, *paper[1:]))  # a0 < 0: negative losses
  write("law_zeros.json", law(*[0.0] * 6))
  write("law_huge.json", law(2.697, 1e308, *paper[2:]))  # overflows to infinity
  write("law_no_minimum.json", law(2.697, 0.0974, -0.0078, *paper[3:]))  # a2 < 0
  write("deep.json", "[" * 100_000 + "]" * 100_000)
  rows = [line.split(",") for line in GOOD_RUNS.splitlines()]
  table = lambda edit: "\n".join(",".join(edit(i, r)) for i, r in enumerate(rows))
  records = [dict(zip(rows[0], map(float, r))) for r in rows[1:]]
  write("runs_bool.json", json.dumps([{**r, "loss": True} if i == 0 else r
                                      for i, r in enumerate(records)]))
  write("runs_half_d_model.csv", table(lambda i, r: r[:3] + ["64.5"] + r[4:] if i == 1 else r))
  write("runs_huge_n.csv", table(lambda i, r: ["1e300"] + r[1:] if i == 1 else r))
  write("runs_twice.csv", GOOD_RUNS + "\n" + "\n".join(GOOD_RUNS.splitlines()[1:]))
  (root / "runs.pkl").write_bytes(b"\x80\x04N.")  # a pickle (of None)
  write("law_short.json", json.dumps({"form": "multiplicative",
                                      "coefficients": {"a0": 1.0, "a1": 2.0}}))
  write("not_json.txt", "hello, world")
  write("calib_list.json", "[0.5]")
  write("calib_missing.json", json.dumps({"h100-sxm": {"compute": 0.5}}))
  write("measured_dict.json", json.dumps({"batch": 64}))
  write("measured_keys.json", json.dumps([{"batch": 64, "output_tokens_per_s": 5.0}]))
  write("runs_ok.csv", GOOD_RUNS)
  write("runs_empty.csv", "n_params,tokens,loss,d_model,mlp_attn_ratio\n")
  write("runs_missing_cols.csv", "n_params,tokens,loss\n1e5,2e6,3.1\n")
  rows = GOOD_RUNS.splitlines()
  write("runs_strings.csv", "\n".join(rows[:2] + [",".join(rows[2].split(",")[:2] + ["abc"] +
                                                             rows[2].split(",")[3:])] + rows[3:]))
  write("runs_nan.csv", "\n".join(rows[:3] + ["nan" + rows[3][rows[3].index(","):]] + rows[4:]))
  write("a_file", "I am a file")
  write("empty_corpus.txt", "")
  write("config_syntax.py", "def get_config(:\n")
  write("config_noget.py", "x = 1\n")
  write("config_dict.py", "def get_config(arg=None):\n  return {'train': {}}\n")
  write("config_exit.py", "import sys\nsys.exit(0)\n")
  write("config_raises.py", "def get_config(arg=None):\n  return 1 / 0\n")
  write("config_no_arg.py", "def get_config():\n  return None\n")
  write("config_no_groups.py", "import ml_collections\ndef get_config(arg=None):\n"
        "  return ml_collections.ConfigDict({'model': {}})\n")
  write("config_forever.py", "def get_config(arg=None):\n  while True:\n    pass\n")
  write("arch_bad.json", json.dumps({"n_layers": 2, "d_model": 64, "n_heads": 6, "n_kv_heads": 4,
                                     "head_dim": 16, "ffn_dim": 64, "vocab_size": 256}))
  (root / "a_dir").mkdir()
  (root / "empty_dir").mkdir()
  corrupt = root / "corrupt_root" / "run-1"
  corrupt.mkdir(parents=True)
  (corrupt / "result.json").write_text("{garbage")
  hf_model = root / "hf_model"  # a Hugging Face model directory
  hf_model.mkdir()
  (hf_model / "config.json").write_text(json.dumps({"model_type": "llama"}))
  (hf_model / "model.safetensors").write_bytes(b"weights")
  from lawsearch import arch  # pylint: disable=import-outside-toplevel
  from lawsearch.hf import config as hf_config  # pylint: disable=import-outside-toplevel

  nano_config = hf_config.hf_config(arch.preset("nano"))
  nano = json.dumps(nano_config)
  for name, changes in (("hf_string_theta", {"rope_theta": "500000"}),
                        ("hf_string_tie", {"tie_word_embeddings": "false"}),
                        ("hf_negative_eps", {"rms_norm_eps": -1e-5})):
    (root / name).mkdir()
    (root / name / "config.json").write_text(json.dumps({**nano_config, **changes}))
  for name, files in (("hf_escape", {"model.safetensors.index.json": json.dumps(
      {"weight_map": {"model.embed_tokens.weight": "../outside.safetensors"}})}),
                      ("hf_garbage", {"model.safetensors": "not a safetensors file"}),
                      ("hf_missing_shard", {"model.safetensors.index.json": json.dumps(
                          {"weight_map": {"lm_head.weight": "model-00002.safetensors"}})})):
    (root / name).mkdir()
    for file, text in {"config.json": nano, **files}.items():
      (root / name / file).write_text(text)
  a_run = root / "a_run"  # a lawsearch run directory (its records only)
  a_run.mkdir()
  (a_run / "config.json").write_text("{}")
  (a_run / "result.json").write_text("{}")
  return _damaged_records(root)




def _damaged_records(root):
  """Damaged files of every kind lawsearch reads back (issue 28), made without training: run
  directories under runs/, run roots under roots/, token directories under tokens/."""
  from lawsearch import arch, configlib, rundir, runs  # pylint: disable=import-outside-toplevel

  config = configlib.load(NANO)
  plain = rundir.plain(config)
  identity = rundir.RunIdentity.of(config).to_dict()
  spec = arch.preset("nano")
  result = runs.result_record(spec, tokens=1e6, loss=3.0, steps=10)
  metrics = "".join(json.dumps({"step": s, "loss": 5.0 - s / 10}) + "\n" for s in (1, 2, 3))
  good = {"config.json": json.dumps(plain), "identity.json": json.dumps(identity)}

  def run(name, **files):
    d = root / "runs" / name
    d.mkdir(parents=True)
    for fname, content in {**good, **files}.items():
      if content is None:
        continue
      data = content if isinstance(content, bytes) else content.encode()
      (d / fname.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
      (d / fname.replace("__", "/")).write_bytes(data)

  text = json.dumps(plain)
  run("config_truncated", **{"config.json": text[: len(text) // 2]})
  run("config_array", **{"config.json": "[1, 2]"})
  run("config_not_utf8", **{"config.json": b"\xff\xfe{}"})
  run("config_empty", **{"config.json": ""})
  run("config_no_model", **{"config.json": json.dumps({k: v for k, v in plain.items()
                                                       if k != "model"})})
  run("config_model_list", **{"config.json": json.dumps({**plain, "model": [1]})})
  bad_arch = {**plain, "model": {**plain["model"], "arch": {**plain["model"]["arch"],
                                                            "n_heads": 0}}}
  run("config_bad_arch", **{"config.json": json.dumps(bad_arch)})
  run("config_deep", **{"config.json": "[" * 100_000 + "]" * 100_000})
  run("identity_truncated", **{"identity.json": json.dumps(identity)[:20]})
  run("identity_array", **{"identity.json": "[]"})
  run("identity_no_fields", **{"identity.json": json.dumps({"version": 1})})
  run("identity_version_string", **{"identity.json": json.dumps({**identity, "version": "1"})})
  run("identity_future", **{"identity.json": json.dumps({**identity, "version": 99})})
  rtext = json.dumps(result)
  run("result_truncated", **{"result.json": rtext[:40]})
  run("result_array", **{"result.json": json.dumps([result])})
  run("result_not_utf8", **{"result.json": b"\x80" + rtext.encode()})
  run("result_loss_string", **{"result.json": json.dumps({**result, "loss": "3.0"})})
  run("result_no_loss", **{"result.json": json.dumps({k: v for k, v in result.items()
                                                      if k != "loss"})})
  run("result_negative_tokens", **{"result.json": json.dumps({**result, "tokens": -5})})
  run("result_nan_loss", **{"result.json": rtext.replace('"loss": 3.0', '"loss": NaN')})
  run("result_bad_arch", **{"result.json": json.dumps({**result, "n_kv_heads": 3})})
  run("metrics_cut", **{"metrics.jsonl": metrics + '{"step": 4, "lo'})
  run("metrics_middle", **{"metrics.jsonl": metrics + "garbage\n" + metrics})
  run("metrics_array_line", **{"metrics.jsonl": metrics + "[1, 2]\n"})
  run("history_garbage", **{"config_history.jsonl": '{"step": 3}\n'})
  run("records_only", **{"config.json": None, "identity.json": None, "result.json": rtext,
                         "checkpoints__10__meta": "{}"})
  run("finished_config_deleted", **{"config.json": None, "result.json": rtext})
  # result roots for fit: one damaged record among good ones
  for name, text in (("not_utf8", b"\xff" + rtext.encode()), ("array", "[]"), ("empty", ""),
                     ("no_loss", json.dumps({k: v for k, v in result.items() if k != "loss"})),
                     ("loss_string", json.dumps({**result, "loss": "low"})),
                     ("nan_loss", rtext.replace('"loss": 3.0', '"loss": NaN')),
                     ("bad_arch", json.dumps({**result, "n_heads": 0})),
                     ("deep", "[" * 100_000 + "]" * 100_000)):
    d = root / "roots" / name
    (d / "good").mkdir(parents=True)
    (d / "good" / "result.json").write_text(rtext)
    (d / "bad").mkdir()
    (d / "bad" / "result.json").write_bytes(text if isinstance(text, bytes) else text.encode())
  # token directories (data.source=tokens, used in place)
  ids = np.arange(8192, dtype=np.uint16) % 256
  meta = {"vocab_size": 256, "eos_id": None, "dtype": "uint16",
          "n_tokens": {"train": 8192, "heldout": 4096}, "tokenizer": ""}

  def tokens(name, meta_text, train=ids, heldout=ids[:4096]):
    d = root / "tokens" / name
    d.mkdir(parents=True)
    (d / "meta.json").write_text(meta_text)
    if train is not None:
      (d / "train.bin").write_bytes(train.tobytes())
    if heldout is not None:
      (d / "heldout.bin").write_bytes(heldout.tobytes())

  tokens("good", json.dumps(meta))
  tokens("meta_truncated", json.dumps(meta)[:30])
  tokens("meta_array", "[]")
  tokens("meta_dtype", json.dumps({**meta, "dtype": "float64"}))
  tokens("meta_negative", json.dumps({**meta, "n_tokens": {"train": -1, "heldout": 0}}))
  tokens("train_truncated", json.dumps(meta), train=ids[:100])
  tokens("heldout_missing", json.dumps(meta), heldout=None)
  tokens("checksum", json.dumps({**meta, "files": {"train.bin": {
      "bytes": ids.nbytes, "digest": "sha256:" + "0" * 64}}}))
  (root / "odd.bin").write_bytes(b"\x01\x02\x03")
  names = ("a0", "a1", "a2", "b0", "b1", "b2")
  law = {"form": "multiplicative", "coefficients": dict(zip(names, (2.697, 0.0974, 0.0078,
                                                                   0.3870, 0.0063, 0.0065)))}
  acc = {"form": "linear", "params": [1.5, -0.3], "chance": 0.25, "n_points": 5,
         "loss_range": [3.0, 4.0], "rmse": 0.01, "level": 0.95, "boot": []}
  for name, text in (
      ("law_empty.json", ""), ("law_not_utf8.json", b"\xff\xfe" + json.dumps(law).encode()),
      ("law_truncated.json", json.dumps(law)[:30]),
      ("law_coeff_list.json", json.dumps({**law, "coefficients": [1, 2]})),
      ("law_form_number.json", json.dumps({**law, "form": 3})),
      ("law_nan.json", json.dumps(law).replace("2.697", "NaN")),
      ("law_bad_fit.json", json.dumps({**law, "fit": {"objective": 1.0}})),
      ("acc_nan.json", json.dumps(acc).replace("1.5", "NaN")),
      ("acc_level.json", json.dumps({**acc, "level": 2.0})),
      ("acc_form.json", json.dumps({**acc, "form": "cubic"})),
      ("measured_numbers.json", "[1, 2, 3]"),
      ("measured_nan.json", json.dumps([{**arch.preset("llama3.2-1b").fields(), "batch": 64,
                                         "output_tokens_per_s": 1.0}]).replace("1.0", "NaN")),
      ("measured_bool.json", json.dumps([{**arch.preset("llama3.2-1b").fields(), "batch": True,
                                          "output_tokens_per_s": 5.0}])),
      ("config_none.py", "def get_config(arg=None):\n  return None\n"),
      ("config_import.py", "import lawsearch_no_such_module\n"),
      ("config_not_callable.py", "get_config = 5\n")):
    (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
  return root


CASES = [
    # arch
    ("arch-unknown-preset", ["arch", "--preset", "nope"], "nope"),
    ("arch-zero-layers", ["arch", "--preset", "tiny", "--n-layers", "0"], "n_layers"),
    ("arch-heads-not-divisible", ["arch", "--preset", "tiny", "--n-kv-heads", "3"], "n_kv_heads"),
    ("arch-nothing", ["arch"], "--preset"),
    ("arch-not-a-number", ["arch", "--d-model", "abc"], "--d-model"),
    ("arch-config-override", ["arch", "--preset", "tiny", "--config.train.steps=5"],
     "--config.train.steps"),
    ("unknown-command", ["fly"], "fly"),
    # cost
    ("cost-unknown-hardware", ["cost", "--preset", "tiny", "--hardware", "tpu-v9"], "tpu-v9"),
    ("cost-zero-batch", ["cost", "--preset", "tiny", "--batch", "0"], "batch"),
    ("cost-negative-batch", ["cost", "--preset", "tiny", "--batch", "-3"], "batch"),
    ("cost-zero-input", ["cost", "--preset", "tiny", "--input-len", "0"], "--input-len"),
    ("cost-missing-calibration", ["cost", "--preset", "tiny", "--calibration", "{d}/missing.json"],
     "missing.json"),
    ("cost-list-calibration", ["cost", "--preset", "tiny", "--calibration", "{d}/calib_list.json"],
     "calib_list.json"),
    ("cost-calibration-lacks-key", ["cost", "--preset", "tiny", "--hardware", "h100-sxm",
                                    "--calibration", "{d}/calib_missing.json"], "calib_missing"),
    ("breakdown-zero-context", ["cost", "--breakdown", "--context", "0"], "context"),
    ("breakdown-plots-on-a-file", ["cost", "--breakdown", "--plots", "{d}/a_file"], "a_file"),
    # search
    ("search-law-negative-loss", [*SEARCH, "--law", "{d}/law_negative.json"], "L / L_opt = -"),
    ("search-law-all-zero", [*SEARCH, "--law", "{d}/law_zeros.json"], "L / L_opt = 0"),
    ("search-law-overflows", [*SEARCH, "--law", "{d}/law_huge.json"], "law_huge.json"),
    ("search-law-deeply-nested", [*SEARCH, "--law", "{d}/deep.json"], "nests deeper"),
    ("fit-boolean-loss", ["fit", "--runs", "{d}/runs_bool.json"], "true/false"),
    ("fit-fractional-d-model", ["fit", "--runs", "{d}/runs_half_d_model.csv"], "64.5"),
    ("fit-absurd-n-params", ["fit", "--runs", "{d}/runs_huge_n.csv"], "1e+300"),
    ("fit-pickle-without-flag", ["fit", "--runs", "{d}/runs.pkl"], "--allow-pickle"),
    ("search-negative-params", [*SEARCH[:2], "-1", *SEARCH[3:]], "--params"),
    ("search-nan-params", [*SEARCH[:2], "nan", *SEARCH[3:]], "--params"),
    ("search-huge-params", [*SEARCH[:2], "1e30", *SEARCH[3:]], "1e+30"),
    ("search-zero-layers", [*SEARCH[:6], "0", *SEARCH[7:]], "--layers"),
    ("search-odd-head-dim", [*SEARCH[:8], "15", *SEARCH[9:]], "head_dim"),
    ("search-no-target", SEARCH[:-2], "baseline"),
    ("search-unknown-baseline", [*SEARCH[:-1], "nope"], "nope"),
    ("search-missing-law", [*SEARCH, "--law", "{d}/missing.json"], "missing.json"),
    ("search-law-is-a-list", [*SEARCH, "--law", "{d}/law_list.json"], "law_list.json"),
    ("search-law-lacks-coefficients", [*SEARCH, "--law", "{d}/law_missing.json"],
     "coefficients"),
    ("search-law-strings", [*SEARCH, "--law", "{d}/law_strings.json"], "law_strings.json"),
    ("search-law-not-json", [*SEARCH, "--law", "{d}/not_json.txt"], "not_json.txt"),
    ("search-law-bad-form", [*SEARCH, "--law", "{d}/law_badform.json"], "cubic"),
    ("search-law-short", [*SEARCH, "--law", "{d}/law_short.json"], "law_short.json"),
    ("search-law-is-a-dir", [*SEARCH, "--law", "{d}/a_dir"], "a_dir"),
    ("search-target-below-minimum", [*SEARCH[:-2], "--target", "0.5"], "below the law's minimum"),
    ("search-unknown-hardware", [*SEARCH, "--hardware", "abacus"], "abacus"),
    ("search-zero-batch", [*SEARCH, "--batch", "0"], "batch"),
    ("search-missing-measured", [*SEARCH, "--measured", "{d}/missing.json"], "missing.json"),
    ("search-measured-dict", [*SEARCH, "--measured", "{d}/measured_dict.json"],
     "measured_dict.json"),
    ("search-measured-lacks-shape", [*SEARCH, "--measured", "{d}/measured_keys.json"],
     "measured_keys.json"),
    ("search-negative-tolerance", [*SEARCH, "--tolerance", "-0.1"], "--tolerance"),
    ("search-zero-max-gqa", [*SEARCH, "--max-gqa", "0"], "--max-gqa"),
    ("search-negative-lambda", [*SEARCH, "--lambda", "-1"], "--lambda"),
    ("search-dollars-without-price", [*SEARCH, "--lambda", "1", "--cost-unit", "$/Mtoken"],
     "--price-per-hour"),
    ("search-out-on-a-file", [*SEARCH, "--out", "{d}/a_file"], "a_file"),
    ("search-zero-vocab", [*SEARCH, "--vocab-size", "0"], "--vocab-size"),
    ("search-negative-l-opt", [*SEARCH, "--l-opt", "-1"], "--l-opt"),
    # fit and report
    ("fit-missing-runs", ["fit", "--runs", "{d}/missing.csv"], "missing.csv"),
    ("fit-empty-table", ["fit", "--runs", "{d}/runs_empty.csv"], "runs_empty.csv"),
    ("fit-missing-columns", ["fit", "--runs", "{d}/runs_missing_cols.csv"], "d_model"),
    ("fit-strings", ["fit", "--runs", "{d}/runs_strings.csv"], "runs_strings.csv"),
    ("fit-nan", ["fit", "--runs", "{d}/runs_nan.csv"], "runs_nan.csv"),
    ("fit-empty-dir", ["fit", "--runs", "{d}/empty_dir"], "empty_dir"),
    ("fit-negative-bootstrap", ["fit", "--runs", "{d}/runs_ok.csv", "--bootstrap", "-1"],
     "--bootstrap"),
    ("fit-level-above-one", ["fit", "--runs", "{d}/runs_ok.csv", "--level", "1.5"], "--level"),
    ("fit-r-range-reversed", ["fit", "--runs", "{d}/runs_ok.csv", "--r-range", "5", "0.5"],
     "--r-range"),
    ("fit-out-on-a-dir", ["fit", "--runs", "{d}/runs_ok.csv", "--bootstrap", "0", "--out",
                          "{d}/a_dir"], "a_dir"),
    ("fit-plots-on-a-file", ["fit", "--runs", "{d}/runs_ok.csv", "--bootstrap", "0", "--plots",
                             "{d}/a_file"], "a_file"),
    ("fit-corrupt-record", ["fit", "--runs", "{d}/corrupt_root"], "result.json"),
    ("fit-bad-l-opt", ["fit", "--runs", "{d}/runs_ok.csv", "--l-opt", "nonsense"], "nonsense"),
    ("report-law-is-a-list", ["report", "--runs", "{d}/runs_ok.csv", "--law",
                              "{d}/law_list.json", "--out", "{d}/report"], "law_list.json"),
    ("report-out-on-a-file", ["report", "--runs", "{d}/runs_ok.csv", "--law",
                              "{d}/law_missing.json", "--out", "{d}/a_file"], "a_file"),
    # train, sweep, eval
    ("train-missing-config", ["train", "--config", "{d}/missing.py", "--workdir", "{d}/w"],
     "missing.py"),
    ("train-config-syntax", ["train", "--config", "{d}/config_syntax.py", "--workdir", "{d}/w"],
     "config_syntax.py"),
    ("train-config-no-get-config", ["train", "--config", "{d}/config_noget.py", "--workdir",
                                    "{d}/w"], "get_config"),
    ("train-unknown-preset", ["train", "--config", "configs/train.py:preset=nope", "--workdir",
                              "{d}/w"], "nope"),
    ("train-workdir-is-a-file", ["train", "--config", NANO, "--workdir", "{d}/a_file"],
     "a_file"),
    ("train-negative-steps", ["train", "--config", NANO, "--config.train.steps=-1", "--workdir",
                              "{d}/w"], "steps"),
    ("train-unknown-override", ["train", "--config", NANO, "--config.nope=1", "--workdir",
                                "{d}/w"], "nope"),
    ("train-no-workdir", ["train", "--config", NANO], "--workdir"),
    ("train-bad-arch-file", ["train", "--config", "configs/train.py:arch={d}/arch_bad.json",
                             "--workdir", "{d}/w"], "n_kv_heads"),
    ("train-cudnn-on-cpu", ["train", "--config", NANO, "--config.model.attention_impl=cudnn",
                            "--workdir", "{d}/w"], "cudnn"),
    ("import-hf-string-rope-theta", ["import-hf", "{d}/hf_string_theta", "--workdir",
                                     "{d}/imp4"], "rope_theta must be a positive number"),
    ("import-hf-string-tie", ["import-hf", "{d}/hf_string_tie", "--workdir", "{d}/imp5"],
     "tie_word_embeddings must be true or false"),
    ("import-hf-negative-eps", ["import-hf", "{d}/hf_negative_eps", "--workdir", "{d}/imp6"],
     "rms_norm_eps must be a positive number"),
    ("import-hf-weight-map-escapes", ["import-hf", "{d}/hf_escape", "--workdir", "{d}/imp1"],
     "outside the model directory"),
    ("import-hf-garbage-weights", ["import-hf", "{d}/hf_garbage", "--workdir", "{d}/imp2"],
     "not a readable safetensors file"),
    ("import-hf-missing-shard", ["import-hf", "{d}/hf_missing_shard", "--workdir", "{d}/imp3"],
     "model-00002.safetensors"),
    ("train-config-returns-a-dict", ["train", "--config", "{d}/config_dict.py", "--workdir",
                                     "{d}/w"], "get_config returned dict"),
    ("train-config-exits", ["train", "--config", "{d}/config_exit.py", "--workdir", "{d}/w"],
     "sys.exit(0)"),
    ("train-config-raises", ["train", "--config", "{d}/config_raises.py", "--workdir", "{d}/w"],
     "line 2: ZeroDivisionError"),
    ("train-config-takes-no-arg", ["train", "--config", "{d}/config_no_arg.py", "--workdir",
                                   "{d}/w"], "takes 0 positional arguments"),
    ("train-config-lacks-groups", ["train", "--config", "{d}/config_no_groups.py", "--workdir",
                                   "{d}/w"], "lacks ['train', 'optimizer', 'data', 'mesh']"),
    ("train-config-is-json", ["train", "--config", "{d}/law_list.json", "--workdir", "{d}/w"],
     "not a Python file"),
    ("train-into-a-hf-model", ["train", "--config", NANO, "--workdir", "{d}/hf_model"],
     "model.safetensors"),
    ("fit-out-is-runs", ["fit", "--runs", "{d}/runs_ok.csv", "--out", "{d}/runs_ok.csv"],
     "is also --runs"),
    ("fit-unknown-url-scheme", ["fit", "--runs", "foo://bucket/runs.csv"], "foo://"),
    ("export-hf-into-a-run", ["export-hf", "--workdir", "{d}/a_run", "--out", "{d}/a_run",
                              "--no-tokenizer"], "is a lawsearch run directory"),
    ("train-group-override", ["train", "--config", NANO, "--config.train=5", "--workdir",
                              "{d}/w"], "train.steps"),
    ("train-range-batch-0", ["train", "--config", NANO, "--config.train.batch_size=0", "--workdir",
     "{d}/w"], "train.batch_size"),
    ("train-range-seq-len-0", ["train", "--config", NANO, "--config.train.seq_len=0", "--workdir",
     "{d}/w"], "train.seq_len"),
    ("train-range-steps-bool", ["train", "--config", NANO, "--config.train.steps=True", "--workdir",
     "{d}/w"], "train.steps"),
    ("train-range-b1-2", ["train", "--config", NANO, "--config.optimizer.b1=2", "--workdir",
     "{d}/w"], "optimizer.b1"),
    ("train-range-weight-decay-negative", ["train", "--config", NANO, "--config.optimizer.weight_decay=-1", "--workdir",
     "{d}/w"], "optimizer.weight_decay"),
    ("train-range-clip-norm-0", ["train", "--config", NANO, "--config.optimizer.clip_norm=0", "--workdir",
     "{d}/w"], "optimizer.clip_norm"),
    ("train-range-log-every-0", ["train", "--config", NANO, "--config.train.log_every=0", "--workdir",
     "{d}/w"], "train.log_every"),
    ("train-range-peak-lr-inf", ["train", "--config", NANO, "--config.optimizer.peak_lr=1e999", "--workdir",
     "{d}/w"], "optimizer.peak_lr"),
    ("train-range-eps-0", ["train", "--config", NANO, "--config.optimizer.eps=0", "--workdir",
     "{d}/w"], "optimizer.eps"),
    ("train-range-final-lr-above-1", ["train", "--config", NANO, "--config.optimizer.final_lr_fraction=1.5", "--workdir",
     "{d}/w"], "optimizer.final_lr_fraction"),
    ("train-range-keep-checkpoints-0", ["train", "--config", NANO, "--config.train.keep_checkpoints=0", "--workdir",
     "{d}/w"], "train.keep_checkpoints"),
    ("sweep-unknown-scale", ["sweep", "--config", "configs/sweep.py:scales=7Q", "--root",
                             "{d}/sweep"], "7Q"),
    ("sweep-root-is-a-file", ["sweep", "--config", "configs/sweep.py:runlocal", "--root",
                              "{d}/a_file"], "a_file"),
    ("sweep-bad-shard", ["sweep", "--config", "configs/sweep.py:runlocal", "--root",
                         "{d}/sweep", "--shard", "3/2"], "shard"),
    ("sweep-shard-not-numbers", ["sweep", "--config", "configs/sweep.py:runlocal", "--root",
                                 "{d}/sweep", "--shard", "x"], "shard"),
    ("eval-not-a-run", ["eval", "--workdir", "{d}/empty_dir"], "empty_dir"),
    ("eval-missing", ["eval", "--workdir", "{d}/missing_run"], "missing_run"),
    # bench and data
    ("bench-zero-batch", ["bench", "--preset", "nano", "--batch", "0"], "batch"),
    ("bench-prompt-too-long", ["bench", "--preset", "nano", "--input-len", "100000"],
     "100000"),
    ("bench-unknown-hardware", ["bench", "--preset", "nano", "--hardware", "abacus"], "abacus"),
    ("bench-cudnn-on-cpu", ["bench", "--preset", "nano", "--attention-impl", "cudnn"], "cudnn"),
    ("bench-pallas-on-cpu", ["bench", "--preset", "nano", "--decode-impl", "pallas", "--batch",
                             "1", "--input-len", "16", "--output-len", "4"], "--decode-impl"),
    ("bench-out-on-a-dir", ["bench", "--preset", "nano", "--out", "{d}/a_dir"], "a_dir"),
    ("bench-zero-trials", ["bench", "--preset", "nano", "--trials", "0"], "trials"),
    ("data-empty-corpus", ["data", "prepare", "--source", "text", "--path",
                           "{d}/empty_corpus.txt", "--cache-dir", "{d}/cache"],
     "empty_corpus.txt"),
    ("data-missing-corpus", ["data", "prepare", "--source", "text", "--path", "{d}/missing.txt",
                             "--cache-dir", "{d}/cache"], "missing.txt"),
    ("data-vocab-one", ["data", "prepare", "--vocab-size", "1", "--cache-dir", "{d}/cache"],
     "vocab"),
    ("data-heldout-above-one", ["data", "prepare", "--heldout-fraction", "1.5", "--cache-dir",
                                "{d}/cache"], "heldout"),
]


TINY = "configs/train.py:preset=tiny,data=synthetic"
SWEEP = ["sweep", "--config", "configs/sweep.py:runlocal", "--root", "{d}/sweep"]
CLOSED = {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"}  # nothing listens on port 9 (discard)


def _train_in(run, *extra, config=NANO):
  return ["train", "--config", config, *extra, "--workdir", "{d}/runs/" + run]


# (name, argv, text the one stderr line holds[, environment])
CASES_28 = [
    # 1. a run's own records read back damaged: train names the file, what is wrong, the way out
    ("train-config-json-truncated", _train_in("config_truncated"),
     "config.json: damaged run config"),
    ("train-config-json-array", _train_in("config_array"), "holds a JSON array"),
    ("train-config-json-not-utf8", _train_in("config_not_utf8"), "not UTF-8"),
    ("train-config-json-empty", _train_in("config_empty"),
     "config.json: damaged run config: empty"),
    ("train-config-json-no-model", _train_in("config_no_model"), "lacks 'model'"),
    ("train-config-json-model-list", _train_in("config_model_list"),
     "'model' must be a JSON object"),
    ("train-config-json-bad-arch", _train_in("config_bad_arch"), "n_heads"),
    ("train-config-json-deep", _train_in("config_deep"), "nests deeper"),
    ("train-identity-truncated", _train_in("identity_truncated"),
     "identity.json: damaged run identity"),
    ("train-identity-array", _train_in("identity_array"), "identity.json: damaged"),
    ("train-identity-no-fields", _train_in("identity_no_fields"), "lacks 'fields'"),
    ("train-identity-version-string", _train_in("identity_version_string"),
     "'version' must be an integer"),
    ("train-identity-from-the-future", _train_in("identity_future"), "upgrade lawsearch"),
    ("train-result-truncated", _train_in("result_truncated"), "result.json: damaged result record"),
    ("train-result-array", _train_in("result_array"), "result.json: damaged"),
    ("train-result-not-utf8", _train_in("result_not_utf8"), "not UTF-8"),
    ("train-result-loss-string", _train_in("result_loss_string"), "'loss' must be a finite number"),
    ("train-result-no-loss", _train_in("result_no_loss"), "lacks 'loss'"),
    ("train-result-negative-tokens", _train_in("result_negative_tokens"),
     "'tokens' must be positive"),
    ("train-result-nan-loss", _train_in("result_nan_loss"), "'loss' must be a finite number"),
    ("train-result-bad-arch", _train_in("result_bad_arch"), "n_kv_heads"),
    ("train-metrics-cut-short", _train_in("metrics_cut"), "--repair"),
    ("train-metrics-garbage-line", _train_in("metrics_middle"), "line 4 of"),
    ("train-metrics-array-line", _train_in("metrics_array_line"), "metrics.jsonl: damaged"),
    ("train-history-damaged", _train_in("history_garbage"), "lacks 'changes'"),
    ("train-records-without-config", _train_in("records_only"),
     "neither identity.json nor config.json"),
    ("train-finished-run-other-preset", _train_in("finished_config_deleted", config=TINY),
     "trained with another config"),
    ("train-into-a-token-dir", _train_in("../tokens/good"), "meta.json"),
    ("train-into-a-run-root", _train_in("../roots/array"), "not a lawsearch run's"),
    ("eval-config-truncated", ["eval", "--workdir", "{d}/runs/config_truncated"],
     "config.json: damaged run config"),
    ("eval-config-array", ["eval", "--workdir", "{d}/runs/config_array"], "JSON array"),
    ("eval-config-not-utf8", ["eval", "--workdir", "{d}/runs/config_not_utf8"], "not UTF-8"),
    ("eval-config-empty", ["eval", "--workdir", "{d}/runs/config_empty"], "empty"),
    ("eval-config-no-model", ["eval", "--workdir", "{d}/runs/config_no_model"], "lacks 'model'"),
    ("eval-config-bad-arch", ["eval", "--workdir", "{d}/runs/config_bad_arch"], "n_heads"),
    ("arch-workdir-config-truncated", ["arch", "--workdir", "{d}/runs/config_truncated"],
     "config.json: damaged"),
    ("arch-workdir-config-model-list", ["arch", "--workdir", "{d}/runs/config_model_list"],
     "'model' must be a JSON object"),
    ("arch-workdir-no-config", ["arch", "--workdir", "{d}/runs/records_only"], "no config.json"),
    ("cost-workdir-config-deep", ["cost", "--workdir", "{d}/runs/config_deep"], "nests deeper"),
    ("bench-workdir-config-not-utf8", ["bench", "--workdir", "{d}/runs/config_not_utf8"],
     "not UTF-8"),
    ("fit-root-result-not-utf8", ["fit", "--runs", "{d}/roots/not_utf8"], "not UTF-8"),
    ("fit-root-result-array", ["fit", "--runs", "{d}/roots/array"], "holds a JSON array"),
    ("fit-root-result-empty", ["fit", "--runs", "{d}/roots/empty"], "damaged result record: empty"),
    ("fit-root-result-no-loss", ["fit", "--runs", "{d}/roots/no_loss"], "lacks 'loss'"),
    ("fit-root-result-loss-string", ["fit", "--runs", "{d}/roots/loss_string"], "'loss' must be"),
    ("fit-root-result-nan-loss", ["fit", "--runs", "{d}/roots/nan_loss"], "'loss' must be"),
    ("fit-root-result-bad-arch", ["fit", "--runs", "{d}/roots/bad_arch"], "n_heads"),
    ("fit-root-result-deep", ["fit", "--runs", "{d}/roots/deep"], "nests deeper"),
    ("report-root-result-array", ["report", "--runs", "{d}/roots/array", "--law",
                                  "{d}/law_missing.json", "--out", "{d}/report28"], "result.json"),
    ("fit-accuracy-root-result-empty", ["fit-accuracy", "--runs", "{d}/roots/empty"], "empty"),
    # laws and other files lawsearch writes
    ("search-law-empty", [*SEARCH, "--law", "{d}/law_empty.json"], "damaged law file: empty"),
    ("search-law-not-utf8", [*SEARCH, "--law", "{d}/law_not_utf8.json"], "not UTF-8"),
    ("search-law-truncated", [*SEARCH, "--law", "{d}/law_truncated.json"], "fit --out"),
    ("search-law-coefficients-list", [*SEARCH, "--law", "{d}/law_coeff_list.json"],
     "'coefficients' must be a JSON object"),
    ("search-law-form-number", [*SEARCH, "--law", "{d}/law_form_number.json"],
     "'form' must be a string"),
    ("search-law-nan-coefficient", [*SEARCH, "--law", "{d}/law_nan.json"], "finite numbers"),
    ("search-law-bad-fit-record", [*SEARCH, "--law", "{d}/law_bad_fit.json"], "'fit' record"),
    ("search-accuracy-law-missing", [*SEARCH, "--l-opt", "2", "--accuracy-law",
                                     "{d}/missing_acc.json"], "missing_acc.json"),
    ("search-accuracy-law-array", [*SEARCH, "--l-opt", "2", "--accuracy-law", "{d}/law_list.json"],
     "accuracy law file"),
    ("search-accuracy-law-nan", [*SEARCH, "--l-opt", "2", "--accuracy-law", "{d}/acc_nan.json"],
     "'params' must be two finite numbers"),
    ("search-accuracy-law-level", [*SEARCH, "--l-opt", "2", "--accuracy-law",
                                   "{d}/acc_level.json"], "'level'"),
    ("search-accuracy-law-form", [*SEARCH, "--l-opt", "2", "--accuracy-law", "{d}/acc_form.json"],
     "cubic"),
    ("report-law-truncated", ["report", "--runs", "{d}/runs_ok.csv", "--law",
                              "{d}/law_truncated.json", "--out", "{d}/report28"], "law_truncated"),
    ("search-measured-numbers", [*SEARCH, "--measured", "{d}/measured_numbers.json"],
     "measured_numbers.json"),
    ("search-measured-nan", [*SEARCH, "--measured", "{d}/measured_nan.json"], "measured_nan.json"),
    ("search-measured-bool-batch", [*SEARCH, "--measured", "{d}/measured_bool.json"],
     "measured_bool.json"),
    ("cost-calibration-truncated", ["cost", "--preset", "tiny", "--calibration",
                                    "{d}/law_truncated.json"], "law_truncated.json"),
    ("cost-calibration-not-utf8", ["cost", "--preset", "tiny", "--calibration",
                                   "{d}/law_not_utf8.json"], "not UTF-8"),
    # token directories used in place, and raw token files
    ("data-tokens-meta-truncated", ["data", "prepare", "--source", "tokens", "--path",
                                    "{d}/tokens/meta_truncated"], "meta.json: damaged token set"),
    ("data-tokens-meta-array", ["data", "prepare", "--source", "tokens", "--path",
                                "{d}/tokens/meta_array"], "JSON array"),
    ("data-tokens-meta-dtype", ["data", "prepare", "--source", "tokens", "--path",
                                "{d}/tokens/meta_dtype"], "'dtype' must be"),
    ("data-tokens-meta-negative", ["data", "prepare", "--source", "tokens", "--path",
                                   "{d}/tokens/meta_negative"], "'n_tokens'"),
    ("data-tokens-train-truncated", ["data", "prepare", "--source", "tokens", "--path",
                                     "{d}/tokens/train_truncated"], "train.bin holds 200 bytes"),
    ("data-tokens-heldout-missing", ["data", "prepare", "--source", "tokens", "--path",
                                     "{d}/tokens/heldout_missing"], "heldout.bin is missing"),
    ("data-tokens-checksum", ["data", "prepare", "--source", "tokens", "--path",
                              "{d}/tokens/checksum"], "checksum"),
    ("data-raw-tokens-odd-size", ["data", "prepare", "--source", "tokens", "--path", "{d}/odd.bin",
                                  "--token-dtype", "uint16", "--vocab-size", "300", "--cache-dir",
                                  "{d}/cache"], "odd.bin"),
    ("data-cache-dir-is-a-file", ["data", "prepare", "--source", "text", "--path",
                                  "{d}/not_json.txt", "--cache-dir", "{d}/a_file"], "a_file"),
    # SLURM fields become #SBATCH lines
    ("slurm-partition-newline", [*SWEEP, "--slurm-script",
                                 "--config.slurm.partition=gpu\n#SBATCH --exclusive"],
     "slurm.partition"),
    ("slurm-partition-space", [*SWEEP, "--slurm-script", "--config.slurm.partition=gpu big"],
     "slurm.partition"),
    ("slurm-account-semicolon", [*SWEEP, "--slurm-script", "--config.slurm.account=a;rm -rf ~"],
     "slurm.account"),
    ("slurm-time-words", [*SWEEP, "--slurm-script", "--config.slurm.time=one day"],
     "slurm.time"),
    ("slurm-time-newline", [*SWEEP, "--slurm-script", "--config.slurm.time=1:00\n#SBATCH --x"],
     "slurm.time"),
    ("slurm-workers-bool", [*SWEEP, "--slurm-script", "--config.slurm.workers=True"],
     "slurm.workers"),
    ("slurm-nodes-zero", [*SWEEP, "--slurm-script", "--config.slurm.nodes=0"], "slurm.nodes"),
    ("slurm-gpus-negative", [*SWEEP, "--slurm-script", "--config.slurm.gpus_per_node=-1"],
     "slurm.gpus_per_node"),
    ("slurm-logs-newline", [*SWEEP, "--slurm-script", "--slurm-logs", "{d}/logs\n#SBATCH --x"],
     "--slurm-logs"),
    # the search grid is sized before it is built
    ("search-grid-too-large", ["search", "--params", "1e14", "--tokens", "1e15", "--layers", "16",
                               "--head-dim", "128", "--baseline", "llama3.2-1b"], "holds about"),
    ("search-grid-one-layer", ["search", "--params", "1e11", "--tokens", "1e12", "--layers", "1",
                               "--head-dim", "2", "--baseline", "llama3.2-1b"], "--layers"),
    # an unreachable bucket fails at once
    ("fit-unreachable-bucket", ["fit", "--runs", "gs://lawsearch-test/runs"], "cannot reach",
     CLOSED),
    ("fit-out-unreachable-bucket", ["fit", "--runs", "{d}/runs_ok.csv", "--out",
                                    "gs://lawsearch-test/law.json"], "cannot reach", CLOSED),
    ("report-unreachable-bucket", ["report", "--runs", "gs://lawsearch-test/runs", "--law",
                                   "{d}/law_missing.json", "--out", "{d}/report28"],
     "127.0.0.1:9", CLOSED),
    ("search-out-unreachable-bucket", [*SEARCH, "--out", "gs://lawsearch-test/search"],
     "cannot reach", CLOSED),
    ("sweep-status-unreachable-bucket", ["sweep", "--config", "configs/sweep.py:runlocal",
                                         "--root", "gs://lawsearch-test/sweep", "--status"],
     "cannot reach", CLOSED),
    ("train-unreachable-bucket", ["train", "--config", NANO, "--workdir",
                                  "gs://lawsearch-test/run"], "cannot reach", CLOSED),
    ("eval-unreachable-bucket", ["eval", "--workdir", "gs://lawsearch-test/run"], "cannot reach",
     CLOSED),
    # every numeric train field typed and bounded before anything is read or written
    ("train-range-grad-accum-0", _train_in("new", "--config.train.grad_accum_steps=0"),
     "train.grad_accum_steps"),
    ("train-range-eval-batches-negative", _train_in("new", "--config.train.eval_batches=-1"),
     "train.eval_batches"),
    ("train-range-b2-1", _train_in("new", "--config.optimizer.b2=1"), "optimizer.b2"),
    ("train-range-warmup-negative", _train_in("new", "--config.optimizer.warmup_steps=-1"),
     "optimizer.warmup_steps"),
    ("train-range-checkpoint-every-negative",
     _train_in("new", "--config.train.checkpoint_every=-5"), "train.checkpoint_every"),
    ("train-range-z-loss-negative", _train_in("new", "--config.train.moe_z_loss_weight=-1"),
     "train.moe_z_loss_weight"),
    ("train-range-peak-lr-0", _train_in("new", "--config.optimizer.peak_lr=0"),
     "optimizer.peak_lr"),
    ("train-range-steps-fraction", _train_in("new", "--config.train.steps=2.5"), "train.steps"),
    # user config files
    ("train-config-returns-none", ["train", "--config", "{d}/config_none.py", "--workdir",
                                   "{d}/w"], "config_none.py"),
    ("train-config-imports-missing", ["train", "--config", "{d}/config_import.py", "--workdir",
                                      "{d}/w"], "ModuleNotFoundError"),
    ("train-config-get-config-not-callable", ["train", "--config", "{d}/config_not_callable.py",
                                              "--workdir", "{d}/w"], "get_config"),
    ("train-config-is-a-dir", ["train", "--config", "{d}/a_dir", "--workdir", "{d}/w"], "a_dir"),
    ("sweep-config-lacks-runs", ["sweep", "--config", "{d}/config_no_groups.py", "--root",
                                 "{d}/sweep"], "train_config"),
    # outputs that would destroy an input
    ("fit-accuracy-out-is-runs", ["fit-accuracy", "--runs", "{d}/runs_ok.csv", "--out",
                                  "{d}/runs_ok.csv"], "is also --runs"),
    ("fit-out-is-runs-relative", ["fit", "--runs", "{d}/runs_ok.csv", "--out",
                                  "{d}/a_dir/../runs_ok.csv"], "is also --runs"),
]


def _snapshot(root) -> dict:
  """Relative path -> SHA-256 of every file under root."""
  paths = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]
  return {os.path.relpath(p, root): hashlib.sha256(open(p, "rb").read()).hexdigest()
          for p in paths}


ALL = [(*c, {}) if len(c) == 3 else c for c in CASES + CASES_28]


def test_there_are_enough_cases():
  assert len(CASES) >= 60 and len(CASES_28) >= 85
  assert len({c[0] for c in ALL}) == len(ALL)


@pytest.mark.parametrize("name,argv,names,env", ALL, ids=[c[0] for c in ALL])
def test_hostile_input_is_one_line_exit_2(name, argv, names, env, files, capsys, monkeypatch):
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  before = _snapshot(files)
  code = cli.main([a.format(d=files) for a in argv])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2, (name, err)
  assert len(err) == 1 and err[0].startswith("lawsearch: error: "), err
  assert names.format(d=files) in err[0], err[0]
  assert "Traceback" not in err[0]
  assert _snapshot(files) == {**before, **{k: v for k, v in _snapshot(files).items()
                                           if k not in before}}  # only new files, none changed


def test_a_closed_pipe_ends_quietly():
  # `lawsearch cost --breakdown | head -1`: the reader stops early; no BrokenPipeError.
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  writer = subprocess.Popen([sys.executable, "-m", "lawsearch.cli", "cost", "--preset",
                             "llama3.2-1b", "--breakdown"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  writer.stdout.readline()
  writer.stdout.close()  # as `head -1` does
  err = writer.stderr.read().decode()
  assert writer.wait(timeout=120) == 0 and "BrokenPipe" not in err and "Traceback" not in err


def test_a_law_without_a_minimum_is_searched_with_one_warning_line(files, capsys):
  code = cli.main([*SEARCH, "--law", f"{files}/law_no_minimum.json"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 0 and len(err) == 1 and err[0].startswith("lawsearch: warning: law file ")
  assert "no interior minimum" in err[0]


def test_rows_repeated_in_a_runs_table_are_counted_once_with_a_warning(files, capsys):
  code = cli.main(["fit", "--runs", f"{files}/runs_twice.csv", "--bootstrap", "0",
                   "--no-validate"])
  captured = capsys.readouterr()
  assert code == 0 and "on 9 shapes (9 runs" in captured.out
  assert [line for line in captured.err.splitlines() if line.startswith("lawsearch:")] == [
      f"lawsearch: warning: --runs {files}/runs_twice.csv: 9 row(s) repeat another row exactly "
      "(a copied record or a table joined twice); each is counted once"]


def test_a_config_that_never_returns_is_stopped_with_one_line(files, capsys, monkeypatch):
  from lawsearch import configlib  # pylint: disable=import-outside-toplevel

  monkeypatch.setattr(configlib, "LOAD_TIMEOUT_S", 0.5)
  code = cli.main(["train", "--config", f"{files}/config_forever.py", "--workdir", f"{files}/w"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and "still running after 0.5 s" in err[0], err


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(files, capsys, monkeypatch):
  import errno  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel

  def full(self, data):
    self.touch()  # the file is created, then the disk runs out
    raise OSError(errno.ENOSPC, "No space left on device", str(self))
  monkeypatch.setattr(pathlib.Path, "write_bytes", full)
  out = files / "full_disk"
  code = cli.main(["fit", "--runs", f"{files}/runs_ok.csv", "--bootstrap", "0", "--no-validate",
                   "--out", f"{out}/law.json"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and err[0].startswith("lawsearch: error: No space left")
  assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_the_sbatch_script_quotes_the_log_path_for_sbatch():
  from lawsearch.train import slurm  # pylint: disable=import-outside-toplevel

  script = slurm.sbatch_script(slurm.SlurmResources(partition="gpu,debug"), config="c.py",
                               root="/r", log_dir='/logs with "q"')
  assert '#SBATCH --output="/logs with \\"q\\"/%A_%a.out"' in script.splitlines()
  assert sum(line.startswith("#SBATCH") for line in script.splitlines()) == 9


def _api_cases():
  """(name, call, words the UserError holds): the documented Python entry points, given
  arguments of the wrong type or value."""
  import pandas as pd  # pylint: disable=import-outside-toplevel

  # pylint: disable=import-outside-toplevel
  from lawsearch import arch, attention_search, configlib, cost, export, laws, runs, search
  from lawsearch import tradeoff
  from lawsearch.data import tokens
  from lawsearch.laws import ChinchillaLaw, ConditionalLaw, accuracy
  from lawsearch.train import evaluate, loop, sweep

  law = ConditionalLaw.paper("80m-297m")
  table = pd.DataFrame({"n_params": [1e5] * 7, "tokens": [2e6] * 7, "loss": [3.0] * 7,
                        "d_model": [64] * 7, "mlp_attn_ratio": [1.0] * 7})
  budget = (law, 1e9, 1e11, 16, 64)
  go = lambda **kw: (lambda: search.search(*budget, baseline="llama3.2-1b", **kw))
  sweep_config = configlib.load("configs/sweep.py:runlocal")
  return [
      ("fit-runs-df-int", lambda: laws.fit_runs(5), "laws.fit_runs: df must be"),
      ("fit-runs-df-list", lambda: laws.fit_runs([1, 2]), "laws.fit_runs: df must be"),
      ("fit-runs-form-int", lambda: laws.fit_runs(table, form=1), "form must be a string"),
      ("fit-runs-n-boot-negative", lambda: laws.fit_runs(table, n_boot=-1), "n_boot"),
      ("fit-runs-n-boot-float", lambda: laws.fit_runs(table, n_boot=1.5), "n_boot"),
      ("fit-runs-level-2", lambda: laws.fit_runs(table, level=2), "level"),
      ("fit-runs-r-range-int", lambda: laws.fit_runs(table, r_range=5), "r_range"),
      ("fit-runs-validate-str", lambda: laws.fit_runs(table, validate="no"), "validate"),
      ("fit-runs-seed-str", lambda: laws.fit_runs(table, seed="x"), "seed"),
      ("assess-law-int", lambda: laws.assess(5, table), "laws.assess: law"),
      ("assess-df-int", lambda: laws.assess(law, 5), "laws.assess: df"),
      ("search-law-dict", lambda: search.search({}, *budget[1:], baseline="llama3.2-1b"),
       "search.search: law"),
      ("search-params-str", lambda: search.search(law, "1e9", 1e11, 16, 64, loss_target=1.0),
       "n_params"),
      ("search-tolerance-str", go(tolerance="x"), "tolerance"),
      ("search-target-str", lambda: search.search(*budget, loss_target="x"), "loss_target"),
      ("search-baseline-int", lambda: search.search(*budget, baseline=5), "baseline"),
      ("search-d-models-int", go(d_models=5), "d_models"),
      ("search-gqas-zero", go(gqas=[0]), "gqas"),
      ("search-ffn-step-zero", go(ffn_step=0), "ffn_step"),
      ("search-gqa-loss-int", go(gqa_loss=5), "gqa_loss"),
      ("search-r-range-reversed", go(r_range=(5, 1)), "r_range"),
      ("search-gqa-starts-zero", go(gqa_starts=0), "gqa_starts"),
      ("search-baseline-gqa-str", go(baseline_gqa="x"), "baseline_gqa"),
      ("search-grid-too-large", lambda: search.search(law, 1e13, 1e14, 16, 128,
                                                      baseline="llama3.2-1b"), "holds about"),
      ("read-table-int", lambda: runs.read_table(5), "runs.read_table: source"),
      ("collect-int", lambda: runs.collect(5), "runs.collect: roots"),
      ("chinchilla-strings", lambda: ChinchillaLaw.fit("a", [1], [1]), "n_params"),
      ("accuracy-table-int", lambda: accuracy.fit_table(5), "accuracy.fit_table: df"),
      ("roofline-spec-int", lambda: cost.roofline_throughput(5, "a100-40gb", 1), "arch"),
      ("roofline-hw-int", lambda: cost.roofline_throughput(arch.preset("nano"), 5, 1), "hw"),
      ("breakdown-spec-int", lambda: cost.decode_breakdown(5, "a100-40gb", 1, 8), "arch"),
      ("hardware-int", lambda: cost.hardware(5), "cost.hardware: name"),
      ("penalised-int", lambda: tradeoff.penalised(5, [1.0]), "tradeoff.penalised: result"),
      ("compare-int", lambda: attention_search.compare(5, kv_lora_ranks=[32]),
       "attention_search.compare: result"),
      ("export-spec-int", lambda: export.export(5, "x", "/tmp/never"), "export.export: spec"),
      ("preset-int", lambda: arch.preset(5), "arch.preset: name"),
      ("budget-str", lambda: arch.from_budget("x", n_layers=4, head_dim=16, d_model=64, r=1,
                                              gqa=1), "budget"),
      ("tokens-build-dict", lambda: tokens.build({"source": "synthetic"}), "tokens.build: spec"),
      ("loop-run-dict", lambda: loop.run({"train": {}}, "/tmp/never"), "loop.run: config"),
      ("loop-run-workdir-int", lambda: loop.run(configlib.load(NANO), 5), "loop.run: workdir"),
      ("sweep-run-dict", lambda: sweep.run({}, "/tmp/never"), "sweep.run: sweep"),
      ("sweep-run-root-int", lambda: sweep.run(sweep_config, 5), "sweep.run: root"),
      ("sweep-run-wait-str", lambda: sweep.run(sweep_config, "/tmp/never", wait="no"),
       "sweep.run: wait"),
      ("sweep-status-stale-str", lambda: sweep.status(sweep_config, "/tmp/never", stale_s="x"),
       "sweep.status: stale_s"),
      ("evaluate-workdir-int", lambda: evaluate.evaluate(5), "evaluate: workdir"),
  ]


API_CASES = _api_cases()


@pytest.mark.parametrize("name,call,words", API_CASES, ids=[c[0] for c in API_CASES])
def test_the_python_api_names_the_argument_it_refuses(name, call, words):
  from lawsearch.errors import UserError  # pylint: disable=import-outside-toplevel

  with pytest.raises(UserError) as caught:
    call()
  assert words in str(caught.value) and "\n" not in str(caught.value), (name, caught.value)
