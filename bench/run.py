"""make bench: run every benchmark script and write docs/benchmarks.md.

Each script prints one Markdown section to stdout. The page records the machine
and the command, so a number is never quoted without where it came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        memory = "unknown memory"
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, help="article-extraction data set folder")
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    args = parser.parse_args()
    scripts: list[tuple[str, list[str]]] = [
        ("extraction", ["bench/extraction.py", args.dataset]),
        ("embeddings", ["bench/embeddings.py"]),
        ("search", ["bench/search.py"]),
        ("search_api", ["bench/search_api.py"]),
        ("pipeline", ["bench/pipeline.py", args.dataset]),
        ("streams", ["bench/streams.py"]),
        ("load", ["bench/load.py"]),
    ]
    sections = []
    failed = []
    for name, cmd in scripts:
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        print(f"== {name}", file=sys.stderr, flush=True)
        proc = subprocess.run(  # noqa: PLW1510
            [sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True
        )
        took = time.monotonic() - started
        if proc.returncode != 0:
            failed.append(name)
            tail = proc.stderr[-3000:]
            sections.append(f"## {name}\n\nFAILED (exit {proc.returncode}):\n\n```\n{tail}\n```\n")
        else:
            sections.append(proc.stdout.strip() + f"\n\n_({took:.0f} s to run)_\n")
    header = (
        "# Benchmarks\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n\n"
        "Command: `make bench` (runs `python bench/run.py`; each section below is one script "
        "under `bench/`, which can also be run alone).\n\n"
    )
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + "\n".join(sections))
    print(f"wrote {out}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
