"""Encode the package's sample image in many ways and decode each file with the Python decoder,
for the JS decoder's agreement tests (js/test/agreement.test.js) and the browser test.

    python js/test/make_fixtures.py [OUT]       (default js/test-artifacts/fixtures)

Writes NAME.svdi, NAME.npy (svdcodec.decode) and NAME.kK.npy (decode(components=K)) for every
case, and fixtures.json listing them; and, for js/test/truncated.test.js, files cut at many
points, each cut's decode(part, truncated="fill") (NAME.cut-HASH.npy, one per distinct result)
or its error, listed under "truncated". Only svdcodec/data/sample.png (384 x 256 RGB, shipped with
the package) is read; the other modes and sample types are derived from it.

Every file is format version 5 (the encoder writes the compact container of spec §4.2 for
all). The cases named v2_ use the features version 2 added (max_error, LA whose alpha the
encoder makes exact, the array types int8, int16, int32, uint32, float64, centred columns and
5-8 channels: residual blocks, MEAN chunks), v3_ version 3's (Y'CbCr of 16-bit samples), v4_
version 4's (the deblocking filter), v6_ version 6's adaptive quantization (aq=True), v6r_ version 6's restoration filter (restore=True, after the deblocking filter), v7_ version 7's
wrapped residual blocks (lossless 16-bit noise). For those with residual blocks NAME.source.npy is
the encoded image too, so that the tests also check the bound the encoder promised, not only
agreement.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.encoder import blocks as encoder_blocks
from svdcodec.encoder import plane as encoder_plane
from svdcodec.encoder import tuning
from svdcodec.format import END, Block, unpack
from svdcodec.format.writer import factor_chunks, pack_header, pack_record

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "svdcodec" / "data" / "sample.png"


def sources() -> dict[str, np.ndarray]:
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    grey = np.asarray(Image.open(SAMPLE).convert("L"))
    h, w = grey.shape
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0).astype(np.uint8)
    rgba = np.dstack([rgb, ramp])
    # Odd sizes: the 4:2:0 chroma planes are then not exact halves (general bilinear resize).
    odd = rgb[:251, :383]
    wide = grey.astype(np.uint16) * 257 + (np.arange(w, dtype=np.uint16)[None, :] % 257)
    floats = (grey.astype(np.float32) - 100.0) / 37.5
    # Binary alpha: a disc, opaque inside (what a cut-out photo or a sprite has).
    yy, xx = np.mgrid[:h, :w]
    disc = np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.45 * h) ** 2, 255, 0).astype(np.uint8)
    # Version 2's array types (spec §2: sample types 4-8, up to 255 channels), from the same
    # picture: signed values on both sides of zero, 32-bit ranges, float64 on a coarse grid (its
    # lossless residual needs differences within 31 bits of the finest bit) and on a fine one.
    g = grey.astype(np.int64)
    column = np.arange(w, dtype=np.int64)[None, :]
    row = np.arange(h, dtype=np.int64)[:, None]
    arrays = {
        "i8": (g - 128).astype(np.int8),
        "i16": ((g - 120) * 200 + column % 97 - 48).astype(np.int16),
        "i32": ((g - 128) * (1 << 22) + column * 4099 - row * 7).astype(np.int32),
        "u32": (g * (1 << 24) + column * 65537 + row).astype(np.uint32),
        "f64": g.astype(np.float64) / 4.0 + 1000.0,
        "f32_unit": g.astype(np.float32) / 255,  # 8-bit samples as 0...1: on a grid of 1/255
        "f64_fine": (g.astype(np.float64) - 100.0) / 37.5 + np.sin(column / 7.0) * 1e-3,
        # Many channels: the RGB planes, grey, its negative, a ramp and two shifted greys.
        "u8x6": np.dstack([rgb, grey, 255 - grey, ramp]),
        "i16x5": np.dstack([(g - 128) * 100, (rgb[..., 0] - g) * 50, (rgb[..., 2] - g) * 50,
                            np.broadcast_to(column * 60 - 11000, g.shape),
                            np.broadcast_to(row * 90 - 11000, g.shape)]).astype(np.int16),
        "f32x8": np.dstack([np.roll(floats, 3 * i, axis=1) * (1 + i / 8) for i in range(8)]),
        "f32_centred": floats + np.linspace(-40, 40, w, dtype=np.float32)[None, :],
    }
    # Version 3: 16-bit RGB(A), the 8-bit picture widened with a ramp in the low bits (within
    # 0..65535), alpha a smooth ramp.
    low = (column % 251)[..., None] + (row % 7)[..., None]
    rgb16 = (rgb.astype(np.int64) * 257 - low).clip(0, 65535).astype(np.uint16)
    rgba16 = np.dstack([rgb16, (ramp.astype(np.uint16) * 257)[..., None]])
    # Version 7: 16-bit samples as noisy as the residual can get (uniform over the whole
    # range, a fixed seed), where the encoder writes wrapped residual blocks, and a sensor-like
    # frame: the 16-bit picture plus wide Gaussian noise, clipped.
    rng = np.random.default_rng(7)
    noise16 = rng.integers(0, 1 << 16, (h // 2, w // 2, 4), dtype=np.uint16)
    sensor = (wide.astype(np.float64) + rng.normal(0, 6000, wide.shape)).clip(0, 65535)
    version7 = {"u16_noise": noise16[..., 0], "rgb16_noise": noise16[..., :3],
                "rgba16_noise": noise16, "u16_sensor": np.rint(sensor).astype(np.uint16)}
    # A red/green overlay (blue constant), which the encoder codes channel by channel
    # (colour 0), with and without a cut-out's alpha.
    overlay = rgb.copy()
    overlay[..., 2] = 0
    return {"overlay": overlay, "overlay_cutout": np.dstack([overlay, disc]),
            "rgb16": rgb16, "rgba16": rgba16, "odd16": rgb16[:251, :383], **version7,
            "rgb": rgb, "grey": grey, "rgba": rgba, "odd": odd, "u16": wide, "f32": floats,
            "la": np.dstack([grey, 255 - grey]), "cutout": np.dstack([rgb, disc]), **arrays}


CASES = [
    # name, source, encode options, components to check besides all
    ("rgb_q20_auto", "rgb", {"quality": 20}, [1, 3]),
    ("rgb_q50_auto", "rgb", {"quality": 50}, [1, 5]),
    ("rgb_q75_auto", "rgb", {"quality": 75}, [2, 10]),
    ("rgb_q95_auto_444", "rgb", {"quality": 95}, [4]),
    ("rgb_q75_plain", "rgb", {"quality": 75, "layout": "plain"}, [1, 8, 30]),
    ("rgb_q90_plain_444", "rgb", {"quality": 90, "layout": "plain"}, [16]),
    ("rgb_q75_patch16", "rgb", {"quality": 75, "layout": "patch16"}, [1, 6]),
    ("rgb_q50_patch2", "rgb", {"quality": 50, "layout": "patch2"}, [1, 2]),
    ("rgb_q50_patch32", "rgb", {"quality": 50, "layout": "patch32"}, [3]),
    ("rgb_rank12_plain", "rgb", {"rank": 12}, [5]),
    ("odd_q60_auto", "odd", {"quality": 60}, [2]),
    ("odd_q60_plain", "odd", {"quality": 60, "layout": "plain"}, [7]),
    # colour 0 for 8-bit RGB(A): a constant colour channel kept exact (encoder.colours_apart)
    ("rgb_overlay_q60_apart", "overlay", {"quality": 60}, [1, 3]),
    ("rgba_overlay_q50_apart", "overlay_cutout", {"quality": 50}, [2]),
    ("rgba_q70_auto", "rgba", {"quality": 70, "exact_alpha": False}, [3]),
    # exact_alpha=False: version 1 (by default the encoder adds a residual making alpha exact).
    ("rgba_q95_plain", "rgba", {"quality": 95, "layout": "plain", "exact_alpha": False}, [9]),
    ("l_q30_auto", "grey", {"quality": 30}, [2]),
    ("l_q80_plain", "grey", {"quality": 80, "layout": "plain"}, [1, 20]),
    ("l_q80_patch16", "grey", {"quality": 80, "layout": "patch16"}, [5]),
    ("la_q70_auto", "la", {"quality": 70, "exact_alpha": False}, [2]),
    ("u16_q75_auto", "u16", {"quality": 75}, [3]),
    ("u16_q95_plain", "u16", {"quality": 95, "layout": "plain"}, [10]),
    ("f32_q75_auto", "f32", {"quality": 75}, [3]),
    ("f32_q90_plain", "f32", {"quality": 90, "layout": "plain"}, [12]),
    # Format version 2 (residual blocks, exact planes): bit-exact agreement is required.
    ("v2_l_lossless", "grey", {"max_error": 0}, [3]),
    ("v2_l_lossless_plain", "grey", {"max_error": 0, "layout": "plain"}, [1, 10]),
    ("v2_rgb_lossless", "rgb", {"max_error": 0}, [2]),
    ("v2_rgb_e2_plain", "rgb", {"max_error": 2, "layout": "plain"}, [5]),
    ("v2_rgb_e1_q95_444", "rgb", {"max_error": 1, "quality": 95}, [4]),
    ("v2_rgb_e3_patch16", "rgb", {"max_error": 3, "quality": 40, "layout": "patch16"}, [3]),
    ("v2_odd_e1", "odd", {"max_error": 1, "quality": 60}, [2]),
    ("v2_rgba_cutout_lossless", "cutout", {"max_error": 0}, [3]),
    ("v2_rgba_cutout_e4", "cutout", {"max_error": 4, "quality": 50}, [2]),
    # alpha alone has residual blocks, over no layer: a preview applies them (spec §5.3)
    ("v2_rgba_exact_alpha", "rgba", {"quality": 70}, [3]),
    ("v2_la_e1", "la", {"max_error": 1, "quality": 75}, [2]),  # L over a layer, alpha without
    ("v2_u16_e2", "u16", {"max_error": 2, "quality": 75}, [3]),
    ("v2_u16_lossless_plain", "u16", {"max_error": 0, "layout": "plain"}, [6]),
    ("v2_f32_e001", "f32", {"max_error": 0.01}, [3]),
    ("v2_f32_e0001_plain", "f32", {"max_error": 0.001, "layout": "plain", "quality": 90}, [8]),
    # Format version 2's arrays: sample types 4-8 (lossless and bounded), centred columns (MEAN),
    # 5-8 channels. Bit-exact agreement, at every k.
    ("v2_i8_lossless", "i8", {"max_error": 0, "quality": 90}, [2]),
    ("v2_i8_lossless_rank0", "i8", {"max_error": 0}, []),
    ("v2_i8_q60", "i8", {"quality": 60, "layout": "plain"}, [4]),
    ("v2_i8_e2", "i8", {"max_error": 2, "quality": 50}, [3]),
    ("v2_i16_e3", "i16", {"max_error": 3, "quality": 75}, [3]),
    ("v2_i16_lossless_plain", "i16", {"max_error": 0, "layout": "plain"}, [5]),
    ("v2_i32_lossless", "i32", {"max_error": 0}, [2]),
    ("v2_i32_e1000_plain", "i32", {"max_error": 1000, "layout": "plain"}, [6]),
    ("v2_u32_e7", "u32", {"max_error": 7, "quality": 80}, [3]),
    ("v2_u32_q75", "u32", {"quality": 75}, [1]),
    ("v2_u32_lossless_plain", "u32", {"max_error": 0, "layout": "plain"}, [2]),
    ("v2_f64_lossless", "f64", {"max_error": 0, "quality": 90}, [2]),
    ("v2_f32_unit_lossless_rank0", "f32_unit", {"max_error": 0}, []),
    ("v2_f64_e1e-6_plain", "f64_fine", {"max_error": 1e-6, "layout": "plain"}, [5]),
    ("v2_f64_q85", "f64_fine", {"quality": 85}, [3]),
    ("v2_f32_centred", "f32_centred", {"centre": True, "quality": 80}, [0, 4]),
    ("v2_f64_centred_e1e-4", "f64_fine", {"centre": True, "max_error": 1e-4}, [0, 3]),
    ("v2_i16_centred_lossless", "i16", {"centre": True, "max_error": 0}, [2]),
    ("v2_u8x6_lossless", "u8x6", {"max_error": 0}, [3]),
    ("v2_u8x6_q70_plain", "u8x6", {"quality": 70, "layout": "plain"}, [5]),
    ("v2_i16x5_e2", "i16x5", {"max_error": 2, "quality": 75}, [2]),
    ("v2_f32x8_e001", "f32x8", {"max_error": 0.01, "quality": 60}, [3]),
    ("v2_f32x8_centred", "f32x8", {"centre": True, "quality": 70}, [2]),
    # Format version 3: Y'CbCr of 16-bit RGB(A), 4:2:0 and 4:4:4, odd sizes, alpha exact by
    # default, residuals; bit-exact agreement at every k.
    ("v3_rgb16_q75", "rgb16", {"quality": 75}, [2, 8]),
    ("v3_rgb16_q95_444", "rgb16", {"quality": 95}, [4]),
    ("v3_rgb16_q60_plain", "rgb16", {"quality": 60, "layout": "plain"}, [5]),
    ("v3_odd16_q60", "odd16", {"quality": 60}, [3]),
    ("v3_rgba16_q70", "rgba16", {"quality": 70}, [3]),
    ("v3_rgb16_e64", "rgb16", {"max_error": 64}, [2]),
    ("v3_rgb16_lossless", "rgb16", {"max_error": 0, "quality": 90}, [1]),
    # Format version 4: the deblocking filter the encoder chooses (8-bit patch layouts), under
    # residual blocks too, 4:2:0 (period 2p) and 4:4:4, patch 2 (period 2), odd sizes; bit-exact
    # agreement at every k. These are encoded with deblock=True, the cases above with
    # deblock=False (see main), so that they keep the versions they test.
    ("v4_rgb_q30_auto", "rgb", {"quality": 30}, [1, 3]),
    ("v4_rgb_q75_auto", "rgb", {"quality": 75}, [2]),
    ("v4_rgb_q50_patch2", "rgb", {"quality": 50, "layout": "patch2"}, [1]),
    ("v4_rgb_q75_patch16", "rgb", {"quality": 75, "layout": "patch16"}, [3]),
    ("v4_rgb_q90_444", "rgb", {"quality": 90}, [4]),
    ("v4_odd_q40_auto", "odd", {"quality": 40}, [2]),
    ("v4_l_q30_auto", "grey", {"quality": 30}, [2]),
    ("v4_rgba_q50_exact_alpha", "rgba", {"quality": 50}, [3]),
    ("v4_rgb_e3", "rgb", {"max_error": 3, "quality": 40}, [2]),
    ("v4_la_q40_auto", "la", {"quality": 40, "exact_alpha": False}, [2]),
    # Format version 6: adaptive quantization per patch of plane 0 (aq=True), with and without
    # the deblocking filter, effort 2, 4:2:0 and 4:4:4, grey, odd sizes, residual blocks over
    # it, a preview below and above the map's components (K = 4); bit-exact at every k.
    ("v6_rgb_q30_aq", "rgb", {"quality": 30, "aq": True}, [1, 2, 5]),
    ("v6_rgb_q60_aq_deblock", "rgb", {"quality": 60, "aq": True, "deblock": True}, [3]),
    ("v6_rgb_q50_aq_effort2", "rgb", {"quality": 50, "aq": True, "effort": 2}, [2]),
    ("v6_rgb_q92_aq_444", "rgb", {"quality": 92, "aq": True}, [4]),
    ("v6_odd_q40_aq", "odd", {"quality": 40, "aq": True}, [2]),
    ("v6_l_q20_aq_patch4", "grey", {"quality": 20, "aq": True, "layout": "patch4"}, [1]),
    ("v6_rgb_e3_aq", "rgb", {"max_error": 3, "quality": 40, "aq": True}, [2]),
    # Both tools of version 6 in one file (an adapted plane 0 and an RSTR chunk, after the
    # deblocking filter): the map's product, then the filters.
    ("v6_rgb_q40_aq_restore", "rgb", {"quality": 40, "aq": True, "restore": True,
                                      "deblock": True}, [2, 5]),
    # Format version 6: the restoration filter the encoder fits (restore=True, after the
    # deblocking filter; at quality 90, 4:4:4, it does not repay its bytes on this picture),
    # odd sizes, grey, under residual blocks and alpha.
    ("v6r_rgb_q30_restore", "rgb", {"quality": 30, "restore": True}, [1, 3]),
    ("v6r_rgb_q60_restore", "rgb", {"quality": 60, "restore": True}, [2]),
    ("v6r_rgb_q85_restore", "rgb", {"quality": 85, "restore": True}, [4]),
    ("v6r_odd_q40_restore", "odd", {"quality": 40, "restore": True}, [2]),
    ("v6r_l_q30_restore", "grey", {"quality": 30, "restore": True}, [2]),
    ("v6r_rgba_q50_restore", "rgba", {"quality": 50, "restore": True}, [3]),
    ("v6r_rgb_e3_restore", "rgb", {"max_error": 3, "quality": 40, "restore": True}, [2]),
    # Format version 7: wrapped residual blocks (q and the samples modulo 2^16) of 16-bit noise
    # over no layer (rank 0), with red and blue referring to green, under an exact alpha beside
    # a bound, and over a layer (the sensor frame at rank 3; at the default, whose layer does
    # not pay, over none).
    ("v7_u16_noise_lossless", "u16_noise", {"max_error": 0}, []),
    ("v7_rgb16_noise_lossless", "rgb16_noise", {"max_error": 0}, []),
    ("v7_rgba16_noise_e3", "rgba16_noise", {"max_error": 3}, []),
    ("v7_u16_sensor_lossless", "u16_sensor", {"max_error": 0}, []),
    ("v7_u16_sensor_lossless_rank3", "u16_sensor", {"max_error": 0, "rank": 3}, [1, 2]),
]


def truncated_sources(images: dict[str, np.ndarray]) -> list[tuple[str, bytes]]:
    """Files to cut for the truncated="fill" fixtures: whatever the file's parts, a cut among
    them gives zeros, a preview of the first k components (a plane of 2^18 samples or more
    stores components 0, 1-15 and the rest in separate groups, spec §4), the residual blocks of
    some rows (blocks of a few rows here, where the encoder's hold 4 Mi samples: as valid, and a
    cut falls between and inside them; with a reference channel; wrapped, version 7) or all."""
    grey, rgb = images["grey"], images["rgb"]
    before = tuning.RESIDUAL_BLOCK_SAMPLES
    try:
        tuning.RESIDUAL_BLOCK_SAMPLES = 8 * 48
        rows = svdcodec.encode(rgb[:40, :48], max_error=0, quality=75, deblock=False)
        tuning.RESIDUAL_BLOCK_SAMPLES = 6 * 32
        wrapped = svdcodec.encode(images["rgb16_noise"][:24, :32], max_error=0)
        many = svdcodec.encode(images["i16x5"][:30, :32], max_error=2, quality=75)
    finally:
        tuning.RESIDUAL_BLOCK_SAMPLES = before
    return [
        ("cut_l_groups", svdcodec.encode(np.tile(grey, (2, 2)), quality=75, layout="patch8",
                                         deblock=False)),
        ("cut_rgb_groups", svdcodec.encode(np.tile(rgb, (2, 2, 1)), quality=60, layout="patch8",
                                           deblock=False)),
        ("cut_rgb_residual_rows", rows),
        ("cut_rgb16_wrapped", wrapped),
        ("cut_i16x5_e2", many),
        ("cut_rgba_exact_alpha", svdcodec.encode(images["rgba"][:48, :64], quality=50,
                                                 deblock=False)),
        ("cut_rgb_aq", svdcodec.encode(rgb[:128, :192], quality=30, aq=True, deblock=False)),
        ("cut_rgb_restore", svdcodec.encode(rgb[:96, :128], quality=50, restore=True)),
        ("cut_f32_centred", svdcodec.encode(images["f32_centred"][:64, :96], quality=80,
                                            centre=True, deblock=False)),
        ("cut_l_metadata", svdcodec.encode(grey[:40, :56], quality=60, deblock=False,
                                           text={"Title": "cut short"}, xmp=b"<x/>")),
        ("cut_rgb_aq_map", map_components_last(np.tile(rgb, (2, 2, 1)))[0]),
    ]


def map_components_last(image: np.ndarray) -> tuple[bytes, int]:
    """An aq=True file of `image` (its Y' plane of 2^18 samples or more) whose Y' U blocks come
    in component groups 0, 1, 2.. (as valid as the encoder's 0, 1-15: spec §4), those from
    component 2 on in chunks of their own after every other block, and the byte where they
    start: a cut there leaves the adapted plane's map (§5.5) 2 of its K' components, the
    others read as 0 (spec §1, "A file that ends early"). tests/test_truncated.py holds the
    reference to it; truncated.test.js holds js/svdi.js to the reference."""
    groups = encoder_blocks.component_groups

    def finer(rank: int, small: bool = False) -> list[tuple[int, int]]:
        return groups(rank, small) if small or rank <= 2 else [(0, 1), (1, 2), (2, rank)]
    encoder_blocks.component_groups = encoder_plane.component_groups = finer
    try:
        data = svdcodec.encode(image, quality=75, aq=True, deblock=False)
    finally:
        encoder_blocks.component_groups = encoder_plane.component_groups = groups
    c = unpack(data)
    assert c.planes[0].aq[0] > 2 and c.planes[0].rank > c.planes[0].aq[0]

    def last(b: Block) -> bool:
        return b.factor == "U" and b.plane == 0 and b.first >= 2
    head = pack_header(c.header, c.planes) + b"".join(factor_chunks(
        [(b.factor, pack_record(b, 1)) for b in c.blocks if not last(b)]))
    tail = b"".join(factor_chunks([(b.factor, pack_record(b, 1)) for b in c.blocks if last(b)]))
    return head + tail + END, len(head)


def chunk_spans(data: bytes) -> list[tuple[str, int, int]]:
    """(type, first byte, byte after the CRC) of each chunk of a whole file."""
    spans, pos = [], len(svdcodec.SIGNATURE)
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        spans.append((data[pos + 4:pos + 8].decode(), pos, pos + 12 + length))
        pos += 12 + length
    return spans


def cut_points(data: bytes) -> list[int]:
    """Cuts in the signature, in HEAD and PLAN, and in every other chunk: inside its 8-byte
    header, with its header in and its payload not, halfway, without the CRC's last byte, and
    at its end (where the next chunk's header is expected)."""
    cuts = {4, 20}
    for kind, a, b in chunk_spans(data):
        if kind in ("HEAD", "PLAN"):
            cuts.add(b - 1)
            continue
        cuts.update((a + 4, a + 8, a + 10, (a + b) // 2, b - 1, b))
    cuts.update(components_cuts(data))
    return sorted(c for c in cuts if c < len(data))


def components_cuts(data: bytes) -> tuple[int, int]:
    """Where components= is asked of a cut as well (halfway, and in the last chunk but IEND)."""
    return len(data) // 2, len(data) - 20


def truncated_fixtures(out: Path, images: dict[str, np.ndarray]) -> list[dict]:
    """Each file's cuts decoded by svdcodec.decode(part, truncated="fill") (and by default, which
    must refuse them): the expected array (one .npy per distinct result) or the error message."""
    listing = []
    for name, data in truncated_sources(images):
        (out / f"{name}.svdi").write_bytes(data)
        ranks = max(p.rank for p in unpack(data).planes)
        cuts = []
        for at in cut_points(data):
            for components in (None, 1, ranks + 1000):
                if components is not None and at not in components_cuts(data):
                    continue  # components= at two cuts of each file
                case: dict = {"at": at, "components": components}
                try:
                    svdcodec.decode(data[:at])
                except svdcodec.SvdiError as exc:
                    case["default_error"] = str(exc)
                else:
                    raise AssertionError(f"{name}: a cut at {at} decoded by default")
                try:
                    pixels = svdcodec.decode(data[:at], truncated="fill", components=components)
                except svdcodec.SvdiError as exc:
                    case["error"] = str(exc)
                else:
                    digest = hashlib.sha1(pixels.tobytes() + str(pixels.dtype).encode()
                                          + str(pixels.shape).encode()).hexdigest()[:12]
                    case["expected"] = f"{name}.cut-{digest}.npy"
                    if not (out / case["expected"]).exists():
                        np.save(out / case["expected"], pixels)
                    truncation = unpack(data[:at], truncated=True).truncation
                    assert truncation is not None
                    case["arrived"] = truncation.arrived(unpack(data).planes,
                                                         bool(unpack(data[:at],
                                                                     truncated=True).residuals))
                cuts.append(case)
        listing.append({"name": name, "file": f"{name}.svdi", "bytes": len(data), "cuts": cuts})
    return listing


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else ROOT / "js" / "test-artifacts" / "fixtures"
    out.mkdir(parents=True, exist_ok=True)
    images = sources()
    listing = []
    for name, source, options, components in CASES:
        # Version 4's cases ask for the deblocking filter; the others keep the versions they
        # test: deblock=False, since the encoder's default (deblock=True) would filter them.
        options = {**options, "deblock": name.startswith(("v4_", "v6r_")) or "deblock" in options}
        data = svdcodec.encode(images[source], **options)
        (out / f"{name}.svdi").write_bytes(data)
        expected = svdcodec.decode(data)
        np.save(out / f"{name}.npy", expected)
        for k in components:
            np.save(out / f"{name}.k{k}.npy", svdcodec.decode(data, components=k))
        factors = svdcodec.read_factors(data)
        planes = [f.layout for f in factors]
        version = int.from_bytes(data[16:18], "big")  # HEAD's first field (spec §2)
        entry = {"name": name, "file": f"{name}.svdi", "expected": f"{name}.npy",
                 "components": components, "dtype": str(expected.dtype),
                 "shape": list(expected.shape), "options": options, "layouts": planes,
                 "bytes": len(data), "version": version,
                 # read_factors' S of every plane (binary32 values, exact in JSON's binary64)
                 "sigma": [[float(x) for x in f.S] for f in factors]}
        if unpack(data).residuals:  # the bound the residual blocks promise is checked too
            entry["source"] = f"{name}.source.npy"
            np.save(out / entry["source"], images[source])
        if options.get("centre"):  # read_factors' column means of every plane (PlaneFactors.mean)
            entry["means"] = f"{name}.means.npy"
            np.save(out / entry["means"], np.stack([f.mean for f in factors]))
        listing.append(entry)
    truncated = truncated_fixtures(out, images)
    (out / "fixtures.json").write_text(json.dumps({"fixtures": listing, "truncated": truncated},
                                                  indent=1))
    print(f"{len(listing)} fixtures and {sum(len(t['cuts']) for t in truncated)} cuts of "
          f"{len(truncated)} files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
