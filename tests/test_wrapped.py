"""Wrapped residual blocks (format version 7, spec §4.1, §5.3): 16-bit residuals modulo 2^16, so
that lossless 16-bit noise is no larger than its raw samples, on every decode path."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from support import photo

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as container
from svdcodec.decoder import residuals as residual_phase
from svdcodec.decoder.reference import decode_reference
from svdcodec.encoder.residual import (
    ResidualRequest,
    bare_residual_bytes,
    wrappable_rows,
)

VECTORS = Path(__file__).resolve().parents[1] / "spec" / "vectors"

#: Bytes a small file spends besides its samples: signature, HEAD and IEND, then per channel its
#: PLAN, its RBLK's fields and the zstd frame's headers (raw blocks of incompressible data).
FILE_OVERHEAD, CHANNEL_OVERHEAD = 100, 120


def noise(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(int(info.min), int(info.max) + 1, shape,
                                                dtype=dtype)


def decoded_everywhere(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """The samples of `data`, checked equal from the decoder and the reference decoder."""
    out = svdcodec.decode(data).reshape(shape)
    np.testing.assert_array_equal(decode_reference(data).reshape(shape), out)
    return out


@pytest.mark.parametrize(("shape", "dtype"), [((64, 48), np.uint16), ((64, 48), np.int16),
                                              ((40, 36, 3), np.uint16), ((40, 36, 4), np.uint16),
                                              ((33, 20, 2), np.uint16)])
def test_lossless_noise_is_no_larger_than_raw(shape: tuple[int, ...], dtype: type) -> None:
    image = noise(shape, dtype)
    data = svdcodec.encode(image, max_error=0)
    channels = shape[2] if len(shape) == 3 else 1
    assert len(data) <= image.nbytes + FILE_OVERHEAD + channels * CHANNEL_OVERHEAD
    np.testing.assert_array_equal(decoded_everywhere(data, shape), image)


def test_uint16_noise_is_version_7_with_wrapped_blocks() -> None:
    image = noise((64, 48), np.uint16, seed=1)
    unpacked = container.unpack(svdcodec.encode(image, max_error=0))
    assert unpacked.header.version == container.WRAPPED_VERSION
    assert unpacked.residuals and all(b.wrapped for b in unpacked.residuals)
    assert all(p.rank == 0 for p in unpacked.planes)  # the layer did not pay for itself


def test_rgb16_noise_wraps_the_referencing_channels() -> None:
    """Red and blue refer to green's q: the decoded (reduced) q, whichever blocks are wrapped."""
    image = noise((30, 26, 3), np.uint16, seed=2)
    data = svdcodec.encode(image, max_error=0)
    blocks = container.unpack(data).residuals
    assert {b.reference for b in blocks if b.channel != 1} == {1}
    assert any(b.wrapped for b in blocks)
    np.testing.assert_array_equal(decoded_everywhere(data, image.shape), image)


def test_svdi_info_reports_residual_blocks_by_channel_and_one_by_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """svdi-info's report of residual blocks, read from their records at once: each
    channel's count, bytes, largest bound, first step and reference, as the blocks themselves
    give them; each block (--json, --verbose) with its fields, wrapped blocks named so; the
    summary alone without --verbose (residual_blocks=False)."""
    from svdcodec.cli.info import info_report, info_text
    from svdcodec.cli.tools import info_main

    image = noise((30, 26, 3), np.uint16, seed=2)
    data = svdcodec.encode(image, max_error=0)
    blocks = list(container.unpack(data).residuals)
    report = info_report("x.svdi", data)
    assert report["residuals"] == [
        {"channel": b.channel, "first_row": b.first, "rows": b.rows, "step": b.step,
         "bound": b.bound,
         "element_type": ("wrapped int16" if b.wrapped else str(b.element.newbyteorder("="))),
         "predictor": b.predictor,
         "reference": None if b.reference == container.NO_REFERENCE else b.reference,
         "bytes": b.stored} for b in blocks]
    assert any(b["element_type"] == "wrapped int16" for b in report["residuals"])
    summary = []
    for c in sorted({b.channel for b in blocks}):
        mine = [b for b in blocks if b.channel == c]
        summary.append({"channel": c, "blocks": len(mine), "bytes": sum(b.stored for b in mine),
                        "max_error": max(b.bound for b in mine), "step": mine[0].step,
                        "reference": None if mine[0].reference == container.NO_REFERENCE
                        else mine[0].reference})
    assert report["residual_channels"] == summary and {s["reference"] for s in summary} == {None, 1}
    assert report["header_bytes"] == len(data) - sum(b.stored for b in blocks) - sum(
        b.stored for b in container.unpack(data).blocks)
    short = info_report("x.svdi", data, residual_blocks=False)
    assert short["residuals"] is None and short["residual_channels"] == summary
    text, verbose = info_text(short), info_text(report, verbose=True)
    assert text == info_text(report) and "predictor" not in text
    for c in summary:
        assert (f"    channel {c['channel']}: max error 0 (lossless), step 1, {c['blocks']} "
                f"block(s), {c['bytes']} B") in text
    assert verbose.count(", predictor ") == len(blocks)
    path = tmp_path / "x.svdi"
    path.write_bytes(data)
    capsys.readouterr()
    assert info_main([str(path), "--verbose"]) == 0
    assert capsys.readouterr().out.count(", predictor ") == len(blocks)
    assert info_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert ", predictor " not in out and f"{summary[0]['blocks']} block(s)" in out


def test_sixteen_bit_noise_within_a_bound() -> None:
    image = noise((48, 40, 4), np.uint16, seed=3)
    data = svdcodec.encode(image, max_error=3)
    out = decoded_everywhere(data, image.shape).astype(np.int64)
    error = np.abs(out - image.astype(np.int64))
    assert error[..., :3].max() <= 3 and error[..., 3].max() == 0  # alpha exact by default


def test_photo_like_sixteen_bit_files_keep_their_version() -> None:
    """A smooth 12-bit picture's residuals fit int16 unwrapped: the file stays version 5."""
    yy, xx = np.mgrid[0:64, 0:80]
    image = (2000 + 1500 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.uint16)
    data = svdcodec.encode(image, max_error=0)
    assert container.unpack(data).header.version == container.WRITTEN_VERSION
    np.testing.assert_array_equal(svdcodec.decode(data), image)


def test_lossy_noise_keeps_its_layer() -> None:
    """Without a residual on every channel (lossy RGBA: alpha exact alone) the encoder never
    drops the layer, whatever the size."""
    image = noise((32, 32, 4), np.uint16, seed=4)
    unpacked = container.unpack(svdcodec.encode(image, quality=90))
    assert any(p.rank for p in unpacked.planes)


def test_wrappable_rows() -> None:
    """A wrapped block gives the clamped rule's samples where every x + q t is in range: for
    step 1 always, for a wider step only those rows; never for other types."""
    x = np.array([[0, 65535], [3, 65532]], dtype=np.uint16)
    decoded = np.array([[1, 65532], [3, 65530]], dtype=np.uint16)
    q = (x.astype(np.int64) - decoded + 2) // 5  # max error 2, step 5
    assert wrappable_rows(x, decoded, x.astype(np.int64) - decoded, 1.0).all()
    assert wrappable_rows(x, decoded, q, 5.0).tolist() == [False, True]  # 65532 + 5 > 65535
    assert wrappable_rows(x.astype(np.int32), decoded, q, 5.0) is None


def test_wrapped_block_only_in_version_7_and_16_bit_samples() -> None:
    data = svdcodec.encode(noise((16, 12), np.uint16, seed=5), max_error=0)
    at = data.index(b"HEAD") + 4
    for field, value, message in ((0, 6, "invalid element type 5"),
                                  (10, 6, "uint16 or int16 only")):
        head = bytearray(data[at:at + container.HEAD_RECORD.size])
        if field == 0:
            head[0:2] = value.to_bytes(2, "big")
        else:
            head[field] = value
        edited = data[:at] + bytes(head) + data[at + len(head):]
        crc_at = at + len(head)
        crc = zlib.crc32(b"HEAD" + bytes(head)).to_bytes(4, "big")
        edited = edited[:crc_at] + crc + edited[crc_at + 4:]
        with pytest.raises(SvdiError, match=message):
            svdcodec.decode(edited)


def test_wrapped_vector_in_bands_of_two_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The version 7 vector (wrapped blocks with the vertical and planar predictors, references,
    a step of 5) read two rows at a time: the predictors' carry between bands, modulo 2^16."""
    vector = VECTORS / "v7_u16x3_12x10_wrapped.svdi"
    expected = np.load(VECTORS / "v7_u16x3_12x10_wrapped.npy")
    monkeypatch.setattr(residual_phase, "BAND_SAMPLES", 24)
    np.testing.assert_array_equal(svdcodec.decode(vector.read_bytes()), expected)


@pytest.mark.parametrize(("shape", "dtype", "levels"), [((256, 192), np.uint16, 4096),
                                                        ((64, 64, 3), np.uint8, 256),
                                                        ((96, 80), np.uint8, 64)])
def test_noise_the_layer_does_not_pay_for_goes_without_one(shape: tuple[int, ...], dtype: type,
                                                           levels: int) -> None:
    """Noise of fewer levels than its type holds (12 bits in uint16, 6 bits in uint8) or
    8-bit noise is no larger than raw with its layer, which still costs more than it saves:
    the estimate of the residual over no layer (encoder.residual.bare_residual_bytes) finds
    that file smaller, and the encoder keeps it (docs/lossless.md). The layered file was
    kept before: 0.937 x raw for 12-bit noise, where rank 0 gives 0.856."""
    image = np.random.default_rng(8).integers(0, levels, shape, dtype=dtype)
    data = svdcodec.encode(image, max_error=0)
    assert data == svdcodec.encode(image, max_error=0, rank=0)
    assert all(p.rank == 0 for p in container.unpack(data).planes)
    np.testing.assert_array_equal(decoded_everywhere(data, shape), image)


def test_a_ramp_under_a_bound_goes_without_the_layer() -> None:
    """A 16-bit ramp's residual under a bound is a staircase, smaller with no layer at all;
    zstd's level 3 misses its repeats on the estimate's sample, level 6 finds them
    (tuning.BARE_ESTIMATE_LEVELS): with level 3 alone the file kept its layer at 3.7 x the
    bare file's bytes (docs/lossless.md). Slopes 101 and 20: samples on no coarser grid (x 100
    + y 20 lies on one of 20, where the lossless file is smaller still and kept: docs/lossless.md,
    "Samples on a coarser grid")."""
    y, x = np.mgrid[0:512, 0:640]
    ramp = (x * 101 + y * 20).astype(np.uint16)
    data = svdcodec.encode(ramp, max_error=16)
    assert data == svdcodec.encode(ramp, max_error=16, rank=0)
    assert len(data) < len(svdcodec.encode(ramp, max_error=16, quality=75)) / 3
    assert np.abs(svdcodec.decode(data).astype(np.int64) - ramp).max() <= 16


def test_photos_keep_the_layer_that_pays() -> None:
    """A photo's layer saves the residual more than it costs: its lossless file keeps it, and
    the estimate of the bare residual (which overshoots smooth samples) is above the file."""
    for image in (photo(96, 128, 3), photo(64, 64, 1)[..., 0]):
        data = svdcodec.encode(image, max_error=0)
        assert all(p.rank > 0 for p in container.unpack(data).planes)
        assert len(data) < len(svdcodec.encode(image, max_error=0, rank=0))
        pixels = image.reshape(*image.shape[:2], -1)
        lossless = ResidualRequest((0.0,) * pixels.shape[2], frozenset())
        bare = bare_residual_bytes(pixels, lossless)
        assert bare is not None and bare > len(data)


@pytest.mark.parametrize("options", [{"quality": 75}, {"rank": 6}, {"energy": 0.9},
                                     {"layout": "plain"}, {"centre": True}, {"aq": True},
                                     {"restore": True}])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_options_about_the_layer_keep_it(options: dict, dtype: type) -> None:
    """An option about the low-rank layer (its quality, rank, energy, layout, the column
    means of centre=True, aq, restore) asks for that layer: neither rank-0 retry drops it
    (the estimate's, which 8-bit noise meets, and the older one of 16-bit files larger than
    their samples), where the same noise encoded with max_error alone goes without one."""
    top = np.iinfo(dtype).max + 1
    image = np.random.default_rng(8).integers(0, top, (64, 64, 3), dtype=dtype)
    assert all(p.rank == 0 for p in container.unpack(svdcodec.encode(image, max_error=0)).planes)
    data = svdcodec.encode(image, max_error=0, **options)
    assert any(p.rank > 0 for p in container.unpack(data).planes)
    np.testing.assert_array_equal(svdcodec.decode(data), image)
