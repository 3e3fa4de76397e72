"""Model loading: find a checkpoint, read its config, weights and tokenizer.

Pure Python and numpy (plus the safetensors, gguf and tokenizers packages); nothing here imports
pyengine's native extension. Model builders call `load_weights`.

    registry.py            short names -> pip package + file inside it; resolve()
    config.py              ModelConfig, from HF config.json or GGUF metadata (each family's
                           module in pyengine.models reads its own keys and names its tensors)
    schema.py              check_tensors() against the family's tensors
    tensors.py             TensorMap: lazy name -> float32 array
    safetensors_folder.py  HF folders (single file or shards + index)
    gguf_file.py           .gguf files: dequantize, rename, undo the Q/K permutation
    gguf_tokenizer.py      tokenizers.Tokenizer rebuilt from GGUF metadata
    load.py                load_weights()
"""

from .config import ModelConfig, RopeScaling, config_from_gguf, config_from_hf, load_hf_config
from .errors import (
    CheckpointError,
    LoaderError,
    ModelNotFoundError,
    ModelNotInstalledError,
    UnsupportedModelError,
)
from .gguf_file import load_gguf, permute_qk, unpermute_qk
from .load import LoadedWeights, load_weights
from .registry import REGISTRY, RegistryEntry, resolve
from .safetensors_folder import load_safetensors_folder
from .schema import check_tensors, expected_tensors
from .tensors import TensorMap

__all__ = [
    "REGISTRY",
    "CheckpointError",
    "LoadedWeights",
    "LoaderError",
    "ModelConfig",
    "ModelNotFoundError",
    "ModelNotInstalledError",
    "RegistryEntry",
    "RopeScaling",
    "TensorMap",
    "UnsupportedModelError",
    "check_tensors",
    "config_from_gguf",
    "config_from_hf",
    "expected_tensors",
    "load_gguf",
    "load_hf_config",
    "load_safetensors_folder",
    "load_weights",
    "permute_qk",
    "resolve",
    "unpermute_qk",
]
