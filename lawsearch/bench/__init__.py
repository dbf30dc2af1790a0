"""Decode-throughput benchmark in the paper's protocol, with achieved memory bandwidth (MBU).

    lawsearch.bench.throughput    BenchConfig, run: the measurement (imports jax and flax)
    lawsearch.bench.calibration   efficiency factors for lawsearch.cost (light: json and cost only)
"""
