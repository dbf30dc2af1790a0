"""Decode-throughput benchmark in the paper's protocol, with achieved memory bandwidth (MBU).

    from lawsearch.bench import BenchConfig, run
"""

from lawsearch.bench.throughput import (BenchConfig, calibrate, decode_bytes, detect_hardware,
                                        load_efficiency, run, run_batch, save_efficiency)

__all__ = ["BenchConfig", "calibrate", "decode_bytes", "detect_hardware", "load_efficiency", "run",
           "run_batch", "save_efficiency"]
