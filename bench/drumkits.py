"""Recorded drum kits from Hydrogen's kit folders, played from a list of hits.

Debian's ``hydrogen-drumkits`` installs kits under ``/usr/share/hydrogen/data/drumkits``:
one folder per kit, a ``drumkit.xml`` that names the instruments and, for each, the
sample files of its velocity layers (old kits give one file per instrument). A kit is
read once into :class:`Kit`: the role of each instrument (kick, snare, closed hat, ...)
is guessed from its name, and the samples are decoded and resampled on first use.

:func:`render_hits` places the samples at their times with their velocities and a pan
per piece, so the drum stem of a benchmark song is made of real recordings. An open
hi-hat is choked by the next hat hit, as a drummer's foot does.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray
from scipy import signal

KITS_DIR = Path("/usr/share/hydrogen/data/drumkits")

TEST_KITS: tuple[str, ...] = (
    "ColomboAcousticDrumkit",
    "The Black Pearl 1.0",
    "Millo_MultiLayered3",
    "rumpf_kit_z01_h2",
)
"""Kits the sampled benchmark songs use; training never sees them."""

TRAIN_KITS: tuple[str, ...] = (
    "BJA_Pacific",
    "ForzeeStereo",
    "Audiophob",
    "VariBreaks",
    "ElectricEmpireKit",
    "HardElectro1",
)
"""Kits for training songs. The other Millo kits are left out of both lists: they may
share drums with ``Millo_MultiLayered3``; hand percussion kits have no drum set."""

ROLES: dict[str, str] = {
    "kick": r"kick|bass ?drum",
    "snare": r"^(?!.*(roll|rim)).*snare",
    "stick": r"stick|rim ?click",
    "clap": r"clap",
    "hat_closed": r"(hat|hh).*(closed|\bcl\b)|closed (hh|hat)",
    "hat_pedal": r"pedal|\bpd\b|foot",
    "hat_open": r"^(?!.*semi).*((hat|hh).*(open|\bop\b)|open (hh|hat))",
    "ride": r"ride(?!.*(bell|cup))",
    "crash": r"crash|splash|china|cymbal",
    "tom_low": r"floor|tom.*low|low tom",
    "tom_mid": r"tom.*(mid|\b2\b)|middle tom",
    "tom_high": r"tom.*(hi|high|\b1\b)|high tom|^tom$",
}
"""Role -> pattern on the lower-case instrument name; the first instrument that matches
plays the role."""

FALLBACKS: dict[str, tuple[str, ...]] = {
    "hat_pedal": ("hat_closed",),
    "hat_open": ("hat_closed",),
    "ride": ("hat_open", "hat_closed"),
    "crash": ("ride", "hat_open"),
    "stick": ("snare",),
    "clap": ("snare",),
    "tom_high": ("tom_mid", "tom_low", "snare"),
    "tom_mid": ("tom_high", "tom_low", "snare"),
    "tom_low": ("tom_mid", "tom_high", "kick"),
}

Stereo = NDArray[np.float32]


class KitMissingError(RuntimeError):
    """A Hydrogen kit is not installed."""


@dataclass(frozen=True)
class Layer:
    path: Path
    low: float
    high: float
    gain: float


@dataclass
class Instrument:
    name: str
    volume: float
    layers: list[Layer]

    def layer_for(self, velocity: float, rng: np.random.Generator) -> Layer:
        """A layer whose velocity range holds ``velocity`` (Hydrogen picks among overlaps)."""
        fits = [layer for layer in self.layers if layer.low <= velocity <= layer.high]
        if not fits:
            fits = [min(self.layers, key=lambda la: abs((la.low + la.high) / 2 - velocity))]
        return fits[int(rng.integers(len(fits)))]


@dataclass
class Kit:
    """One Hydrogen kit: its instruments by role, and a cache of decoded samples."""

    name: str
    roles: dict[str, Instrument]
    sample_rate: int
    _samples: dict[Path, Stereo] = field(default_factory=dict, repr=False)

    def sample(self, layer: Layer) -> Stereo:
        if layer.path not in self._samples:
            self._samples[layer.path] = _load_sample(layer.path, self.sample_rate)
        return self._samples[layer.path]


def _text(node: ET.Element, tag: str, default: str = "") -> str:
    child = node.find(tag)
    return (child.text or default).strip() if child is not None else default


def _strip_namespaces(root: ET.Element) -> None:
    for node in root.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]


@functools.lru_cache(maxsize=16)
def load_kit(name: str, sample_rate: int = 44100, kits_dir: Path = KITS_DIR) -> Kit:
    """Parse ``drumkit.xml`` of the kit ``name`` and assign instruments to roles."""
    folder = kits_dir / name
    xml = folder / "drumkit.xml"
    if not xml.exists():
        raise KitMissingError(
            f"Hydrogen drum kit {name!r} not found in {kits_dir}: apt install hydrogen-drumkits"
        )
    root = ET.parse(xml).getroot()
    _strip_namespaces(root)
    instruments: list[Instrument] = []
    for node in root.iter("instrument"):
        layers = []
        for layer in node.iter("layer"):
            file = _text(layer, "filename")
            if file:
                layers.append(
                    Layer(
                        folder / file,
                        float(_text(layer, "min", "0")),
                        float(_text(layer, "max", "1")),
                        float(_text(layer, "gain", "1")),
                    )
                )
        single = _text(node, "filename")
        if not layers and single:
            layers.append(Layer(folder / single, 0.0, 1.0, 1.0))
        layers = [layer for layer in layers if layer.path.exists()]
        if layers:
            volume = float(_text(node, "volume", "1")) * float(_text(node, "gain", "1"))
            instruments.append(Instrument(_text(node, "name"), volume, layers))
    roles: dict[str, Instrument] = {}
    for role, pattern in ROLES.items():
        for instrument in instruments:
            if re.search(pattern, instrument.name.lower()):
                roles[role] = instrument
                break
    for role, options in FALLBACKS.items():
        if role not in roles:
            for option in options:
                if option in roles:
                    roles[role] = roles[option]
                    break
    missing = {"kick", "snare", "hat_closed"} - set(roles)
    if missing:
        raise ValueError(f"kit {name!r} has no {sorted(missing)}")
    return Kit(name, roles, sample_rate)


def _load_sample(path: Path, sample_rate: int) -> Stereo:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = data.T
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    audio = audio[:2]
    if rate != sample_rate:
        g = gcd(int(rate), sample_rate)
        audio = signal.resample_poly(audio, sample_rate // g, int(rate) // g, axis=1)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    return np.ascontiguousarray(audio, dtype=np.float32)


@dataclass(frozen=True)
class Hit:
    time: float
    role: str
    velocity: float
    """0..1, as in Hydrogen: picks the layer and scales the sample."""


def _pan_gains(pan: float) -> tuple[float, float]:
    angle = (float(np.clip(pan, -1.0, 1.0)) + 1.0) * np.pi / 4.0
    return float(np.cos(angle) * np.sqrt(2.0)), float(np.sin(angle) * np.sqrt(2.0))


def render_hits(
    kit: Kit,
    hits: list[Hit],
    samples: int,
    pans: dict[str, float],
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """The drum track: every hit's sample at its time, (2, samples)."""
    out = np.zeros((2, samples), dtype=np.float64)
    sr = kit.sample_rate
    hats = sorted(h.time for h in hits if h.role.startswith("hat"))
    for hit in hits:
        instrument = kit.roles.get(hit.role)
        if instrument is None:
            continue
        layer = instrument.layer_for(hit.velocity, rng)
        sound = kit.sample(layer).astype(np.float64)
        if hit.role == "hat_open":
            later = [t for t in hats if t > hit.time + 0.02]
            if later:
                keep = max(1, round((later[0] - hit.time) * sr))
                if keep < sound.shape[1]:
                    sound = sound[:, : keep + round(0.03 * sr)].copy()
                    fade = min(round(0.03 * sr), sound.shape[1])
                    sound[:, -fade:] *= np.linspace(1.0, 0.0, fade)
        start = round(hit.time * sr)
        if start >= samples or start + sound.shape[1] <= 0:
            continue
        lo, hi = max(0, -start), min(sound.shape[1], samples - start)
        left, right = _pan_gains(pans.get(hit.role, 0.0))
        gain = hit.velocity * layer.gain * instrument.volume
        out[0, start + lo : start + hi] += gain * left * sound[0, lo:hi]
        out[1, start + lo : start + hi] += gain * right * sound[1, lo:hi]
    return out


__all__ = [
    "KITS_DIR",
    "ROLES",
    "TEST_KITS",
    "TRAIN_KITS",
    "Hit",
    "Kit",
    "KitMissingError",
    "load_kit",
    "render_hits",
]
