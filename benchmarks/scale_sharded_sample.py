"""Sharded against unsharded on a sample of `scale.py`'s query clips: K of each set, one N per process.

`scale.py --steps sharded` queries every clip with N = 1, 2 and 4, which takes about an hour and a
half at 100 h and 300 h on two cores; this samples every (len // K)-th clip of each set instead.
Run it after `scale.py --steps corpus,build,query` (it reads the libraries and query sets there),
once per N, then compare the answers of N = 2 and 4 with N = 1's:

    python benchmarks/scale_sharded_sample.py 300h 1 20 bench-work/scale/sharded-small/300h-1.json
"""

import argparse
import glob
import json
import os
import statistics
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("size", help="a library of scale.py: 10h, 100h or 300h")
ap.add_argument("shards", type=int, help="N: 1 for the plain library, else that many Ray actors")
ap.add_argument("per_set", type=int, help="K: clips of each query set")
ap.add_argument("out", help="where the JSON results go")
a = ap.parse_args()
size, n, k, out = a.size, a.shards, a.per_set, a.out
os.environ.setdefault("OMP_NUM_THREADS", "1")
from tuneseek import Library  # noqa: E402

WORK = Path(__file__).resolve().parent.parent / "bench-work" / "scale"
Q = WORK / "queries"
SETS = {
    "clean": f"{Q}/pos-pt2-seed0/L10-clean",
    "noise:0db": f"{Q}/pos-pt2-seed0/L10-noise-0db",
    "speed:1.02": f"{Q}/pos-pt2-seed0/L10-speed-1_02",
    "NEG-warzone2100": f"{Q}/neg-warzone2100-pt4-seed0/L10",
    "NEG-sectoid": f"{Q}/neg-sectoid-pt25-seed0/L10",
}


def status(pid: int) -> dict:
    """Peak and current memory of process ``pid``, in MB."""
    try:
        return {
            line.split(":")[0]: int(line.split()[1]) / 1024
            for line in open(f"/proc/{pid}/status")
            if line.startswith(("VmHWM", "RssAnon", "RssFile"))
        }
    except OSError:
        return {}


def cpu_others() -> tuple[int, int]:
    """Busy and total jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:3]) + sum(v[5:8]), sum(v)


clips = {
    name: sorted(glob.glob(f"{d}/test/sample/*/*.wav"))[:: max(1, len(glob.glob(f"{d}/test/sample/*/*.wav")) // k)][:k]
    for name, d in SETS.items()
}
warm = clips["NEG-sectoid"][-1]
t0 = time.perf_counter()
lib = Library.open(WORK / "libs" / size, create=False, shards=n if n > 1 else 0)
open_s = time.perf_counter() - t0
t0 = time.perf_counter()
lib.candidates(warm)
first_s = time.perf_counter() - t0
res = {"size": size, "shards": n, "k": k, "open_s": open_s, "first_query_s": first_s, "sets": {}}
busy0, all0 = cpu_others()
for name, cl in clips.items():
    lat, ans = [], []
    for c in cl:
        t = time.perf_counter()
        m = lib.candidates(c)
        lat.append((time.perf_counter() - t) * 1000)
        ans.append([x.to_dict() for x in m])
    res["sets"][name] = {
        "latencies_ms": lat,
        "answers": ans,
        "mean_ms": statistics.fmean(lat),
        "median_ms": statistics.median(lat),
    }
busy1, all1 = cpu_others()
res["machine_busy_cores"] = 2 * (busy1 - busy0) / max(1, all1 - all0)
res["driver"] = status(os.getpid())
res["shard_info"] = [dict(s, status=status(s["pid"])) for s in lib.shard_info()]
lib.close()
Path(out).write_text(json.dumps(res))
print(
    size,
    n,
    f"open {open_s:.1f} s",
    " ".join(f"{k_}: {v['mean_ms']:.0f} ms" for k_, v in res["sets"].items()),
    f"driver {res['driver']}",
    [s["status"].get("VmHWM") for s in res["shard_info"]],
)
