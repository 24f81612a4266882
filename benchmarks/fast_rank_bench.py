"""--rank / --energy on large planes: the Gram route against the randomized one, in one run.

Encodes 6 MP photos (Kodak images upscaled to 3072 x 2048 with Lanczos, since the corpus has
no larger photos) with rank and energy options twice: once forced onto the Gram route
(factorization.FEW_ABOVE raised past every plane, the behaviour before the change) and once
as shipped. Prints CPU and wall time of each, their ratio, file size, PSNR, the ranks kept per
plane and, for energy, the fraction of each plane's energy its kept components hold.

    python benchmarks/fast_rank_bench.py --corpus DIR --images 05 13 23
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec import format as container
from svdcodec.codec import factorize

OPTIONS = ({"rank": 50}, {"rank": 200}, {"energy": 0.99}, {"energy": 0.999})


def photo(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((3072, 2048), Image.LANCZOS))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def timed(pixels: np.ndarray, options: dict[str, float]) -> tuple[bytes, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    data = svdcodec.encode(pixels, **options)
    return data, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--images", nargs="+", default=["05", "13", "23"])
    args = parser.parse_args()
    print(f"{'image':<8} {'option':<14} {'route':<11} {'cpu s':>7} {'wall s':>7} {'bytes':>9} "
          f"{'PSNR':>6}  ranks")
    for number in args.images:
        pixels = photo(args.corpus / f"kodim{number}.png")
        for options in OPTIONS:
            label = ",".join(f"{k}={v}" for k, v in options.items())
            saved = factorize.FEW_ABOVE
            results = {}
            for route in ("gram", "randomized"):
                factorize.FEW_ABOVE = 10 ** 9 if route == "gram" else saved
                try:
                    results[route] = timed(pixels, options)
                finally:
                    factorize.FEW_ABOVE = saved
            for route, (data, cpu, wall) in results.items():
                _, planes = container.read_headers(io.BytesIO(data))
                ranks = "/".join(str(p.rank) for p in planes)
                print(f"kodim{number:<3} {label:<14} {route:<11} {cpu:7.2f} {wall:7.2f} "
                      f"{len(data):9d} {psnr(pixels, svdcodec.decode(data)):6.2f}  {ranks}")
            (_, cpu_g, wall_g), (_, cpu_r, wall_r) = results["gram"], results["randomized"]
            print(f"{'':<8} {label:<14} {'ratio':<11} {cpu_r / cpu_g:7.2f} {wall_r / wall_g:7.2f}")


if __name__ == "__main__":
    main()
