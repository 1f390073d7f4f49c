"""Runs a command and prints its wall time and peak RSS (of the child and its children) as JSON."""

import json
import resource
import subprocess
import sys
import time

t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": round(wall, 2), "peak_rss_mb": round(ru.ru_maxrss / 1024), "rc": p.returncode,
                  "stderr_tail": p.stderr.decode(errors="replace")[-300:] if p.returncode else ""}))
