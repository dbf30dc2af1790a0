"""`lawsearch demo`: the paper's architectures, their arithmetic and their roofline throughput."""

from lawsearch import arch, cost

PAPER_MODELS = ("llama3.2-1b", "panda-1b", "surefire-1b", "llama3.2-3b", "panda-3b",
                "surefire-3b", "panda-3b-o")


def run(hardware: str = "a100-40gb", batch: int = 64) -> None:
  hw = cost.hardware(hardware)
  print(f"The paper's models: shape, parameter arithmetic and roofline throughput on {hw.name} "
        f"(batch {batch}, 4096 in / 1024 out)\n")
  header = (f"{'model':<12} {'d':>5} {'f':>5} {'L':>3} {'heads':>5} {'kv':>3} {'gqa':>3} "
            f"{'N (M)':>7} {'r':>5} {'d/sqrtN':>7} {'KV KiB/tok':>10} {'tok/s':>8}")
  print(header)
  print("-" * len(header))
  for name in PAPER_MODELS:
    s = arch.preset(name)
    t = cost.roofline_throughput(s, hw, batch)
    rate = f"{t.output_tokens_per_s:8.0f}" if t.fits else f"OOM>{t.max_batch:<4}"
    print(f"{name:<12} {s.d_model:>5} {s.ffn_dim:>5} {s.n_layers:>3} {s.n_heads:>5} "
          f"{s.n_kv_heads:>3} {s.gqa:>3} {s.non_embedding_params / 1e6:>7.1f} "
          f"{s.mlp_attn_ratio:>5.2f} {s.d_over_sqrt_n:>7.3f} "
          f"{cost.kv_cache_bytes_per_token(s) / 1024:>10.0f} {rate:>8}")
