#!/usr/bin/env python3
"""Lossless and error-bounded .svdi (format version 2, residual blocks) against Pillow's own
codecs, in one run: the table of docs/lossless.md.

    python benchmarks/lossless.py --corpus DIR [--limit N] [--medical K] [--json FILE]

1. Lossless 8-bit RGB on the Kodak set (DIR: kodim01..24.png, see benchmarks/README.md):
   svdcodec max_error=0 against PNG (optimize=True) and WebP lossless (method 6), every file
   checked to decode to the very input; sizes in bytes and the ratio svdi / other.
2. 16-bit medical-like images, uint16 with a 12-bit range: the luma of the first K Kodak
   photos x 16 plus Gaussian noise of sigma 2 (a fixed seed), and, if pydicom is installed,
   its CT_small and MR_small test files (real 16-bit scans). For E = 0, 1, 2, 4: svdcodec
   max_error=E against JPEG 2000 (Pillow's OpenJPEG): lossless (irreversible=False), and for
   E > 0 the smallest file among a search over compression rates of the reversible 5/3 and the
   irreversible 9/7 wavelets whose decoded samples stay within E ("none" where no lossy
   setting is smaller than the lossless file and within the bound). Every svdi file is checked
   against the bound.

Sizes only, no timings: encode and decode times of the same run are printed as ratios to PNG's
for reference (this machine is shared; they are not goals).

    python benchmarks/lossless.py --corpus DIR --memory [--limit 0 --medical 0]

3. With --memory: the peak memory of decoding version 2 files in a fresh process per decode path
   (benchmarks/_child_memory.py: VmHWM - VmRSS before, the output included) against spec §5's
   bound 3 x out + 108 MiB: a 4 x 4 mosaic of Kodak photos (3072 x 2048 RGB) coded lossless and
   with max_error=2.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import kodak_paths, progress
from PIL import Image

import svdcodec

BOUNDS = (0, 1, 2, 4)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def webp_lossless_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "WEBP", lossless=True, quality=100, method=6)
    return buf.getvalue()


def timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def lossless_kodak(paths: list[Path]) -> dict[str, Any]:
    rows = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        data, t_enc = timed(lambda: svdcodec.encode(image, max_error=0))
        decoded, t_dec = timed(lambda: svdcodec.decode(data))
        if not np.array_equal(decoded, image):
            raise SystemExit(f"{path.name}: max_error=0 did not decode to the input")
        png, t_png = timed(lambda: png_bytes(image))
        _, t_png_dec = timed(lambda: np.asarray(Image.open(io.BytesIO(png))))
        webp = webp_lossless_bytes(image)
        rows.append({"image": path.name, "svdi": len(data), "png": len(png), "webp": len(webp),
                     "encode_vs_png": t_enc / t_png, "decode_vs_png": t_dec / t_png_dec})
        progress(f"{path.name}: svdi {len(data)} png {len(png)} webp {len(webp)}")
    totals = {k: sum(r[k] for r in rows) for k in ("svdi", "png", "webp")}
    return {"rows": rows, "totals": totals}


def medical_images(paths: list[Path], count: int) -> list[tuple[str, np.ndarray]]:
    """(name, uint16 12-bit image) of the medical-like set."""
    rng = np.random.default_rng(2024)
    out = []
    for path in paths[:count]:
        luma = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        noisy = luma * 16 + rng.normal(0, 2, luma.shape)
        out.append((f"{path.stem} x16+noise", np.clip(np.rint(noisy), 0, 4095).astype(np.uint16)))
    try:
        from pydicom import dcmread
        from pydicom.data import get_testdata_file
    except ImportError:
        progress("pydicom not installed: the medical set is the Kodak-derived images alone")
        return out
    for name in ("CT_small.dcm", "MR_small.dcm"):
        pixels = dcmread(get_testdata_file(name)).pixel_array
        # Stored as signed or unsigned 16-bit: shift into uint16 keeping every difference.
        shifted = pixels.astype(np.int64) - int(pixels.min())
        out.append((f"pydicom {name}", shifted.astype(np.uint16)))
    return out


def j2k(image: np.ndarray, **options: Any) -> tuple[bytes, np.ndarray]:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG2000", **options)
    data = buf.getvalue()
    back = np.asarray(Image.open(io.BytesIO(data))).astype(np.int64)
    return data, back


def j2k_within(image: np.ndarray, bound: int, lossless: int) -> int | None:
    """Bytes of the smallest JPEG 2000 file found within the bound and below the lossless
    size: for each wavelet, bisection on the compression rate (log scale)."""
    best = None
    target = image.astype(np.int64)
    for irreversible in (False, True):
        lo, hi = 1.0, 64.0  # rate 1: lossless-sized; 64: far beyond any bound here
        for _ in range(9):
            mid = (lo * hi) ** 0.5
            data, back = j2k(image, irreversible=irreversible, quality_mode="rates",
                             quality_layers=[mid])
            if np.max(np.abs(back - target)) <= bound:
                lo = mid
                if len(data) < lossless and (best is None or len(data) < best):
                    best = len(data)
            else:
                hi = mid
    return best


def bounded_medical(images: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
    rows = []
    for name, image in images:
        lossless_j2k, back = j2k(image, irreversible=False)
        assert np.array_equal(back, image.astype(np.int64)), "OpenJPEG lossless is not lossless"
        for bound in BOUNDS:
            data = svdcodec.encode(image, max_error=bound)
            err = np.max(np.abs(svdcodec.decode(data).astype(np.int64) - image))
            if err > bound:
                raise SystemExit(f"{name}: error {err} beyond max_error={bound}")
            other = len(lossless_j2k) if bound == 0 else j2k_within(image, bound,
                                                                   len(lossless_j2k))
            rows.append({"image": name, "E": bound, "svdi": len(data),
                         "j2k_lossless": len(lossless_j2k), "j2k_within": other})
            progress(f"{name} E={bound}: svdi {len(data)} j2k lossless {len(lossless_j2k)} "
                     f"j2k within {other}")
    return rows


def print_tables(kodak: dict[str, Any] | None, medical: list[dict[str, Any]]) -> None:
    if kodak:
        t = kodak["totals"]
        n = len(kodak["rows"])
        enc = np.mean([r["encode_vs_png"] for r in kodak["rows"]])
        dec = np.mean([r["decode_vs_png"] for r in kodak["rows"]])
        print(f"\nLossless, {n} Kodak images (bytes in all):")
        print("| codec | bytes | bits/pixel | svdi / codec |")
        print("|---|---|---|---|")
        pixels = sum(512 * 768 for _ in kodak["rows"])
        for key, label in (("svdi", "svdi max_error=0"), ("png", "PNG optimize=True"),
                           ("webp", "WebP lossless, method 6")):
            print(f"| {label} | {t[key]} | {8 * t[key] / pixels:.3f} | "
                  f"{t['svdi'] / t[key]:.3f} |")
        print(f"(same run: svdi encode {enc:.1f}x PNG optimize's time, decode {dec:.1f}x PNG's)")
    if medical:
        print("\n16-bit medical-like (12-bit range), bytes summed over the images:")
        print("| E | svdi | JPEG 2000 lossless | JPEG 2000 within E | svdi / best JPEG 2000 |")
        print("|---|---|---|---|---|")
        for bound in BOUNDS:
            rows = [r for r in medical if r["E"] == bound]
            svdi = sum(r["svdi"] for r in rows)
            lossless = sum(r["j2k_lossless"] for r in rows)
            found = [r["j2k_within"] for r in rows]
            within = sum(f if f is not None else r["j2k_lossless"] for f, r in zip(found, rows))
            note = "" if bound == 0 else f" ({sum(f is None for f in found)} of {len(rows)} none)"
            print(f"| {bound} | {svdi} | {lossless} | {within}{note} | {svdi / within:.3f} |")
        print("\nper image:")
        for r in medical:
            print(f"  {r['image']:28s} E={r['E']}: svdi {r['svdi']:7d}  j2k lossless "
                  f"{r['j2k_lossless']:7d}  j2k within E {r['j2k_within']}")


def decode_memory(paths: list[Path], keep: Path) -> list[dict[str, Any]]:
    """Peak memory of svdcodec.decode on version 2 mosaics, per decode path (fresh processes)."""
    import os
    import subprocess

    from _common import BENCHMARKS, build_mosaic

    mosaic = np.asarray(build_mosaic(paths, (4, 4)))
    out_bytes = mosaic.nbytes
    keep.mkdir(parents=True, exist_ok=True)
    rows = []
    for bound in (0, 2):
        path = keep / f"mosaic_4x4_e{bound}.svdi"
        path.write_bytes(svdcodec.encode(mosaic, max_error=bound))
        for kernels in ("0", "1"):
            env = dict(os.environ, SVDCODEC_KERNELS=kernels)
            child = subprocess.run([sys.executable, str(BENCHMARKS / "_child_memory.py"),
                                    "svdi decode numpy", str(path)], capture_output=True,
                                   text=True, env=env, check=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            peak = result["peak"] - result["baseline"]
            rows.append({"file": path.name, "bytes": path.stat().st_size, "kernels": kernels,
                         "out_mib": out_bytes / 2**20, "peak_mib": peak / 2**20,
                         "bound_mib": (3 * out_bytes + 108 * 2**20) / 2**20})
            progress(f"{path.name} kernels={kernels}: peak {peak / 2**20:.1f} MiB")
    return rows


def print_memory(rows: list[dict[str, Any]]) -> None:
    print("\nDecode peak memory of version 2 files (fresh process, output included):")
    print("| file | bytes | kernels | out MiB | peak MiB | bound MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['file']} | {r['bytes']} | {'C' if r['kernels'] == '1' else 'numpy'} | "
              f"{r['out_mib']:.1f} | {r['peak_mib']:.1f} | {r['bound_mib']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="directory of kodim*.png")
    parser.add_argument("--limit", type=int, default=24, help="Kodak images for part 1")
    parser.add_argument("--medical", type=int, default=6,
                        help="Kodak images made into the 16-bit set (part 2)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure the decode peak memory of version 2 mosaics")
    parser.add_argument("--keep", type=Path, default=Path("/tmp/svdi-lossless"),
                        help="where --memory writes its files (default /tmp/svdi-lossless)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    paths = kodak_paths(args.corpus)
    kodak = lossless_kodak(paths[:args.limit]) if args.limit else None
    medical = bounded_medical(medical_images(paths, args.medical)) if args.medical else []
    memory = decode_memory(paths, args.keep) if args.memory else []
    print_tables(kodak, medical)
    if memory:
        print_memory(memory)
    if args.json:
        args.json.write_text(json.dumps({"kodak": kodak, "medical": medical, "memory": memory},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
