"""Runs a command; prints its wall time, CPU time (user + system), peak RSS (kernel's ru_maxrss of the child, which counts
mapped file pages) and peak anonymous memory (RssAnon of the child and its descendants sampled
every 10 ms) as JSON."""

import json
import os
import resource
import subprocess
import sys
import time


def anon_kb(pid):
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return total


t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
peak = 0
while p.poll() is None:
    peak = max(peak, anon_kb(p.pid))
    time.sleep(0.01)
wall = time.perf_counter() - t
err = p.stderr.read().decode(errors="replace")
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": round(wall, 2), "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
                  "peak_rss_mb": round(ru.ru_maxrss / 1024),
                  "peak_anon_mb": round(peak / 1024), "rc": p.returncode,
                  "stderr_tail": err[-300:] if p.returncode else ""}))
