"""A run's tokenizer as the files `transformers.AutoTokenizer.from_pretrained(DIR)` loads.

Exportable kinds (lawsearch.data.tokenizer): a tokenizers JSON file (the BPE trained here, or a
user's tokenizer.json) is copied as tokenizer.json; "bytes" is written as an equivalent tokenizers
JSON (a byte-level BPE with no merges: id b is byte b, 256 is "<|endoftext|>"). Both get a
tokenizer_config.json naming PreTrainedTokenizerFast, which adds no special tokens, so
`AutoTokenizer(...)(text).input_ids` equals lawsearch's `encode(text)`. tiktoken and sentencepiece
files are refused with a UserError (no converter here).
"""

from __future__ import annotations

import json
import os
import shutil

from lawsearch.data import tokenizer as tokenizer_lib
from lawsearch.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _byte_tokenizer_json() -> str:
  """tokenizers JSON encoding like lawsearch's ByteTokenizer: id b for byte b, EOT at 256."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers

  tok = Tokenizer(models.BPE(vocab=_bytes_to_unicode(), merges=[]))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens([tokenizer_lib.EOT])
  return tok.to_str()


def _bytes_to_unicode() -> dict[str, int]:
  """GPT-2's byte-level alphabet (tokenizers' ByteLevel): character -> the byte it stands for."""
  keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
          *range(ord("®"), ord("ÿ") + 1)]
  extra = [b for b in range(256) if b not in keep]
  return {**{chr(b): b for b in keep}, **{chr(256 + n): b for n, b in enumerate(extra)}}


def write_tokenizer(tok: tokenizer_lib.Tokenizer, out_dir: str, max_length: int) -> list[str]:
  """Writes tokenizer.json and tokenizer_config.json for `tok` under out_dir; returns the paths."""
  path = os.path.join(out_dir, "tokenizer.json")
  if isinstance(tok, tokenizer_lib.HFTokenizer):
    shutil.copyfile(tok.name, path)
  elif isinstance(tok, tokenizer_lib.ByteTokenizer):
    with open(path, "w") as f:
      f.write(_byte_tokenizer_json())
  else:
    raise UserError(f"the run's tokenizer {tok.name} is a {type(tok).__name__}; only tokenizers "
                    "JSON files (lawsearch's BPE) and 'bytes' export as tokenizer.json. Export "
                    "with --no-tokenizer and convert it with transformers' own converters")
  from tokenizers import Tokenizer  # pylint: disable=import-outside-toplevel

  eos = Tokenizer.from_file(path).id_to_token(tok.eos_id)
  config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos, "pad_token": eos,
            "model_max_length": max_length, "clean_up_tokenization_spaces": False}
  config_path = os.path.join(out_dir, "tokenizer_config.json")
  with open(config_path, "w") as f:
    json.dump(config, f, indent=2)
  return [path, config_path]


def copy_tokenizer(src_dir: str, out_dir: str) -> str | None:
  """Copies a model directory's tokenizer (tokenizer.json, else tokenizer.model) into out_dir;
  returns the copy's path (what data.tokenizer names), or None when it has neither."""
  for name in ("tokenizer.json", "tokenizer.model"):
    if os.path.isfile(os.path.join(src_dir, name)):
      dest = os.path.join(out_dir, name)
      shutil.copyfile(os.path.join(src_dir, name), dest)
      tokenizer_lib.load_tokenizer(dest)  # readable, with an end-of-text token
      return dest
  return None
