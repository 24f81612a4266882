"""One svdcodec.decode in a fresh process: its time and its peak extra resident memory.

    python benchmarks/_child_decode.py FILE WARMUP_FILE

Decodes WARMUP_FILE first (lazy imports, BLAS, the thread pool), then reads FILE, resets the
peak resident set to the current one (/proc/self/clear_refs, Linux) and decodes FILE once, its
output alive while the peak is read. Prints one JSON line.
"""

import gc
import json
import sys
import time

import _procstat

import svdcodec

path, warmup = sys.argv[1], sys.argv[2]
with open(warmup, "rb") as f:
    svdcodec.decode(f.read())
with open(path, "rb") as f:
    data = f.read()
gc.collect()
before = _procstat.status()
reset = _procstat.reset_peak()  # VmHWM := VmRSS
started = time.perf_counter()
out = svdcodec.decode(data)  # the default pixel cap: these files are meant to pass it
seconds = time.perf_counter() - started
after = _procstat.status()
print(json.dumps({"rss_before": before["VmRSS"], "hwm": after["VmHWM"], "reset": reset,
                  "seconds": seconds, "out_bytes": int(out.nbytes), "shape": list(out.shape),
                  "dtype": str(out.dtype)}))
