"""Where HT-Demucs weights are on this machine, found without importing torch.

The hub asks "is demucs usable?" every time it picks a backend, so this module only
looks at files: a model folder (``STEMHUB_DEMUCS_REPO``, or the folder ``stemhub models
pull`` fills), then the caches a previous ``demucs`` run filled: the Hugging Face hub
cache (demucs 4.1 and later) and the torch hub cache (earlier releases). Nothing here
ever downloads; loading the files is the worker's job.

A model folder follows demucs' own layout, so a folder made for ``demucs --repo`` works
as is: a bag of models ``{name}.yaml`` (``models: [sig, ...]``, optional ``weights`` and
``segment``) whose members are ``{sig}.th`` or ``{sig}-{checksum}.th`` (torch packages
from ``demucs.states``) or ``{sig}.safetensors`` (the Hugging Face export), or a single
model ``{name}.th`` / ``{name}.safetensors``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "htdemucs"
SIX_STEM_MODEL = "htdemucs_6s"
HF_NAMESPACE = "adefossez"
INSTALL_HINT = "pip install 'stemhub[demucs]'"
KNOWN_MODELS = (
    "htdemucs",
    "htdemucs_ft",
    "htdemucs_6s",
    "hdemucs_mmi",
    "mdx",
    "mdx_extra",
    "mdx_q",
    "mdx_extra_q",
)


@dataclass(frozen=True)
class ModelFiles:
    """One model (or bag of models) found on disk, ready for the worker to load."""

    name: str
    where: str
    members: tuple[Path, ...]
    weights: tuple[tuple[float, ...], ...] | None = None
    segment: float | None = None
    bag: bool = True

    @property
    def folder(self) -> Path:
        return self.members[0].parent

    def describe(self) -> str:
        return f"{self.name} in {self.where} ({self.folder})"


class WeightsError(Exception):
    """A model file exists but cannot be read (a damaged or foreign yaml)."""


def hf_repo_id(name: str) -> str:
    """The Hugging Face repository demucs publishes a model under."""
    if name == "htdemucs":
        repo = "HTDemucs"
    elif name.startswith("htdemucs_"):
        repo = "HTDemucs-" + name.removeprefix("htdemucs_")
    else:
        repo = "Demucs-" + name
    return f"{HF_NAMESPACE}/{repo}"


def missing_packages() -> list[str]:
    """The packages of the ``demucs`` extra that are not installed."""
    return [name for name in ("torch", "demucs") if importlib.util.find_spec(name) is None]


def load_yaml(path: Path) -> dict[str, Any]:
    """A bag description; PyYAML comes with demucs (``pull`` asks for it when absent)."""
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError as exc:
        raise WeightsError(f"reading {path} needs PyYAML, which {INSTALL_HINT} installs") from exc
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise WeightsError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise WeightsError(f"{path} does not list its models")
    return data


def _bag_fields(data: dict[str, Any]) -> tuple[tuple[tuple[float, ...], ...] | None, float | None]:
    weights = data.get("weights")
    segment = data.get("segment")
    return (
        tuple(tuple(float(w) for w in row) for row in weights) if weights else None,
        float(segment) if segment is not None else None,
    )


def _member(folder: Path, sig: str) -> Path | None:
    for candidate in (folder / f"{sig}.th", folder / f"{sig}.safetensors"):
        if candidate.is_file():
            return candidate
    signed = sorted(folder.glob(f"{sig}-*.th"))
    return signed[0] if signed else None


def find_in_folder(folder: Path, name: str, where: str) -> ModelFiles | None:
    """The model ``name`` in a demucs-layout folder, or None when any file is missing."""
    if not folder.is_dir():
        return None
    bag = folder / f"{name}.yaml"
    if bag.is_file():
        data = load_yaml(bag)
        members = [_member(folder, str(sig)) for sig in data["models"]]
        if any(m is None for m in members):
            return None
        weights, segment = _bag_fields(data)
        paths = tuple(m for m in members if m is not None)
        return ModelFiles(name, where, paths, weights, segment)
    single = _member(folder, name)
    if single is None:
        return None
    return ModelFiles(name, where, (single,), bag=False)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as ``huggingface_hub`` resolves it."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return cache / "huggingface" / "hub"


def torch_hub_dir() -> Path:
    """The torch hub folder, as ``torch.hub.get_dir()`` resolves it."""
    cache = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(home).expanduser() / "hub"


def find_in_hf_cache(name: str) -> ModelFiles | None:
    """A model a ``demucs`` 4.1+ run downloaded into the Hugging Face cache."""
    repo = hf_repo_id(name)
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    ref = root / "refs" / "main"
    if not ref.is_file():
        return None
    snapshot = root / "snapshots" / ref.read_text().strip()
    return find_in_folder(snapshot, name, "the Hugging Face cache")


def _demucs_remote_dir() -> Path | None:
    spec = importlib.util.find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "remote"


def find_in_torch_cache(name: str) -> ModelFiles | None:
    """A model an older ``demucs`` run downloaded into the torch hub cache."""
    remote = _demucs_remote_dir()
    if remote is None or not (remote / f"{name}.yaml").is_file():
        return None
    files: dict[str, str] = {}
    for line in (remote / "files.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "root:")):
            files[line.split("-", 1)[0]] = line
    data = load_yaml(remote / f"{name}.yaml")
    checkpoints = torch_hub_dir() / "checkpoints"
    members: list[Path] = []
    for sig in data["models"]:
        filename = files.get(str(sig))
        if filename is None or not (checkpoints / filename).is_file():
            return None
        members.append(checkpoints / filename)
    weights, segment = _bag_fields(data)
    return ModelFiles(name, "the torch hub cache", tuple(members), weights, segment)


def locate(name: str, folders: list[tuple[Path, str]]) -> ModelFiles | None:
    """The first complete copy of ``name``: the given folders in order, then the caches."""
    for folder, where in folders:
        found = find_in_folder(folder, name, where)
        if found is not None:
            return found
    return find_in_hf_cache(name) or find_in_torch_cache(name)


__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "KNOWN_MODELS",
    "SIX_STEM_MODEL",
    "ModelFiles",
    "WeightsError",
    "find_in_folder",
    "hf_repo_id",
    "locate",
    "missing_packages",
]
