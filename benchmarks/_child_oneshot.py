"""One operation in a fresh interpreter, as a command-line call or a new worker meets it.

    python benchmarks/_child_oneshot.py OPERATION INPUT

OPERATION is a name of _operations.OPERATIONS; INPUT is an .npy array for an encode, the file to
decode for a decode. Prints one JSON line: seconds for the imports the operation needs
(`import_s`), for loading the input array (`load_s`, encodes only: np.load, not part of the
operation) and for the operation itself (`operation_s`: for a decode, opening and reading the
file included), and which kernels svdcodec ran.
"""

import sys
import time

started = time.perf_counter()
import _operations  # light: the heavy imports happen in prepare, timed below

operation, path = sys.argv[1], sys.argv[2]
run = _operations.prepare(operation)
imported = time.perf_counter()
if _operations.is_encode(operation):
    import numpy

    source = numpy.load(path)
else:
    source = path
loaded = time.perf_counter()
output = run(source)
done = time.perf_counter()

import json

import _common

print(json.dumps({"import_s": imported - started, "load_s": loaded - imported,
                  "operation_s": done - loaded,
                  "kernel_path": _common.kernel_path() if "svdi" in operation else None}))
