"""Optional py-spy sampling of a server during a fan-out case (`bench/fanout.py --py-spy DIR`), summarised by frame.

py-spy is not a project dependency: `pip install py-spy` into the venv to use it. Sampling is
`--nonblocking` (the process is never paused), so it does not add to the latencies it explains.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv/bin/py-spy")
    cmd = [exe, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "200"]
    cmd += ["-f", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(raw: Path, top: int = 25) -> list[str]:
    """Inclusive and own shares of the samples per frame (collapsed stacks: `a;b;c count`)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return ["no samples"]
    lines = [f"{total} samples; inclusive share (frame and its callees):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("own share (the frame itself):")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top // 2)]
    return lines
