#!/usr/bin/env bash
# The C kernels under AddressSanitizer and UndefinedBehaviorSanitizer.
#
#     tests/sanitize.sh [--replay DIR]... [extra pytest arguments]
#
# Builds csrc/kernels.c with -fsanitize=address,undefined,float-cast-overflow (GCC's
# "undefined" leaves out float-to-integer conversions out of range) into a temporary copy of
# the package (the worktree's own build is left alone) and runs, on the compiled path (SVDCODEC_KERNELS=1),
# the kernel tests (tests/test_kernels.py: both paths on every mode and layout, mutated sparse
# blocks, the committed files), the deblocking filter's rows (tests/test_deblock.py), the spec
# vectors (tests/test_vectors.py), the block records (tests/test_record_parser.py), the
# restoration filter (tests/test_restoration.py: every class, band windows and the argument
# checks of its kernel), adaptive quantization's map and product (tests/test_aq.py), the fuzz corpus
# and regression files (tests/test_fuzz_corpus.py) and the one-band plane fuzzer's smoke
# (tests/test_plane_fuzz.py: mutated blocks through `_kernels.plane_factors` and
# `_kernels.whole_factor`), the compiled set-up's refusals (tests/test_compiled_setup.py:
# crafted blocks, PLAN chunks and S values) and the page advice of large decoded images
# (tests/test_pillow_bands.py's two tests of `base_pages`) and the chunk table's runs of 20,000
# residual blocks (tests/test_hostile.py). Any out-of-bounds access or undefined
# behaviour aborts the run with the sanitizer's report; the exit status is pytest's.
# --replay DIR also decodes every file in DIR through tests/fuzz/fuzz_decode.py's target, e.g.
# the corpus a fuzzing run grew (the fuzzer runs the optimized build, whose bad reads may go
# unnoticed; replayed here they abort).
#
# Python itself is not instrumented, so the ASan runtime is preloaded (LD_PRELOAD) before it
# starts; leak detection is off (the interpreter keeps its allocations at exit). Needs gcc or
# clang with the sanitizer runtimes (CC=clang to choose) and the Python headers; run it from
# the environment the package is installed in (numpy, Pillow, zstandard, pytest, hypothesis).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cc="${CC:-gcc}"
python="${PYTHON:-python}"
replay=()
while [ "${1:-}" = --replay ]; do
  replay+=("$(cd "$2" && pwd)")
  shift 2
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp -r "$root/svdcodec" "$root/tests" "$root/spec" "$root/pyproject.toml" "$work/"
rm -f "$work"/svdcodec/runtime/_kernels*.so "$work"/svdcodec/runtime/_kernels*.pyd
include="$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")"
suffix="$("$python" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")"
module="$work/svdcodec/runtime/_kernels$suffix"
"$cc" -O2 -g -fsanitize=address,undefined,float-cast-overflow \
  -fno-sanitize-recover=undefined,float-cast-overflow \
  -fno-omit-frame-pointer -ffp-contract=off -fno-trapping-math -std=c11 -Wall -Wextra -Wno-unused-parameter \
  -Wno-missing-field-initializers -fPIC -shared -I"$include" "$root/csrc/kernels.c" -o "$module"

# grep reads all of nm's output (no -q): under pipefail an early exit would SIGPIPE nm and fail the check.
nm -D "$module" | grep __asan_report > /dev/null || { echo "no ASan instrumentation in $module"; exit 1; }

preload="$("$cc" -print-file-name=libasan.so)"
if [ "${cc##*/}" = gcc ]; then  # gcc links UBSan's runtime separately
  preload="$preload $("$cc" -print-file-name=libubsan.so)"
fi
export LD_PRELOAD="$preload"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$work" SVDCODEC_KERNELS=1 SVDCODEC_REQUIRE_KERNELS=1
cd "$work"
# The sanitized build, not an installed one, must be what the package imports.
"$python" -c "import sys, svdcodec.runtime._kernels as k; \
sys.exit(0 if k.__file__ == sys.argv[1] else f'imported {k.__file__}, not the sanitized build')" \
  "$module"
echo "sanitized kernels: $module"
"$python" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_deblock.py tests/test_restoration.py tests/test_vectors.py \
  tests/test_record_parser.py tests/test_fuzz_corpus.py tests/test_aq.py tests/test_plane_fuzz.py \
  tests/test_compiled_setup.py \
  tests/test_pillow_bands.py::test_base_pages_advises_only_the_whole_pages_inside_a_buffer \
  tests/test_pillow_bands.py::test_a_large_images_memory_is_kept_out_of_huge_pages \
  tests/test_hostile.py::test_many_residual_blocks_cost_a_few_bytes_each "$@"
for dir in "${replay[@]}"; do
  echo "replaying $dir"
  "$python" - "$dir" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "tests")
from support import ROOT, load_module

target = load_module(ROOT / "tests" / "fuzz" / "fuzz_decode.py").target
files = sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_file())
for path in files:
    target(path.read_bytes())
print(f"{len(files)} files decoded or rejected, no sanitizer report")
EOF
done
