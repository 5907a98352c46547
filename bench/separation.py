"""Separation quality and speed of the local engine against classical baselines.

    uv sync --all-packages --group bench
    uv run --group bench python -m bench.separation            # full run (about an hour on 2 cores)
    uv run --group bench python -m bench.separation --quick    # 4 songs a set, no long inputs
    uv run --group bench python -m bench.separation --set sampled --no-long

Two sets of songs with true stems, 40-60 s each: ``synthetic`` (:mod:`bench.songs`, ten
songs from the synthesizer the engine's model was trained on) and ``sampled``
(:mod:`bench.sampled_songs`, nine songs played by a General MIDI sound font and recorded
drum kits that training never uses: the out-of-distribution test). For every song it
runs, in one process and one run: the mixture as estimate, REPET-SIM (vocals), HPSS
(drums), a low-pass and a low-passed HPSS-harmonic part (bass), REPET/HPSS/high-pass
"other", our engine (and, with ``--before-weights FILE``, the engine on another model,
say the one before a retraining), and the ideal ratio mask (oracle). It reports per stem:

- museval SDR (BSS Eval v4): median over 1 s frames per song, then median over songs
  (the SiSEC/MUSDB18 convention),
- whole-clip SDR from fast-bss-eval (512-tap distortion filter), median over songs,
- the real-time factor (processing time / audio duration) of each method,
- the margin of the engine over the best classical method per stem, and the songs where
  the engine trails the best classical method on that song.

Per-song figures go to ``bench/data/separation_results.json`` (synthetic) and
``bench/data/separation_results_sampled.json``.

Then it runs the engine on a 3-minute and a 10-minute stereo 44.1 kHz file in a fresh
subprocess each (decode, separate into four stems, write four WAVs), and reports the
real-time factor and the peak resident memory of that process.

museval's package imports musdb and stempeg, which want the ffmpeg binary; only its
``metrics`` module is needed here, so it is loaded on its own when ffmpeg is missing.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bench import baselines
from bench.sampled_songs import SAMPLED_SONGS, check_sources, load_sampled_song
from bench.songs import DATA_DIR, SONGS, load_song, long_mix_file

if TYPE_CHECKING:
    from stemhub.backends.local.engine import Engine

STEMS = ("vocals", "drums", "bass", "other")
METHODS = (
    "mixture",
    "repet_sim",
    "hpss",
    "lowpass",
    "lowpass_harmonic",
    "classical_other",
    "engine_before",
    "engine_fast",
    "engine",
    "oracle",
)
CLASSICAL = ("repet_sim", "hpss", "lowpass", "lowpass_harmonic", "classical_other")
LABELS = {
    "mixture": "mixture as estimate",
    "repet_sim": "REPET-SIM (vocals)",
    "hpss": "HPSS (drums)",
    "lowpass": "low-pass 150 Hz (bass)",
    "lowpass_harmonic": "HPSS harmonic, low-passed 150 Hz (bass)",
    "classical_other": "REPET x HPSS x high-pass (other)",
    "best_classical": "best classical, per stem",
    "engine_before": "stemhub local engine before (`--before-weights`), BALANCED",
    "engine_fast": "stemhub local engine, FAST (masks only)",
    "engine": "**stemhub local engine** (BALANCED)",
    "oracle": "oracle ideal ratio mask",
}


class SongSpec(Protocol):
    @property
    def bpm(self) -> float: ...

    @property
    def key_name(self) -> str: ...


class Song(Protocol):
    """What the benchmark reads of a song of either set."""

    @property
    def spec(self) -> SongSpec: ...

    @property
    def stems(self) -> dict[str, np.ndarray]: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def mix(self) -> np.ndarray: ...

    @property
    def seconds(self) -> float: ...


SETS: dict[str, tuple[list[str], Callable[[str], Song]]] = {
    "synthetic": (list(SONGS), load_song),
    "sampled": (list(SAMPLED_SONGS), load_sampled_song),
}
RESULT_FILES = {
    "synthetic": "separation_results.json",
    "sampled": "separation_results_sampled.json",
}


def _museval_metrics() -> ModuleType:
    try:
        import museval.metrics

        return museval.metrics
    except (ImportError, RuntimeError):
        path = Path(sysconfig.get_paths()["purelib"]) / "museval" / "metrics.py"
        spec = importlib.util.spec_from_file_location("museval_metrics", path)
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


@functools.cache
def _engine(weights: Path | None) -> Engine:
    """One engine per model file (``None``: the shipped model), built on first use."""
    from stemhub.backends.local.engine import Engine
    from stemhub.backends.local.model import MaskModel

    return Engine(MaskModel.load(weights) if weights else None, threads=2)


def _engine_separate(
    mix: np.ndarray, sr: int, *, spatial: bool, weights: Path | None = None
) -> dict[str, np.ndarray]:
    from threadpoolctl import threadpool_limits

    engine = _engine(weights)
    engine.spatial = spatial
    # one BLAS thread, as in the backend's worker processes (the engine has its own)
    with threadpool_limits(1, user_api="blas"):
        return engine.separate(mix, sr)


def run_method(
    method: str, song: Song, before_weights: Path | None = None
) -> tuple[dict[str, np.ndarray], float, float]:
    """(estimates, wall seconds, CPU seconds) of one method on one song; ``engine_before``
    runs the engine on ``before_weights``."""
    mix = song.mix
    sr = song.sample_rate
    wall, cpu = time.perf_counter(), time.process_time()
    if method == "mixture":
        out = {stem: mix for stem in STEMS}
    elif method == "repet_sim":
        out = {"vocals": baselines.repet_sim(mix, sr)["vocals"]}
    elif method == "hpss":
        out = {"drums": baselines.hpss(mix, sr)["drums"]}
    elif method == "lowpass":
        out = baselines.lowpass(mix, sr)
    elif method == "lowpass_harmonic":
        out = baselines.lowpass_harmonic(mix, sr)
    elif method == "classical_other":
        out = baselines.classical_other(mix, sr)
    elif method == "engine_before":
        out = _engine_separate(mix, sr, spatial=True, weights=before_weights)
    elif method == "engine":
        out = _engine_separate(mix, sr, spatial=True)
    elif method == "engine_fast":
        out = _engine_separate(mix, sr, spatial=False)
    elif method == "oracle":
        out = baselines.oracle(song.stems, mix)
    else:
        raise ValueError(method)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def score(reference: np.ndarray, estimate: np.ndarray, sr: int) -> tuple[float, float]:
    """(museval median SDR of 1 s frames, fast-bss-eval whole-clip SDR) for one stem."""
    import fast_bss_eval

    metrics = _museval_metrics()
    ref = reference.T[None].astype(np.float64)
    est = estimate.T[None].astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdr, *_ = metrics.bss_eval(ref, est, window=sr, hop=sr)
    framewise = float(np.nanmedian(sdr[0])) if np.any(np.isfinite(sdr)) else float("nan")
    whole = float(
        fast_bss_eval.sdr(
            reference.reshape(1, -1).astype(np.float64),
            estimate.reshape(1, -1).astype(np.float64),
            clamp_db=60,
        )[0]
    )
    return framewise, whole


def _score_job(args: tuple[str, str, str, str, Path]) -> tuple[str, str, str, float, float]:
    song_set, song_name, method, stem, path = args
    song = SETS[song_set][1](song_name)
    with np.load(path) as stored:
        estimate = stored[stem]
    framewise, whole = score(song.stems[stem], estimate, song.sample_rate)
    return song_name, method, stem, framewise, whole


def evaluate(
    song_set: str,
    names: list[str],
    jobs: int,
    methods: tuple[str, ...] = METHODS,
    before_weights: Path | None = None,
) -> dict[str, Any]:
    """Separate every song with every method (timed), then score all estimates.

    Scoring starts only when every method has run, so the timings are taken on an
    otherwise idle machine; the estimates wait on disk meanwhile.
    """
    results: dict[str, Any] = {"songs": {}, "rtf": {m: [] for m in methods}, "analysis": {}}
    work = []
    with tempfile.TemporaryDirectory(prefix="stemhub-bench-") as tmp:
        for name in names:
            song = SETS[song_set][1](name)
            for method in methods:
                estimates, wall, cpu = run_method(method, song, before_weights)
                results["rtf"][method].append((wall / song.seconds, cpu / song.seconds))
                path = Path(tmp) / f"{name}.{method}.npz"
                np.savez(path, **{k: v.astype(np.float32) for k, v in estimates.items()})
                work.extend((song_set, name, method, stem, path) for stem in estimates)
            results["analysis"][name] = analysis_check(song)
            print(f"separated {name} ({song.seconds:.0f} s)", flush=True)
        with ProcessPoolExecutor(jobs) as pool:
            for name, method, stem, framewise, whole in pool.map(_score_job, work, chunksize=1):
                song_scores = results["songs"].setdefault(name, {}).setdefault(method, {})
                song_scores[stem] = (framewise, whole)
    return results


def analysis_check(song: Song) -> dict[str, Any]:
    """BPM and key the engine reports for a song, next to the truth."""
    from stemhub.backends.local.analysis import analyse

    bpm, key = analyse(song.mix, song.sample_rate)
    return {"bpm": bpm, "true_bpm": song.spec.bpm, "key": key, "true_key": song.spec.key_name}


def summarise(results: dict[str, Any]) -> dict[str, dict[str, tuple[float, float]]]:
    """method -> stem -> (median museval SDR, median whole-clip SDR) over songs."""
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for method in METHODS:
        for stem in STEMS:
            values = [
                scores[method][stem]
                for scores in results["songs"].values()
                if stem in scores.get(method, {})
            ]
            if values:
                arr = np.asarray(values)
                table.setdefault(method, {})[stem] = (
                    float(np.nanmedian(arr[:, 0])),
                    float(np.nanmedian(arr[:, 1])),
                )
    best: dict[str, tuple[float, float]] = {}
    for stem in STEMS:
        candidates = [table[m][stem] for m in (*CLASSICAL, "mixture") if stem in table.get(m, {})]
        if not candidates:
            continue
        best[stem] = (max(c[0] for c in candidates), max(c[1] for c in candidates))
    if best:
        table["best_classical"] = best
    return table


def trailing(results: dict[str, Any]) -> str:
    """Per stem, the songs where the engine (museval) is below the best classical method
    for that song, and its smallest per-song margin."""
    parts = []
    for stem in STEMS:
        margins = []
        for scores in results["songs"].values():
            classical = [scores[m][stem][0] for m in CLASSICAL if stem in scores.get(m, {})]
            if classical and stem in scores.get("engine", {}):
                margins.append(scores["engine"][stem][0] - max(classical))
        if margins:
            below = sum(m < 0 for m in margins)
            parts.append(f"{stem} {below}/{len(margins)} (worst {min(margins):+.2f} dB)")
    return ", ".join(parts)


def markdown(table: dict[str, dict[str, tuple[float, float]]], rtf: dict[str, Any]) -> str:
    head = "| method | " + " | ".join(STEMS) + " | RTF (wall) |"
    lines = [head, "|" + "---|" * (len(STEMS) + 2)]
    order = [
        "mixture",
        *CLASSICAL,
        "best_classical",
        "engine_before",
        "engine_fast",
        "engine",
        "oracle",
    ]
    for method in (m for m in order if m in table):
        cells = []
        for stem in STEMS:
            if stem in table.get(method, {}):
                framewise, whole = table[method][stem]
                cells.append(f"{framewise:.2f} ({whole:.2f})")
            else:
                cells.append("")
        speed = ""
        if rtf.get(method):
            speed = f"{np.median([r[0] for r in rtf[method]]):.3f}"
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + f" | {speed} |")
    return "\n".join(lines)


def long_run(path: Path) -> dict[str, float]:
    """Run the engine on ``path`` as the backend's worker does, in this process."""
    from stemhub import media
    from stemhub.backends.local import worker
    from stemhub.models import OutputFormat

    worker.limit_blas_threads()  # as in the backend's worker processes
    info = media.probe(path)
    with tempfile.TemporaryDirectory() as tmp:
        control = worker.Control(Path(tmp) / "control", create=True)
        order = worker.WorkOrder(
            input_path=path,
            out_dir=Path(tmp) / "stems",
            stems=STEMS,
            output_format=OutputFormat.WAV,
            control_path=control.path,
            threads=2,
            analysis=True,
        )
        wall, cpu = time.perf_counter(), time.process_time()
        report = worker.run(order)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        control.remove()
    if report.error or report.cancelled:
        raise RuntimeError(f"engine failed: {report}")
    duration = float(info.duration_s or 0.0)
    return {
        "duration_s": duration,
        "wall_s": wall,
        "cpu_s": cpu,
        "rtf": wall / duration,
        "peak_rss_mb": peak_rss_mb(),
        "bpm": report.bpm or 0.0,
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    On Linux ``ru_maxrss`` survives ``execve``, so a child started from a big parent
    would report the parent's peak; ``VmHWM`` belongs to the new program alone.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def long_runs(minutes: list[float]) -> dict[str, dict[str, float]]:
    out = {}
    for value in minutes:
        path = long_mix_file(value)
        proc = subprocess.run(
            [sys.executable, "-m", "bench.separation", "--long-run", str(path)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        out[f"{value:g} min"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Separation benchmark of the local engine.")
    parser.add_argument("--quick", action="store_true", help="4 songs a set, no long inputs")
    parser.add_argument(
        "--set",
        choices=("synthetic", "sampled", "both"),
        default="both",
        help="which song set (default both)",
    )
    parser.add_argument("--songs", type=int, default=None, help="use the first N songs")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated subset of the methods (default all), e.g. engine_fast,engine",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes for the metrics")
    parser.add_argument("--no-long", action="store_true", help="skip the 3 and 10 min runs")
    parser.add_argument("--long-only", action="store_true", help="only the 3 and 10 min runs")
    parser.add_argument("--long-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--before-weights",
        type=Path,
        help="another weights file: adds its engine (BALANCED) as the 'before' row",
    )
    args = parser.parse_args()
    if args.long_run:
        print(json.dumps(long_run(args.long_run)))
        return
    if args.long_only:
        for label, figures in long_runs([3.0, 10.0]).items():
            print(f"engine on {label}: {json.dumps(figures)}")
        return
    chosen = list(SETS) if args.set == "both" else [args.set]
    # the "before" engine runs only with a model file to run it on
    full = tuple(m for m in METHODS if args.before_weights or m != "engine_before")
    methods = tuple(m for m in full if m in args.methods.split(","))
    if "sampled" in chosen:
        check_sources()  # before the synthetic set runs, not after
    written = {}
    for song_set in chosen:
        names = SETS[song_set][0][: 4 if args.quick else args.songs]
        results, table = run_set(song_set, names, args.jobs, methods, args.before_weights)
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path = DATA_DIR / RESULT_FILES[song_set]
        if methods != full:  # a partial run never replaces the full results
            path = path.with_suffix(f".{'+'.join(methods)}.json")
        written[song_set] = (path, {"table": table, **results})
        written[song_set][0].write_text(json.dumps(written[song_set][1], indent=1))
    long = {} if args.quick or args.no_long else long_runs([3.0, 10.0])
    for label, figures in long.items():
        print(
            f"engine on {label}: RTF {figures['rtf']:.3f} (wall {figures['wall_s']:.1f} s, "
            f"CPU {figures['cpu_s']:.1f} s), peak RSS {figures['peak_rss_mb']:.0f} MB"
        )
    print()
    for path, content in written.values():
        path.write_text(json.dumps({**content, "long": long}, indent=1))
        print(f"full results: {path}")


def run_set(
    song_set: str,
    names: list[str],
    jobs: int,
    methods: tuple[str, ...] = METHODS,
    before_weights: Path | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, tuple[float, float]]]]:
    """Evaluate one set and print its table, margins and analysis check."""
    print(f"\n{song_set} set: {len(names)} songs, {os.cpu_count()} CPUs", flush=True)
    results = evaluate(song_set, names, jobs, methods, before_weights)
    table = summarise(results)
    print()
    print(f"{song_set} set. SDR in dB: museval median of 1 s frames (fast-bss-eval whole clip);")
    print("median of songs")
    print(markdown(table, results["rtf"]))
    print()
    if "engine" in table and "best_classical" in table:
        verdicts = []
        for stem in (s for s in STEMS if s in table["best_classical"]):
            margin = table["engine"][stem][0] - table["best_classical"][stem][0]
            verdicts.append(f"{stem} {margin:+.2f} dB")
        print(f"{song_set}: engine minus best classical (museval):", ", ".join(verdicts))
        print(f"{song_set}: songs where the engine trails a classical method:", trailing(results))
    checks = results["analysis"].values()
    tempo_ok = sum(abs(c["bpm"] - c["true_bpm"]) <= 1.5 for c in checks if c["bpm"])
    octave = sum(
        abs(c["bpm"] * f - c["true_bpm"]) <= 1.5 for c in checks if c["bpm"] for f in (0.5, 2.0)
    )
    keys_ok = sum(c["key"] == c["true_key"] for c in checks)
    print(
        f"{song_set}: BPM within 1.5 in {tempo_ok}/{len(checks)} songs "
        f"(half/double in {octave}), key right in {keys_ok}/{len(checks)}",
        flush=True,
    )
    return results, table


if __name__ == "__main__":
    main()
