"""Start-up cost of the commands that do not split, beside a baseline checkout, in one run.

    git worktree add /tmp/base <commit before the change>
    nice -n 10 uv run --all-packages python bench/startup.py --baseline /tmp/base
    git worktree remove /tmp/base

Each command runs as a fresh process with the environment's interpreter (every plugin
installed), once to warm the bytecode cache (a private ``PYTHONPYCACHEPREFIX``, so
neither tree nor the shared environment is touched) and then ``--runs`` times; the
figures are the medians of CPU (user + system of the child process) and wall time. The
baseline runs the same interpreter with the baseline tree first on ``PYTHONPATH``: its
``stemhub`` package and its first-party plugins (``plugins/*/src``, which the entry
points name by module), so core and plugins always come from one tree; dependencies are
the environment's. The trees take turns, run by run, so both see the same load. CPU is
the figure to compare on a shared machine; wall time depends on the load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["doctor"], ["jobs", "list"], ["plugins"], ["--version"])
TARGET_CPU_S = 1.0
LAUNCH = "import sys; from stemhub.cli import main; sys.argv[0] = 'stemhub'; main()"


def measure(tree: Path | None, args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, exit code) of one ``stemhub ARGS`` process."""
    run_env = dict(env)
    if tree is not None:
        plugins = sorted(str(src) for src in tree.glob("plugins/*/src"))
        run_env["PYTHONPATH"] = os.pathsep.join([str(tree), *plugins])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=env["STEMHUB_DATA_DIR"],  # not the repository: "" leads sys.path with -c
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.returncode


def figures(samples: list[tuple[float, float, int]]) -> str:
    cpu = statistics.median(s[0] for s in samples)
    wall = statistics.median(s[1] for s in samples)
    return f"{cpu:5.2f} s CPU {wall:5.2f} s wall (exit {samples[-1][2]})"


def compare(trees: list[Path | None], args: list[str], env: dict[str, str], runs: int) -> list[str]:
    """The figures of each tree for one command, the trees taking turns run by run."""
    for tree in trees:
        measure(tree, args, env)  # warm the bytecode cache and the data dir
    samples: list[list[tuple[float, float, int]]] = [[] for _ in trees]
    for _ in range(runs):
        for tree, taken in zip(trees, samples, strict=True):
            taken.append(measure(tree, args, env))
    return [figures(taken) for taken in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stemhub-startup-") as scratch:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
        }
        env |= {
            "STEMHUB_DATA_DIR": str(Path(scratch) / "data"),
            "PYTHONPYCACHEPREFIX": str(Path(scratch) / "pycache"),
            "COLUMNS": "100",
        }
        Path(env["STEMHUB_DATA_DIR"]).mkdir()
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {options.runs}")
        print(f"{'command':<12} {'this tree':<36} {'baseline' if options.baseline else ''}")
        trees: list[Path | None] = [None, *([options.baseline] if options.baseline else [])]
        for args in COMMANDS:
            shown = compare(trees, args, env, options.runs)
            print(f"{' '.join(args):<12} {shown[0]:<36} {shown[1] if len(shown) > 1 else ''}")
        print(f"target: under {TARGET_CPU_S:.0f} s of CPU for each command")


if __name__ == "__main__":
    main()
