"""What a .svdi file holds, plane by plane: the report behind svdi-info.

It answers the lecture's "Xapprox has the same size as X: where is the compression?" with the
file's own numbers: each plane's matrix m x n, its rank r, and the r(m + n + 1) factor entries
stored instead of m n samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import format as container
from ..codec.aq import binary16
from ..decoder import factor_scale, kept_sigma
from ..format.residual_table import (
    RECORD,
    ResidualTable,
    element_dtype,
    wrapped_element,
)
from ..modes import PILLOW_MODES

EXPLANATION = ("The decoded image has the full size; the file stores r·(m+n+1) numbers per plane "
               "(fewer than its m·n samples where the rank is low), quantized to small "
               "integers, most of them 0, which the entropy coder packs into the bytes above.")


#: Kept singular values svdi-info prints per plane (all of them in --json).
SIGMA_SHOWN = 6


WIDE_NOTE = " (8 bits through Pillow; 16 through svdcodec.decode and svdi-decode)"


def pillow_mode_text(h: container.Header) -> str | None:
    """The mode Pillow opens the image in: its own mode, or for 16-bit colour (Pillow has none)
    RGB/RGBA at 8 bits; None where only svdcodec.decode reads it."""
    mode = PILLOW_MODES.get((h.dtype, h.channels))
    if mode is None and h.dtype == np.uint16 and h.channels in (3, 4):
        return "RGB" if h.channels == 3 else "RGBA"
    return mode


def _kept_sigma(unpacked: container.Container, plane: container.Plane) -> list[float | None]:
    """The plane's kept singular values, in read_factors' units (`factor_scale`); None for
    one that overflows float64 (a hostile file's sigma times its scale: JSON has no
    infinity, and strict parsers refuse Python's "Infinity")."""
    with np.errstate(over="ignore"):
        sigma = kept_sigma(unpacked, plane).astype(float) * factor_scale(unpacked.header)
    return [float(s) if np.isfinite(s) else None for s in sigma]


def _plane_report(plane: container.Plane, blocks: list[container.Block]) -> dict[str, Any]:
    m, n = plane.matrix_shape
    return {
        "index": plane.index,
        "layout": "plain" if plane.layout == container.LAYOUT_PLAIN else f"patch{plane.patch}",
        "plane_shape": [plane.height, plane.width],
        "matrix_shape": [m, n],
        "rank": plane.rank,
        "step": plane.step,
        "stored_entries": plane.rank * (m + n + 1),
        "raw_entries": m * n,
        "bytes": {f: sum(b.stored for b in blocks if b.factor == f) for f in "USV"},
        # "form": zstd (a chunk's frame, versions 1-4), magicless or stored (version 5 records)
        "blocks": [{"factor": b.factor, "first": b.first, "count": b.count, "bytes": b.stored,
                    "coding": "dense" if b.coding == container.DENSE else "sparse",
                    "form": b.form} for b in blocks],
    }


def _metadata_report(meta: container.Metadata | None) -> dict[str, Any]:
    """Which metadata the file holds and the bytes each kind takes in the file."""
    if meta is None:
        return {}
    chunk_bytes = {"exif": "eXIf", "icc_profile": "iCCP", "xmp": "xMPd", "dpi": "pHYs",
                   "text": "iTXt"}
    out: dict[str, Any] = {}
    for key, value in meta.as_dict().items():
        entry: dict[str, Any] = {"bytes": meta.sizes[chunk_bytes[key]]}
        if key == "dpi":
            entry["dpi"] = list(value)
        elif key == "text":
            entry["keywords"] = sorted(value)
        else:
            entry["size"] = len(value)  # the ICC profile's size decompressed
        out[key] = entry
    return out


def info_report(name: str, data: bytes, residual_blocks: bool = True) -> dict[str, Any]:
    """Everything svdi-info shows, as plain data (the --json output). A file that ends early
    is described as far as it arrived: "truncated" says where it ends and what a decode of it
    gives (None for a whole file); its planes' blocks and σ are those that arrived.
    "residual_channels" sums each channel's residual blocks up; "residuals" lists them one by
    one (None with residual_blocks=False: the summary alone, for a file of many blocks)."""
    unpacked = container.unpack(data, truncated=True)
    residuals = _residual_records(unpacked)
    cut = unpacked.truncation
    h = unpacked.header
    pixels = h.width * h.height
    raw = pixels * h.channels * h.dtype.itemsize
    by_plane: dict[int, list[container.Block]] = {p.index: [] for p in unpacked.planes}
    for b in unpacked.blocks:  # (one pass: a file may hold 255 planes and 10^5 blocks)
        by_plane[b.plane].append(b)
    planes = [_plane_report(p, by_plane[p.index]) for p in unpacked.planes]
    for report, p in zip(planes, unpacked.planes):
        report["sigma"] = _kept_sigma(unpacked, p)
        means = unpacked.means.get(p.index)  # centred columns (MEAN, version 2)
        report["centred"] = means is not None
        report["deblock"] = list(p.deblock) if p.filtered else None  # version 4 (spec §5.4)
        # version 6 (spec §5.5): adaptive quantization's K and G
        report["aq"] = {"components": p.aq[0], "g": binary16(p.aq[1])} if p.adapted else None
        if means is not None:
            report["mean_bytes"] = len(means.frame) + 13
    return {
        "file": name, "format_version": h.version, "width": h.width, "height": h.height,
        "mode": pillow_mode_text(h), "channels": h.channels,
        "sample_type": str(h.dtype), "scale": h.scale,
        "colour": "YCbCr" if h.colour == container.COLOUR_YCBCR else "none",
        "subsampling": "4:2:0" if h.subsampling else "4:4:4",
        "planes": planes, "residual_channels": _residual_channels(residuals),
        "residuals": _residual_report(unpacked, residuals) if residual_blocks else None,
        "restoration": {str(i): {"bounds": list(r.bounds),  # version 6 (spec §5.6)
                                 "coefficients": [list(c) for c in r.coefficients]}
                        for i, r in sorted(unpacked.restoration.items())},
        "metadata": _metadata_report(unpacked.metadata), "file_bytes": len(data),
        "truncated": None if cut is None else {
            "where": cut.where(), "chunk": cut.chunk, "chunk_start": cut.start,
            "components": list(cut.components), "residual_rows": cut.residual_rows,
            "arrived": cut.arrived(unpacked.planes, bool(unpacked.residuals))},
        "header_bytes": len(data) - sum(b.stored for b in unpacked.blocks)
        - int(residuals[1].sum()),
        "raw_bytes": raw, "compression_ratio": raw / len(data),
        "bits_per_pixel": 8 * len(data) / pixels,
    }


def _residual_records(unpacked: container.Container) -> tuple[np.ndarray, np.ndarray]:
    """The residual blocks' records (`ResidualTable.records`, file order) and each block's
    bytes in the file (its chunk's), read at once: no object per block."""
    table = unpacked.residuals
    if not table:  # (a file without RBLK: an empty list)
        return np.zeros(0, RECORD), np.zeros(0, np.int64)
    assert isinstance(table, ResidualTable)
    return table.records(), table.stored()


def _residual_channels(residuals: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    """Each channel's residual blocks summed up, by channel: their count and bytes, the largest
    bound, the first block's step and reference."""
    records, stored = residuals
    order = np.argsort(records["channel"], kind="stable")
    channels = records["channel"][order]
    cuts = np.flatnonzero(np.diff(channels)) + 1
    summary = []
    for mine in np.split(order, cuts) if len(order) else []:
        first = records[mine[0]]
        summary.append({
            "channel": int(first["channel"]), "blocks": len(mine),
            "bytes": int(stored[mine].sum()), "max_error": float(records["bound"][mine].max()),
            "step": float(first["step"]),
            "reference": (None if first["reference"] == container.NO_REFERENCE
                          else int(first["reference"]))})
    return summary


def _residual_report(unpacked: container.Container,
                     residuals: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    """The residual blocks (version 2): one entry per block, in file order."""
    records, stored = residuals
    names = {code: _element_text(code, unpacked.header)
             for code in np.unique(records["element"]).tolist()}
    # (the records as Python values a slice at a time: a tuple each is more than the entry)
    return [{"channel": channel, "first_row": first, "rows": rows, "step": step,
             "bound": bound, "element_type": names[element],
             "predictor": predictor,
             "reference": None if reference == container.NO_REFERENCE else reference,
             "bytes": size}
            for at in range(0, len(records), 4096)
            for (channel, reference, first, rows, step, bound, element, predictor), size
            in zip(records[at:at + 4096].tolist(), stored[at:at + 4096].tolist())]


def _element_text(code: int, header: container.Header) -> str:
    """An RBLK's element type as svdi-info names it ("int8" ... "wrapped int16")."""
    element = element_dtype(code, header).newbyteorder("=")
    return ("wrapped " if wrapped_element(code, header) else "") + str(element)


def _residual_text(channels: list[dict[str, Any]], blocks: list[dict[str, Any]] | None,
                   verbose: bool) -> list[str]:
    if not channels:
        return []
    mine: dict[int, list[dict[str, Any]]] = {}
    for b in blocks if verbose and blocks else []:  # one pass: 255 channels of many blocks
        mine.setdefault(b["channel"], []).append(b)
    lines = ["  residual blocks (every sample within the bound of its channel):"]
    for c in channels:
        bound, ref = c["max_error"], c["reference"]
        lines.append(f"    channel {c['channel']}: max error {bound:g}"
                     f"{' (lossless)' if bound == 0 else ''}, step {c['step']:g}, "
                     f"{c['blocks']} block(s), {c['bytes']} B"
                     + (f", less channel {ref}'s residual" if ref is not None else ""))
        lines += [f"      rows {b['first_row']}..{b['first_row'] + b['rows']}: "
                  f"{b['element_type']}, predictor {b['predictor']}, {b['bytes']} B"
                  for b in mine.get(c["channel"], [])]
    return lines


def _plane_text(p: dict[str, Any], verbose: bool) -> list[str]:
    (ph, pw), (m, n), r = p["plane_shape"], p["matrix_shape"], p["rank"]
    b = p["bytes"]
    lines = [(f"  plane {p['index']}: {p['layout']}, plane {pw}x{ph} (w x h) -> "
             f"matrix m x n = {m}x{n}, rank r = {r}, step {p['step']:.4g}"),
             f"    blocks: U {b['U']} B, S {b['S']} B, V {b['V']} B",
             (f"    stores r·(m+n+1) = {r}·({m}+{n}+1) = {p['stored_entries']} factor entries "
             f"for m·n = {p['raw_entries']} samples "
             f"({100 * p['stored_entries'] / p['raw_entries']:.1f}%)")]
    lines.append(_sigma_text(p["sigma"]))
    if p.get("centred"):
        lines.append(f"    centred: the {n} column means stored ({p['mean_bytes']} B) and added "
                     "back; the factors are the matrix's PCA")
    if p.get("deblock"):
        alpha, beta, tc = p["deblock"]
        lines.append(f"    deblocking filter across the patch edges: alpha {alpha}, beta {beta}, "
                     f"tc {tc} (8-bit levels)")
    if p.get("aq"):
        lines.append(f"    adaptive quantization per patch: the map from components "
                     f"1..{p['aq']['components'] - 1} of the patches above, G {p['aq']['g']:g}")
    if verbose:
        lines += [f"      {blk['factor']}[{blk['first']}:{blk['first'] + blk['count']}] "
                  f"{blk['bytes']} B, {blk['coding']}"
                  + (", stored" if blk["form"] == "stored" else "") for blk in p["blocks"]]
    return lines


def _sigma_text(sigma: list[float | None]) -> str:
    shown = ", ".join("overflow" if s is None else f"{s:.4g}" for s in sigma[:SIGMA_SHOWN])
    more = ", ..." if len(sigma) > SIGMA_SHOWN else ""
    return f"    kept σ ({len(sigma)}): {shown}{more}" if sigma else "    kept σ: none"


def info_text(report: dict[str, Any], verbose: bool = False) -> str:
    """The human-readable svdi-info output."""
    r = report
    colour = ("Y'CbCr (JFIF full range)" if r["colour"] == "YCbCr" else "none")
    sub = ("4:2:0 (chroma planes halved in both directions)" if r["subsampling"] == "4:2:0"
           else "4:4:4 (none)")
    depth = WIDE_NOTE if r["mode"] in ("RGB", "RGBA") and r["sample_type"] == "uint16" else ""
    cut = r.get("truncated")
    lines = [f"{r['file']}: .svdi format version {r['format_version']}"
             + (" -- TRUNCATED: described as far as it arrived" if cut else ""),
             (f"  image: {r['width']}x{r['height']}, mode {r['mode'] or 'none (numpy only)'}"
             f"{depth}, "
             f"{r['channels']} channel(s) of {r['sample_type']}"),
             f"  colour transform: {colour}; chroma subsampling: {sub}"]
    if verbose:
        lines.append(f"  sample scale: {r['scale']:.6g}; headers: {r['header_bytes']} bytes")
    meta = r.get("metadata") or {}
    names = {"exif": "EXIF", "icc_profile": "ICC profile", "xmp": "XMP", "dpi": "DPI",
             "text": "text"}
    parts = []
    for key, entry in meta.items():
        if key == "dpi":
            detail = "x".join(f"{v:g}" for v in entry["dpi"])
        elif key == "text":
            detail = ", ".join(entry["keywords"])
        else:
            detail = f"{entry['size']} bytes"
        parts.append(f"{names[key]} {detail} ({entry['bytes']} B in the file)")
    lines.append(f"  metadata: {'; '.join(parts) if parts else 'none'}")
    for p in r["planes"]:
        lines += _plane_text(p, verbose)
    lines += _residual_text(r.get("residual_channels") or [], r.get("residuals"), verbose)
    for plane, f in (r.get("restoration") or {}).items():  # version 6 (spec §5.6)
        lines.append(f"  restoration filter on plane {plane}: {len(f['coefficients'])} "
                     f"activity class(es), bounds {f['bounds']}")
    if cut:
        lines.append(f"  truncated: {cut['where']}; a decode gives {cut['arrived']}")
    lines += [(f"  total: {r['file_bytes']} bytes in the file vs {r['raw_bytes']} bytes of raw "
              f"pixels: {r['compression_ratio']:.2f}:1 ({r['bits_per_pixel']:.3f} bits/pixel)"),
              f"  {EXPLANATION}"]
    return "\n".join(lines)
