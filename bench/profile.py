"""``python -m bench.profile``: sample the webhook's gunicorn worker with py-spy while wrk loads it.

Writes ``docs/bench/webhook-profile[-gil].svg`` (flame graph), ``bench/results/webhook-profile[-gil].txt``
(collapsed stacks) and
prints the top frames by inclusive and self time, plus the share of samples inside ``shared/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from bench.drivers import WEBHOOK_BODY, WEBHOOK_PATH, closed_loop
from bench.stack import ROOT, Backends, Namespace, descendants, start_function


def top_frames(collapsed: str, limit: int = 25) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top inclusive frames, top self frames) from py-spy's collapsed (``raw``) output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    return total, inclusive.most_common(limit), own.most_common(limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (CPU, not waiting)"
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    backends = Backends.from_env()
    ns = Namespace(backends)
    log_dir = ROOT / "bench" / "results" / "logs" / "profile"
    proc = start_function("webhook", ns, log_dir, workers=1, threads=args.threads)
    try:
        proc.wait_live()
        url = proc.url + WEBHOOK_PATH
        headers = backends.auth_headers()
        closed_loop(url, body=WEBHOOK_BODY, headers=headers, duration=1, connections=4)  # warm up
        worker_pid = descendants(proc.popen.pid)[-1]
        load: dict[str, object] = {}

        def drive() -> None:
            load.update(
                closed_loop(
                    url, body=WEBHOOK_BODY, headers=headers, duration=2 * args.duration + 4, connections=16
                )
            )

        driver = threading.Thread(target=drive)
        driver.start()
        suffix = "-gil" if args.gil else ""
        raw_path = ROOT / "bench" / "results" / f"webhook-profile{suffix}.txt"
        svg_path = args.out / f"webhook-profile{suffix}.svg"
        common = [spy, "record", "--pid", str(worker_pid), "--rate", str(args.rate), "--nonblocking"]
        if args.gil:
            common.append("--gil")
        subprocess.run(
            [*common, "--duration", str(args.duration), "--format", "raw", "-o", str(raw_path)],
            check=True,
            capture_output=True,
        )
        subprocess.run(  # still under load: the driver runs for twice the sampling time
            [*common, "--duration", str(args.duration), "--format", "flamegraph", "-o", str(svg_path)],
            check=False,
            capture_output=True,
        )
        driver.join()
    finally:
        proc.stop()
        ns.cleanup()
    total, inclusive, own = top_frames(raw_path.read_text())
    in_shared = sum(
        int(line.rpartition(" ")[2])
        for line in raw_path.read_text().splitlines()
        if "shared/" in line.rpartition(" ")[0]
    )
    print(f"load: {load.get('throughput_rps', 0):.0f} req/s via {load.get('generator')}")
    print(f"samples: {total}; with a shared/ frame on the stack: {100 * in_shared / max(total, 1):.1f}%")
    print("\ntop inclusive:")
    for frame, count in inclusive:
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("\ntop self:")
    for frame, count in own:
        print(f"  {100 * count / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
