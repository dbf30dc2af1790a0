"""The Hugging Face bridge: lawsearch runs out as Llama/Mistral/Mixtral model directories, and
published ones in as lawsearch runs (`lawsearch export-hf`, `lawsearch import-hf`).

    from lawsearch.hf import export_hf, import_hf, hf_config, model_type

`hf.config` (the architecture-class choice; no JAX) is what `lawsearch.export` writes for a
search's picks; `hf.weights` maps tensors, `hf.tokenizer` the tokenizer files, `hf.bridge` holds
the two entry points (JAX, orbax, safetensors; no torch); `hf.gguf` puts llama.cpp's GGUF files
through them (`lawsearch import-hf FILE.gguf`, `lawsearch export-gguf`).
"""

from lawsearch.hf.config import HFModel, hf_config, model_type, read_hf_config


def __getattr__(name):  # the entry points import JAX: only when asked for
  if name in ("export_hf", "import_hf", "HFExport", "HFImport"):
    from lawsearch.hf import bridge  # pylint: disable=import-outside-toplevel

    return getattr(bridge, name)
  raise AttributeError(name)


__all__ = ["HFExport", "HFImport", "HFModel", "export_hf", "hf_config", "import_hf",
           "model_type", "read_hf_config"]
