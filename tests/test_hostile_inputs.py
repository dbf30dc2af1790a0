"""Hostile and mistaken input across every subcommand: each case must exit with status 2, print
exactly one line on stderr that names the offending argument or file, show no traceback, and
leave every file the user already had unchanged."""

import hashlib
import json
import os

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


def _snapshot(root) -> dict:
  """Relative path -> SHA-256 of every file under root."""
  paths = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]
  return {os.path.relpath(p, root): hashlib.sha256(open(p, "rb").read()).hexdigest()
          for p in paths}


def test_there_are_enough_cases():
  assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,argv,names", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_exit_2(name, argv, names, files, capsys, monkeypatch):
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
