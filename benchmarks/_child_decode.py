"""One svdcodec.decode in a fresh process: its time and its peak extra resident memory.

    python benchmarks/_child_decode.py FILE WARMUP_FILE

Decodes WARMUP_FILE first (lazy imports, BLAS, the thread pool), then reads FILE, resets the
peak resident set to the current one (/proc/self/clear_refs, Linux) and decodes FILE once, its
output alive while the peak is read. Prints one JSON line, with the file's declared
reconstruction work (sum of m*n*r) and decompressed block bytes.
"""

import gc
import json
import sys
import time

import _procstat

import svdcodec
from svdcodec import format as fmt

path, warmup = sys.argv[1], sys.argv[2]
with open(warmup, "rb") as f:
    svdcodec.decode(f.read())
with open(path, "rb") as f:
    data = f.read()
unpacked = fmt.unpack(data)
work = sum(p.matrix_shape[0] * p.matrix_shape[1] * p.rank for p in unpacked.planes)
declared = sum(b.raw_bytes for b in unpacked.blocks)
del unpacked
gc.collect()
before = _procstat.status()
reset = _procstat.reset_peak()  # VmHWM := VmRSS
started = time.perf_counter()
out = svdcodec.decode(data)  # the default pixel cap: these files are meant to pass it
seconds = time.perf_counter() - started
after = _procstat.status()
print(json.dumps({"rss_before": before["VmRSS"], "hwm": after["VmHWM"], "reset": reset,
                  "seconds": seconds, "out_bytes": int(out.nbytes), "shape": list(out.shape),
                  "dtype": str(out.dtype), "work": work, "declared": declared}))
