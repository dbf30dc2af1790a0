"""`lawsearch export-hf`, `import-hf`, `export-gguf` and `bench`: models in and out, and measured."""

from __future__ import annotations

import json
import os

from lawsearch import inputs
from lawsearch.commands.args import (ATTENTION_IMPLS, DTYPES, UsageError, add_spec_flags,
                                     int_at_least, specs_from_args)


# -- export-hf, import-hf -----------------------------------------------------------------------
def _run_export_hf(args) -> None:
  from lawsearch.hf import bridge

  print(bridge.export_hf(args.workdir, args.out, args.step,
                         tokenizer=not args.no_tokenizer).summary())


def _add_export_hf(sub) -> None:
  p = sub.add_parser("export-hf", help="a run's checkpoint as a Hugging Face model directory "
                     "(safetensors, config.json, tokenizer)")
  p.add_argument("--workdir", required=True, help="the run directory (its config.json)")
  p.add_argument("--out", required=True, help="the directory to write")
  p.add_argument("--step", type=int_at_least(0), help="checkpoint step (default: the newest)")
  p.add_argument("--no-tokenizer", action="store_true",
                 help="weights and config only (runs on synthetic tokens; tiktoken or "
                      "sentencepiece tokenizers)")
  p.set_defaults(run=_run_export_hf)


def _run_import_hf(args) -> None:
  if os.path.isfile(args.source):  # a directory is Hugging Face's layout, a file GGUF
    from lawsearch.hf import gguf

    print(gguf.import_gguf(args.source, args.workdir).summary())
  else:
    from lawsearch.hf import bridge

    print(bridge.import_hf(args.source, args.workdir).summary())


def _add_import_hf(sub) -> None:
  p = sub.add_parser("import-hf", help="a local Llama/Mistral model directory (config.json, "
                     "safetensors) or a LLaMA GGUF file as a lawsearch run directory")
  p.add_argument("source", help="the model directory (as save_pretrained writes it), or a .gguf "
                 "file (llama.cpp's format; dequantised)")
  p.add_argument("--workdir", required=True, help="the run directory to create")
  p.set_defaults(run=_run_import_hf)


# -- GGUF: import-hf FILE.gguf, export-gguf ------------------------------------------------------
def _run_export_gguf(args) -> None:
  from lawsearch.hf import gguf

  print(gguf.export_gguf(args.workdir, args.out, args.type, args.step,
                         tokenizer=not args.no_tokenizer).summary())


def _add_export_gguf(sub) -> None:
  p = sub.add_parser("export-gguf", help="a run's checkpoint as a GGUF file (llama.cpp, Ollama)")
  p.add_argument("workdir", help="the run directory (its config.json)")
  p.add_argument("out", help="the .gguf file to write")
  p.add_argument("--type", choices=("f32", "f16", "q8_0"), default="f32",
                 help="matrices as float32, float16 or Q8_0 (norms stay float32)")
  p.add_argument("--step", type=int_at_least(0), help="checkpoint step (default: the newest)")
  p.add_argument("--no-tokenizer", action="store_true",
                 help="no vocabulary (runs on synthetic tokens, or tokenizers other than a "
                      "byte-level BPE): llama.cpp then runs on token ids")
  p.set_defaults(run=_run_export_gguf)


# -- bench ---------------------------------------------------------------------------------------
def _run_bench(args) -> None:
  from lawsearch.bench import calibration, throughput

  for flag, path in (("--out", args.out), ("--calibrate", args.calibrate)):
    if path:
      inputs.output_file(path, flag)
  result = throughput.measure(
      specs_from_args(args), args.hardware, batch_sizes=args.batch,
      input_len=args.input_len, output_len=args.output_len, trials=args.trials,
      warmup=args.warmup, dtype=args.dtype, decode_impl=args.decode_impl,
      attention_impl=args.attention_impl, prefill_batch=args.prefill_batch, seed=args.seed)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result.records, f, indent=1)
  print(result.summary())
  if args.calibrate:
    if result.hardware is None:
      raise UsageError("--calibrate needs a known chip; pass --hardware (see `lawsearch cost`)")
    eff = calibration.calibrate(result.records)
    calibration.save_efficiency(args.calibrate, result.hardware.name, eff)
    print(f"calibration for {result.hardware.name}: compute {eff.compute:.3f}, memory "
          f"{eff.memory:.3f} -> {args.calibrate}")


def _add_bench(sub) -> None:
  p = sub.add_parser("bench", help="measure generation throughput in the paper's protocol")
  add_spec_flags(p)
  p.add_argument("--batch", type=int_at_least(1), nargs="+",
                 help="batch sizes (default 1 8 32 64; CPU: 1 4)")
  p.add_argument("--input-len", type=int_at_least(1),
                 help="prompt tokens (default 4096; CPU: 128)")
  p.add_argument("--output-len", type=int_at_least(1),
                 help="generated tokens (default 1024; CPU: 32)")
  p.add_argument("--trials", type=int_at_least(1), default=5)
  p.add_argument("--warmup", type=int_at_least(0), default=1)
  p.add_argument("--dtype", choices=DTYPES, default="auto",
                 help="auto: bfloat16 (CPU: float32)")
  p.add_argument("--decode-impl", choices=("xla", "pallas"), help="default pallas (CPU: xla)")
  p.add_argument("--attention-impl", choices=ATTENTION_IMPLS, default="auto",
                 help="prefill attention: auto (grouped on CPU, cudnn on GPU in 16 bits, else "
                      "xla) | xla | cudnn (NVIDIA GPUs, 16-bit dtypes) | grouped")
  p.add_argument("--prefill-batch", type=int_at_least(1), default=16,
                 help="prompts prefilled together")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--hardware", help="chip in lawsearch.cost (default: detected)")
  p.add_argument("--out", help="write the records as JSON here")
  p.add_argument("--calibrate", metavar="FILE",
                 help="store efficiency factors for `lawsearch cost --calibration FILE`")
  p.set_defaults(run=_run_bench)


def add_parsers(sub) -> None:
  """This module's subcommands, in `lawsearch --help` order."""
  for add in (_add_export_hf, _add_import_hf, _add_export_gguf, _add_bench):
    add(sub)
