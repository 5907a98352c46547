"""How much the hub adds on top of a separation backend, beside the tutorial's way.

Pushes N jobs (default 100, 1,000 and 10,000) through the hub with a backend that
completes a fixed delay after each job is created (a loopback fake separation API, see
:mod:`bench._hub_service`) and delivers to a fake chat platform, and the same jobs the
way the StemSplit Discord tutorial runs them: blocking HTTP calls in ``run_in_executor``
on the default thread pool, with the file read into memory when the command arrives
(:mod:`bench._hub_runs`). Both use the same WAV and the same delay; every run gets its
own process and its own two fake services.

Prints, per N and mode: wall time, jobs/s, the added latency between the backend's
answer and the end of the delivery post (p50/p99, and the p99 of the hub's own part,
up to the frontend's ``deliver`` call), end-to-end latency, peak running jobs, peak RSS
and its growth per job, and CPU per job (all threads; unlike wall time it barely moves
when other work shares the machine). The targets: 10,000 in-flight jobs in one process
under 300 MB RSS, p99 added latency under 50 ms.

The tutorial's pool runs ``min(32, cpus + 4)`` jobs at a time, so N jobs take about
``N / threads * delay``; where that exceeds ``--tutorial-budget`` seconds it is run for
as many jobs as fit and its figures for N are extrapolated (marked ``~``): time and
latency by its measured rate, memory by its measured bytes per queued job.

    uv run python bench/hub_overhead.py [--n 100 1000 10000] [--delay 2] [--rate 0]
                                        [--concurrency 8]

By default all N requests arrive at the same moment, so the hub runs flat out and a
job's delivery shares the event loop with the uploads of the jobs still starting.
``--rate R`` spaces the arrivals at R per second instead; with ``--delay`` long enough
(N / R seconds or more, as real separations take minutes) all N jobs are still in flight
at once, at a pace the hub keeps up with.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._hub_runs import RunFigures  # noqa: E402

TARGET_RSS_MB = 300.0
TARGET_P99_MS = 50.0


@contextlib.contextmanager
def fake_service(delay_s: float) -> Iterator[str]:
    """A fresh fake service in its own process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._hub_service", "--delay", str(delay_s)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the fake service did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RunFailed(Exception):
    """A run ended without figures; the message is the error that ended it."""


def measure(
    mode: str, n: int, audio: Path, delay_s: float, rate: float = 0.0, concurrency: int = 0
) -> RunFigures:
    with fake_service(delay_s) as api, fake_service(delay_s) as chat:
        command = [sys.executable, "-m", "bench._hub_runs", mode, "--api", api, "--chat", chat]
        command += ["--n", str(n), "--audio", str(audio), "--delay", str(delay_s)]
        command += ["--rate", str(rate)]
        if mode == "hub" and concurrency:
            command += ["--concurrency", str(concurrency)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return RunFigures.from_json(line.removeprefix("RESULT "))
    sys.stderr.write(done.stderr[-3000:])
    last = [line for line in done.stderr.splitlines() if line and not line[0].isspace()]
    raise RunFailed(last[-1] if last else f"exit status {done.returncode}")


def extrapolate(measured: RunFigures, n: int, audio_bytes: int) -> RunFigures:
    """The tutorial's figures for ``n`` jobs from a smaller run: same rate, same threads.

    Wall time and end-to-end latency grow with the queue in front of the pool (the last
    job waits for every earlier one); added latency per job does not. Memory grows by one
    file per further queued command: the bot read each attachment when it arrived.
    """
    wall = n / measured.jobs_per_s
    rss = measured.peak_rss_mb + (n - measured.n) * audio_bytes / 2**20
    scale = wall / measured.wall_s
    end_to_end = {key: value * scale for key, value in measured.end_to_end_ms.items()}
    cpu = measured.cpu_s * n / measured.n
    return replace(measured, n=n, wall_s=wall, end_to_end_ms=end_to_end, peak_rss_mb=rss, cpu_s=cpu)


def tutorial_cap(delay_s: float, budget_s: float) -> int:
    workers = min(32, (os.cpu_count() or 1) + 4)
    return max(workers, workers * math.floor(budget_s / max(delay_s, 0.001)))


@dataclass
class Row:
    figures: RunFigures
    ran: int
    estimated: bool = False


@dataclass
class FailedRow:
    n: int
    mode: str
    error: str


def print_table(rows: list[Row | FailedRow]) -> None:
    header = (
        f"{'N':>7} {'mode':<9} {'ran':>6} {'wall s':>9} {'jobs/s':>8} "
        f"{'added p50 ms':>12} {'p99 ms':>8} {'hub p99':>8} {'e2e p50 s':>10} {'e2e p99 s':>10} "
        f"{'peak run':>8} {'peak RSS MB':>11} {'KiB/job':>8} {'CPU ms/job':>10} {'fails':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if isinstance(row, FailedRow):
            print(f"{row.n:>7} {row.mode:<9} {row.n:>6}  FAILED: {row.error}")
            continue
        f = row.figures
        hub_p99 = f"{f.hub_part_ms['p99']:>8.1f}" if f.mode == "hub" else f"{'-':>8}"
        mark = "~" if row.estimated else " "
        e2e_p50, e2e_p99 = f.end_to_end_ms["p50"] / 1000, f.end_to_end_ms["p99"] / 1000
        per_job_kib = (f.peak_rss_mb - f.base_rss_mb) * 1024 / f.n
        print(
            f"{f.n:>7} {f.mode:<9} {row.ran:>6} {mark}{f.wall_s:>8.1f} {mark}{f.jobs_per_s:>7.1f} "
            f"{f.added_ms['p50']:>12.1f} {f.added_ms['p99']:>8.1f} {hub_p99} "
            f"{mark}{e2e_p50:>9.1f} {mark}{e2e_p99:>9.1f} "
            f"{f.peak_in_flight:>8} {mark}{f.peak_rss_mb:>10.0f} {per_job_kib:>8.1f} "
            f"{1000 * f.cpu_s / f.n:>10.2f} {f.failures:>5}"
        )
        if f.failure_sample:
            print(f"        first failure: {f.failure_sample}")


def verdict(rows: list[Row | FailedRow]) -> None:
    print()
    for row in rows:
        if isinstance(row, FailedRow) and row.mode == "hub":
            print(f"hub, N={row.n}: MISSES: the run failed ({row.error})")
    hub_rows = [row.figures for row in rows if isinstance(row, Row) and row.figures.mode == "hub"]
    if not hub_rows:
        return
    biggest = max(hub_rows, key=lambda f: f.n)
    rss_ok = biggest.peak_rss_mb < TARGET_RSS_MB
    p99_ok = all(f.added_ms["p99"] < TARGET_P99_MS for f in hub_rows)
    worst_p99 = max(f.added_ms["p99"] for f in hub_rows)
    print(
        f"hub, N={biggest.n}: peak RSS {biggest.peak_rss_mb:.0f} MB "
        f"({'meets' if rss_ok else 'MISSES'} < {TARGET_RSS_MB:.0f} MB) with "
        f"{biggest.peak_in_flight} jobs running at once; "
        f"{(biggest.peak_rss_mb - biggest.base_rss_mb) * 1024 / biggest.n:.1f} KiB per job "
        f"above the {biggest.base_rss_mb:.0f} MB idle hub"
    )
    print(
        f"hub, worst p99 added latency {worst_p99:.1f} ms "
        f"({'meets' if p99_ok else 'MISSES'} < {TARGET_P99_MS:.0f} ms)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--delay", type=float, default=2.0, help="backend seconds per job")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the test WAV")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="requests per second (default 0: all N arrive at the same moment)",
    )
    parser.add_argument(
        "--tutorial-budget",
        type=float,
        default=60.0,
        help="run the tutorial for at most about this many seconds, extrapolate beyond",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="the hub's STEMHUB_CONCURRENCY (default: the hub's own default, 8)",
    )
    parser.add_argument("--skip-tutorial", action="store_true")
    args = parser.parse_args(argv)

    from stemhub.testing import write_test_tone

    rows: list[Row | FailedRow] = []
    with tempfile.TemporaryDirectory(prefix="stemhub-bench-audio-") as folder:
        audio = write_test_tone(Path(folder) / "tone.wav", seconds=args.seconds)
        audio_bytes = audio.stat().st_size
        print(
            f"input {audio_bytes / 1024:.0f} KiB WAV ({args.seconds:g} s), backend delay "
            f"{args.delay:g} s, arrivals "
            f"{f'{args.rate:g}/s' if args.rate else 'all at once'}, hub concurrency "
            f"{args.concurrency or 'default'}, {os.cpu_count()} CPUs, "
            f"Python {sys.version.split()[0]}"
        )
        cap = tutorial_cap(args.delay, args.tutorial_budget)
        tutorial_runs: dict[int, RunFigures] = {}
        for n in args.n:
            began = time.perf_counter()
            try:
                rows.append(
                    Row(measure("hub", n, audio, args.delay, args.rate, args.concurrency), ran=n)
                )
            except RunFailed as failed:
                rows.append(FailedRow(n, "hub", str(failed)))
            print(f"  hub N={n} done in {time.perf_counter() - began:.0f} s", file=sys.stderr)
            if args.skip_tutorial:
                continue
            ran = min(n, cap)
            if ran not in tutorial_runs:
                began = time.perf_counter()
                tutorial_runs[ran] = measure("tutorial", ran, audio, args.delay, args.rate)
                print(
                    f"  tutorial N={ran} done in {time.perf_counter() - began:.0f} s",
                    file=sys.stderr,
                )
            measured = tutorial_runs[ran]
            if ran == n:
                rows.append(Row(measured, ran=ran))
            else:
                rows.append(Row(extrapolate(measured, n, audio_bytes), ran=ran, estimated=True))
    print()
    print_table(rows)
    if any(isinstance(row, Row) and row.estimated for row in rows):
        print(
            f"~ extrapolated from a run of the N in 'ran' (the tutorial's pool would need "
            f"about N / {min(32, (os.cpu_count() or 1) + 4)} x {args.delay:g} s)"
        )
    verdict(rows)


if __name__ == "__main__":
    main()
