"""The spectrum: every singular value of each plane, as the encoder's matrices have them, the
kept rank, the plot, and what svdi-info shows of it."""

from __future__ import annotations

import gc
import json
import sys
from importlib import resources

import numpy as np
import pytest
from PIL import Image
from support import ROOT

import svdcodec
from svdcodec import decoder
from svdcodec.cli import info_main
from svdcodec.cli.info import info_report
from svdcodec.codec.colour import to_planes
from svdcodec.codec.layout import to_matrix

#: Largest |sigma_k - numpy's sigma_k|, relative to sigma_1, over all k. The Gram route squares
#: the singular values: the small ones keep an absolute error of about sqrt(eps) of the product's
#: precision times sigma_1 (float32 band products for patch layouts: measured up to 3.6e-7 on
#: the sample; float64 for plain matrices: 1e-14 to 1e-9).
SIGMA_TOLERANCE = 1e-5
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def collect_matplotlib_garbage():
    """matplotlib leaves reference cycles whose finalizers free further cycles, so one
    gc.collect() does not reach them all; collect until none are left, so that a later test
    that counts garbage (test_streaming's no-cycles check) starts clean."""
    yield
    for _ in range(10):
        if gc.collect() == 0:
            break


def sample(mode: str = "L") -> np.ndarray:
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        return np.asarray(im.convert(mode))


def sensors(rows: int = 1500, columns: int = 48, seed: int = 1) -> np.ndarray:
    """A tall-skinny time x sensors matrix: a few oscillations seen through a random mixing,
    plus noise (float32)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 20, rows)[:, None]
    sources = np.sin(t * np.array([0.5, 1.3, 2.9, 4.1, 7.7]))
    return (sources @ rng.standard_normal((5, columns)) * 3.0
            + 0.02 * rng.standard_normal((rows, columns))).astype(np.float32)


def numpy_sigma(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.svd(matrix.astype(np.float64), compute_uv=False)


def assert_sigma_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= SIGMA_TOLERANCE * want[0]


@pytest.mark.parametrize("layout", ["plain", "patch4", "patch8", "patch16"])
def test_grey_spectrum_equals_numpy_svd_of_the_layout_matrix(layout: str) -> None:
    grey = sample()
    (s,) = svdcodec.spectrum(grey, layout=layout)
    patch = 0 if layout == "plain" else int(layout[5:])
    want = numpy_sigma(to_matrix(grey.astype(np.float64), patch))
    assert s.layout == layout and s.complete
    assert s.matrix_shape == to_matrix(grey, patch).shape
    assert_sigma_close(s.sigma, want)
    assert s.total_energy == pytest.approx(float(np.sum(want ** 2)), rel=1e-6)
    assert s.energy[-1] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(s.energy) >= -1e-12)


@pytest.mark.parametrize("transpose", [False, True], ids=["tall", "wide"])
def test_plain_float_matrix_in_its_own_units(transpose: bool) -> None:
    """A float32 matrix (the sample scale is applied back): sigma is numpy's, the kept rank is
    read_factors', and the stored sigma are the spectrum's first ones."""
    x = sensors()
    x = np.ascontiguousarray(x.T) if transpose else x
    (s,) = svdcodec.spectrum(x, 90, layout="plain")
    assert_sigma_close(s.sigma, numpy_sigma(x))
    data = svdcodec.encode(x, 90, layout="plain")
    (factors,) = svdcodec.read_factors(data)
    assert s.kept == factors.S.size == 5  # the five sources; the noise is not worth its bytes
    assert np.allclose(factors.S, s.sigma[:s.kept], rtol=1e-6)
    (stored,) = svdcodec.stored_spectrum(data)
    assert stored.total_energy is None and stored.kept == s.kept
    assert np.allclose(stored.sigma, s.sigma[:s.kept], rtol=1e-6)
    assert s.kept_energy > 0.999


def test_uint16_spectrum_is_in_sample_units() -> None:
    x = sample().astype(np.uint16) * 200 + 1000
    (s,) = svdcodec.spectrum(x, layout="plain")
    assert_sigma_close(s.sigma, numpy_sigma(x))


def test_every_spectrum_is_in_read_factors_units() -> None:
    """spectrum(), stored_spectrum(), svdi-info and read_factors give S in one unit
    (`decoder.factor_scale`): HEAD's scale for every type but uint8, whose scale is not
    applied (spec §2; a file's uint8 scale of 2 changes neither samples nor S), so 16-bit
    Y'CbCr is in 16-bit units everywhere (before, spectrum() and svdi-info gave it in 8-bit
    units beside read_factors' 16-bit ones)."""
    rgb16 = sample("RGB").astype(np.uint16) * 257
    data = svdcodec.encode(rgb16, 90, layout="plain")
    factors = svdcodec.read_factors(data)
    stored = svdcodec.stored_spectrum(data)
    computed = svdcodec.spectrum(rgb16, 90, layout="plain")
    report = info_report("x", data)
    for f, s, c, p in zip(factors, stored, computed, report["planes"], strict=True):
        assert np.allclose(s.sigma, f.S, rtol=1e-6) and np.allclose(p["sigma"], f.S, rtol=1e-6)
        assert np.allclose(c.sigma[:f.S.size], f.S, rtol=0.02)  # (the quantized factors')
    assert factors[0].S[0] > 100 * 255  # 16-bit units
    vectors = ROOT / "spec" / "vectors"
    one = svdcodec.read_factors((vectors / "l_13x7_plain.svdi").read_bytes())
    two = svdcodec.read_factors((vectors / "uint8_scale_2.svdi").read_bytes())
    np.testing.assert_array_equal(one[0].S, two[0].S)


def test_a_sigma_past_float64_is_null_in_strict_json(tmp_path, capsys) -> None:
    """A valid float64 file (4 x 4 plain, rank 1, zero factors) whose sigma times its scale
    overflows binary64: svdi-info's JSON holds null there (not Python's "Infinity", which
    strict parsers refuse), its text says "overflow", stored_spectrum gives inf; no warning."""
    import warnings

    import zstandard

    from svdcodec import format as container
    from svdcodec.format.writer import END, chunk, pack_header

    def block(kind: bytes, descriptor: bytes, content: bytes) -> bytes:
        return chunk(kind, container.BLOCK_RECORD.pack(0, 0, 1, container.DENSE) + descriptor
                     + zstandard.ZstdCompressor(write_content_size=True).compress(content))
    data = pack_header(container.Header(4, 4, 8, 1, 0, 0, 1e305, 2),
                       [container.Plane(0, 0, 0, 4, 4, 1, 1.0, 0)])
    data += block(b"SBLK", container.DENSE_RECORD.pack(4, 0, 1), np.float32([3e38]).tobytes())
    for kind in (b"VBLK", b"UBLK"):
        data += block(kind, container.DENSE_RECORD.pack(1, 0, 4), bytes(4))
    data += END
    (tmp_path / "inf.svdi").write_bytes(data)
    assert not svdcodec.decode(data).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(svdcodec.stored_spectrum(data)[0].sigma).all()
        assert info_main(["--json", str(tmp_path / "inf.svdi")]) == 0
        report = json.loads(capsys.readouterr().out,
                            parse_constant=lambda name: pytest.fail(f"JSON holds {name}"))
        assert report["planes"][0]["sigma"] == [None]
        assert info_main([str(tmp_path / "inf.svdi")]) == 0
        assert "kept σ (1): overflow" in capsys.readouterr().out


def test_colour_image_planes_and_kept_ranks() -> None:
    """RGB: Y'CbCr planes (chroma halved at the default quality), each in the layout the
    encoder chose, with the ranks it kept; Y' equals numpy's SVD of the Y' patch matrix."""
    rgb = sample("RGB")
    spectra = svdcodec.spectrum(rgb, 50)
    data = svdcodec.encode(rgb, 50)
    report = json.loads(json.dumps(info_report("x", data)))
    assert [(s.layout, s.kept, list(s.matrix_shape)) for s in spectra] == [
        (p["layout"], p["rank"], p["matrix_shape"]) for p in report["planes"]]
    luma = to_planes(rgb, True, False, 1.0)[0]
    patch = int(spectra[0].layout[5:])
    assert_sigma_close(spectra[0].sigma, numpy_sigma(to_matrix(luma, patch)))
    assert spectra[1].matrix_shape[0] < spectra[0].matrix_shape[0]  # chroma subsampled


def test_the_kept_rank_follows_the_options() -> None:
    grey = sample()
    (low,) = svdcodec.spectrum(grey, 20, layout="plain")
    (high,) = svdcodec.spectrum(grey, 95, layout="plain")
    assert 0 < low.kept < high.kept
    (fixed,) = svdcodec.spectrum(grey, layout="plain", rank=12)
    assert fixed.kept == 12
    (share,) = svdcodec.spectrum(grey, layout="plain", energy=0.99)
    k = share.kept
    assert share.energy[k - 1] >= 0.99 - 1e-9 and share.energy[k - 2] < 0.99


def test_plot_is_a_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    spectra = svdcodec.spectrum(sample("RGB"))
    path = tmp_path / "spectrum.png"
    svdcodec.plot_spectrum(spectra, path, title="sample")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.height > im.width  # one panel per plane, stacked


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    spectra = svdcodec.stored_spectrum(svdcodec.encode(sample()))
    with pytest.raises(svdcodec.SvdiError, match="pip install matplotlib"):
        svdcodec.plot_spectrum(spectra, tmp_path / "x.png")


def test_svdi_info_prints_and_plots_the_kept_sigma(tmp_path, capsys) -> None:
    path = tmp_path / "grey.svdi"
    data = svdcodec.encode(sample(), 60, layout="plain")
    path.write_bytes(data)
    (factors,) = svdcodec.read_factors(data)
    assert info_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert f"kept σ ({factors.S.size}): {factors.S[0]:.4g}, {factors.S[1]:.4g}," in out
    assert info_main(["--json", str(path)]) == 0
    (plane,) = json.loads(capsys.readouterr().out)["planes"]
    assert np.allclose(plane["sigma"], factors.S, rtol=1e-6)
    pytest.importorskip("matplotlib")
    picture = tmp_path / "spectrum.png"
    assert info_main(["--plot", str(picture), str(path)]) == 0
    assert picture.read_bytes().startswith(PNG_MAGIC)
    assert info_main(["--plot", str(picture), str(path)]) == 1  # exists: needs --force
    assert "already exists" in capsys.readouterr().err
    assert info_main(["--plot", str(picture), "-f", str(path)]) == 0


@pytest.mark.parametrize("quality", [30, 75, 90])
@pytest.mark.parametrize("layout", ["patch4", "patch8", "patch16"])
def test_patch_factors_give_singular_values(layout: str, quality: int, monkeypatch) -> None:
    """A patch layout stores the patch mean's sigma / 0.7 (its finer step) and refitted sigma
    for the others (spec §6): read_factors moves those scales out of Vt, whose rows are unit,
    so S is the spectrum's leading values; stored_spectrum and svdi-info give the same S, and
    the product is the stored one."""
    grey = sample()
    data = svdcodec.encode(grey, quality, layout=layout)
    (f,) = svdcodec.read_factors(data)
    (s,) = svdcodec.spectrum(grey, quality, layout=layout)
    assert np.allclose(np.sum(np.square(f.Vt, dtype=np.float64), axis=1), 1.0, atol=1e-5)
    assert np.allclose(f.S[:3], s.sigma[:3], rtol=0.02)  # the mean's was 1 / 0.7 = 1.43 x
    assert np.allclose(np.linalg.norm(f.U[:, :3], axis=0), 1.0, atol=0.05)  # dead zone
    (stored,) = svdcodec.stored_spectrum(data)
    assert np.array_equal(stored.sigma, f.S.astype(np.float64))
    report = info_report("x.svdi", data)
    assert np.array_equal(report["planes"][0]["sigma"], f.S.astype(float))
    monkeypatch.setattr(decoder, "unit_rows", lambda plane, sigma, Vt, scale=1.0: sigma * scale)
    (raw,) = svdcodec.read_factors(data)  # the stored weights, as the decoder uses them
    assert not np.allclose(raw.S[0], f.S[0], rtol=0.1)
    product = (f.U.astype(np.float64) * f.S) @ f.Vt
    stored = (raw.U.astype(np.float64) * raw.S) @ raw.Vt
    assert np.max(np.abs(product - stored)) < 1e-4 * np.max(np.abs(stored))


def test_large_plain_matrices_give_the_leading_values(monkeypatch) -> None:
    """Above RANDOMIZED_ABOVE on the short side the encoder factorizes with a randomized range
    finder; the spectrum then holds its leading values (complete=False) and the exact total
    energy. The thresholds are lowered here so that a small matrix takes that path."""
    from svdcodec import spectra as module
    from svdcodec.codec import factorize

    monkeypatch.setattr(factorize, "RANDOMIZED_ABOVE", 100)
    monkeypatch.setattr(module, "RANDOMIZED_ABOVE", 100)
    monkeypatch.setattr(module, "RANDOMIZED_RANK", 40)
    rng = np.random.default_rng(3)
    decay = 0.8 ** np.arange(60)
    x = ((rng.standard_normal((400, 60)) * decay) @ rng.standard_normal((60, 300))
         + 1e-3 * rng.standard_normal((400, 300))).astype(np.float32)
    (s,) = svdcodec.spectrum(x, 90, layout="plain")
    want = numpy_sigma(x)
    assert not s.complete and s.sigma.size == 40
    assert np.max(np.abs(s.sigma - want[:40])) <= SIGMA_TOLERANCE * want[0]
    # float32 plane units (x / scale, rounded) make the only difference
    assert s.total_energy == pytest.approx(float(np.sum(want ** 2)), rel=1e-6)
    assert s.energy[-1] < 1.0


@pytest.mark.parametrize("options", [{"effort": 2}, {"aq": True}, {"effort": 2, "aq": True}])
def test_spectrum_takes_encodes_rank_options(options: dict) -> None:
    """arrays.md: spectrum takes encode's options that choose the layout and the kept rank
    (effort raised TypeError); its kept rank is the one that encode keeps."""
    grey = sample()
    (s,) = svdcodec.spectrum(grey, 40, layout="patch8", **options)
    (f,) = svdcodec.read_factors(svdcodec.encode(grey, 40, layout="patch8", **options))
    assert s.kept == f.S.size


def test_dir_shows_no_typing_names() -> None:
    names = dir(svdcodec)
    assert not {"Any", "TYPE_CHECKING", "annotations"} & set(names)
    assert {"encode", "decode", "spectrum", "read_factors"} <= set(names)
