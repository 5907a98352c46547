"""``stemhub split`` end to end on 3- and 10-minute MP3s, beside the engine's own figure.

    nice -n 10 uv run --all-packages --group bench python -m bench.split_e2e
    nice -n 10 uv run --all-packages --group bench python -m bench.split_e2e --minutes 3

For each length it makes (and caches under ``bench/data``) a 320 kbps MP3 of the
benchmark's long mix, then runs, each in a fresh process:

- ``engine``: the local engine's worker on that MP3 in one process (decode, separate
  into four stems, write four WAVs), as ``bench.separation --long-run`` measures it;
- ``stemhub split``: the command a user types (start-up, store, hub, worker pool,
  probe, decode, separate, encode, write), with a warm bytecode cache.

It prints wall and CPU time, the real-time factor (wall / audio duration) and peak
memory. For ``stemhub split`` the memory is sampled every 50 ms over the whole process
tree (the command, the forkserver, the worker): the sum of RSS (shared pages counted in
every process, what a naive monitor shows) and the sum of PSS (shared pages split between
the processes that share them: what the tree really costs); CPU is the sum over every
process of the tree (psutil, last sample of each process plus the children reaped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.songs import DATA_DIR, long_mix_file

REPO = Path(__file__).resolve().parent.parent
STEMHUB = str(Path(sys.executable).with_name("stemhub"))
TARGET_RTF = 0.1
TARGET_TREE_MB = 1024.0


def mp3_of(minutes: float) -> Path:
    """The long mix as a 320 kbps MP3 (cached)."""
    from stemhub import media
    from stemhub.models import OutputFormat

    path = DATA_DIR / f"long_{minutes:g}min.mp3"
    if not path.exists():
        source = long_mix_file(minutes)
        with media.AudioWriter(path, 44100, 2, OutputFormat.MP3) as writer:
            for block in media.decode_blocks(source, 441000):
                writer.write(block)
    return path


def engine_run(path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.separation", "--long-run", str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _role(root: psutil.Process, member: psutil.Process) -> str:
    """Which part of the tree a process is: the command, the forkserver, or a worker."""
    if member.pid == root.pid:
        return "command"
    try:
        command = " ".join(member.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    if "forkserver" in command:
        return "forkserver"
    return "worker" if "resource_tracker" not in command else "other"


def split_run(path: Path, duration: float, env: dict[str, str]) -> dict[str, float]:
    """Run ``stemhub split`` and sample its whole process tree."""
    with tempfile.TemporaryDirectory(prefix="stemhub-e2e-") as scratch:
        run_env = env | {"STEMHUB_DATA_DIR": str(Path(scratch) / "data")}
        started = time.perf_counter()
        process = psutil.Popen(
            [STEMHUB, "split", str(path), "-o", str(Path(scratch) / "stems")],
            env=run_env,
            cwd=scratch,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        cpu: dict[int, float] = {}
        roles: dict[int, str] = {}
        peak_rss = peak_pss = 0.0
        while process.poll() is None:
            rss = pss = 0.0
            for member in _tree(process):
                try:
                    times = member.cpu_times()
                    cpu[member.pid] = times.user + times.system
                    if member.pid not in roles:
                        roles[member.pid] = _role(process, member)
                    memory = member.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                rss += memory.rss
                pss += memory.pss
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)
        wall = time.perf_counter() - started
        stderr = process.stderr.read().decode() if process.stderr else ""
        if process.returncode != 0:
            raise RuntimeError(f"stemhub split failed ({process.returncode}): {stderr}")
        reaped = os.times()
        written = sorted(p.name for p in (Path(scratch) / "stems").rglob("*.wav"))
    if len(written) != 4:
        raise RuntimeError(f"expected four stems, got {written}")
    tree_cpu = max(sum(cpu.values()), reaped.children_user + reaped.children_system)
    by_role: dict[str, float] = {}
    for pid, seconds in cpu.items():
        by_role[roles[pid]] = by_role.get(roles[pid], 0.0) + seconds
    return {
        **{f"cpu_{role}_s": seconds for role, seconds in sorted(by_role.items())},
        "wall_s": wall,
        "cpu_s": tree_cpu,
        "rtf": wall / duration,
        "peak_tree_rss_mb": peak_rss / 2**20,
        "peak_tree_pss_mb": peak_pss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[3.0, 10.0])
    parser.add_argument("--no-engine", action="store_true", help="skip the engine-only runs")
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "stemhub-e2e-pycache")
    subprocess.run([STEMHUB, "--version"], env=env, check=True, capture_output=True)
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("| input | run | wall s | CPU s | RTF (wall) | peak memory |")
    print("|---|---|---|---|---|---|")
    for minutes in options.minutes:
        path = mp3_of(minutes)
        duration = minutes * 60
        if not options.no_engine:
            engine = engine_run(path)
            print(
                f"| {minutes:g} min MP3 | engine (one process) | {engine['wall_s']:.1f} | "
                f"{engine['cpu_s']:.1f} | {engine['rtf']:.3f} | "
                f"{engine['peak_rss_mb']:.0f} MB RSS |",
                flush=True,
            )
        split = split_run(path, duration, env)
        print(
            f"| {minutes:g} min MP3 | stemhub split | {split['wall_s']:.1f} | "
            f"{split['cpu_s']:.1f} | {split['rtf']:.3f} | "
            f"{split['peak_tree_rss_mb']:.0f} MB tree RSS, "
            f"{split['peak_tree_pss_mb']:.0f} MB tree PSS |",
            flush=True,
        )
        parts = {k[4:-2]: v for k, v in split.items() if k.startswith("cpu_") and k != "cpu_s"}
        print(f"|  | CPU by process | {', '.join(f'{k} {v:.1f} s' for k, v in parts.items())} |")
    print(
        f"targets: RTF <= {TARGET_RTF} wall for 3 minutes on 2 cores; "
        f"peak tree RSS < {TARGET_TREE_MB:.0f} MB for 10 minutes"
    )


if __name__ == "__main__":
    main()
