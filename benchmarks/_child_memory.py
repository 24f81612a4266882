"""Peak memory of one operation in a fresh process, beyond what the process held before it.

    python benchmarks/_child_memory.py OPERATION INPUT

The operation first runs once on a tiny image, so that lazy imports, thread pools and BLAS
buffers are in the baseline. Then the input is loaded (the array of an encode from .npy, a Pillow
image of it for a save, the file bytes of a decode), the peak resident set is reset to the current one (/proc/self/clear_refs,
Linux), and the operation runs once; its output stays alive while the peak is read. Prints one
JSON line: `baseline` (VmRSS before), `peak` (VmHWM after), bytes.
"""

import gc
import json
import sys

import _operations
import _procstat
import numpy as np

operation, path = sys.argv[1], sys.argv[2]
run = _operations.prepare(operation)
codec = operation.split()[0]
tiny = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
if _operations.is_save(operation):
    from PIL import Image

    run(Image.fromarray(tiny))
    source = Image.fromarray(np.load(path))
elif _operations.is_encode(operation):
    run(tiny)
    source = np.load(path)
else:
    run(_operations.encoder_of(codec)(tiny))
    with open(path, "rb") as f:
        source = f.read()
gc.collect()
reset = _procstat.reset_peak()
before = _procstat.status()
baseline = before["VmRSS"] if reset else max(before["VmRSS"], before["VmHWM"])
output = run(source)
after = _procstat.status()
print(json.dumps({"baseline": baseline, "peak": after["VmHWM"], "hwm_reset": reset}))
