"""DICOM (svdcodec.dicom, svdi-encode file.dcm): pydicom's bundled CT and MR test files keep
their dtype, range and rescale through .svdi, exactly with max_error=0 and within the bound
otherwise. Skipped only where pydicom is not installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from support import decode_everywhere
from test_dtypes import largest_error

import svdcodec
from svdcodec import SvdiError, dicom
from svdcodec.cli import decode_main, encode_main

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file


def bundled(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom's bundled test file {name} is missing"
    return str(path)


CT, MR = bundled("CT_small.dcm"), bundled("MR_small.dcm")


@pytest.mark.parametrize("path", [CT, MR])
def test_lossless_round_trip_keeps_dtype_range_and_rescale(path: str) -> None:
    dataset = pydicom.dcmread(path)
    original = dataset.pixel_array
    data = dicom.encode_dicom(path, max_error=0)
    image = dicom.decode_dicom(data)
    assert image.pixels.dtype == original.dtype == np.int16
    np.testing.assert_array_equal(image.pixels, original)
    np.testing.assert_array_equal(decode_everywhere(data), original)
    assert image.attributes["Modality"] == dataset.Modality
    assert image.slope == float(dataset.get("RescaleSlope", 1.0))
    assert image.intercept == float(dataset.get("RescaleIntercept", 0.0))
    expected = original.astype(np.float64) * image.slope + image.intercept
    np.testing.assert_array_equal(image.modality_values(), expected)


def test_ct_hounsfield_units() -> None:
    """CT_small: stored 128..2191 with intercept -1024, so air and tissue in Hounsfield units."""
    image = dicom.decode_dicom(dicom.encode_dicom(CT, max_error=0))
    assert image.intercept == -1024.0 and image.slope == 1.0
    hu = image.modality_values()
    assert hu.min() == pydicom.dcmread(CT).pixel_array.min() - 1024
    assert image.attributes["PixelSpacing"].count("\\") == 1  # two values, DICOM's separator


@pytest.mark.parametrize("bound", [1, 4, 20])
def test_bounded_round_trip(bound: int) -> None:
    original = pydicom.dcmread(CT).pixel_array
    data = dicom.encode_dicom(CT, max_error=bound)
    decoded = decode_everywhere(data)
    assert decoded.dtype == np.int16
    assert largest_error(decoded, original) <= bound
    assert len(data) < len(dicom.encode_dicom(CT, max_error=0))


def test_big_endian_dicom_is_read_as_its_values() -> None:
    path = bundled("MR_small_bigendian.dcm")
    pixels, text = dicom.read_dicom(path)
    assert pixels.dtype == np.int16 and pixels.dtype.isnative
    np.testing.assert_array_equal(pixels, pydicom.dcmread(MR).pixel_array)
    assert text["DICOM Modality"] == "MR"


def test_svdi_encode_reads_dicom(tmp_path: Path) -> None:
    source = tmp_path / "ct.dcm"
    shutil.copy(CT, source)
    assert encode_main(["--lossless", "--quiet", str(source), "-o", str(tmp_path / "ct.svdi")]) == 0
    data = (tmp_path / "ct.svdi").read_bytes()
    assert dicom.decode_dicom(data).intercept == -1024.0
    assert decode_main(["--quiet", str(tmp_path / "ct.svdi"), "-o", str(tmp_path / "ct.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "ct.npy"), pydicom.dcmread(CT).pixel_array)
    assert encode_main(["--strip", "--quiet", "-f", str(source), "-o", str(tmp_path / "s.svdi")]) == 0
    assert dicom.decode_dicom((tmp_path / "s.svdi").read_bytes()).attributes == {}


def test_not_dicom_and_no_pixels() -> None:
    assert not dicom.is_dicom(svdcodec.encode(np.zeros((4, 4), np.uint8)))
    dataset = pydicom.dcmread(CT)
    del dataset.PixelData
    with pytest.raises(SvdiError, match="no pixel data"):
        dicom.read_dicom(dataset)


def test_colour_images_are_stored_as_the_rgb_they_show() -> None:
    """A palette-colour image is stored as the RGB its palette gives (not its indices as
    grey, which lost the colours), a Y'CbCr one as pydicom's RGB of it; the kept attributes
    describe the samples stored (RGB, their bits), not the file's."""
    from pydicom.pixels import apply_color_lut

    palette = pydicom.dcmread(bundled("examples_palette.dcm"))
    ybr = pydicom.dcmread(bundled("SC_ybr_full_422_uncompressed.dcm"))
    expected = [np.asarray(apply_color_lut(palette.pixel_array, palette)), ybr.pixel_array]
    for path, rgb in zip(("examples_palette.dcm", "SC_ybr_full_422_uncompressed.dcm"), expected):
        image = dicom.decode_dicom(dicom.encode_dicom(bundled(path), max_error=0))
        np.testing.assert_array_equal(image.pixels, rgb)
        bits = str(8 * rgb.dtype.itemsize)
        assert {key: image.attributes[key] for key in
                ("PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
                 "PixelRepresentation")} == {
            "PhotometricInterpretation": "RGB", "BitsAllocated": bits, "BitsStored": bits,
            "HighBit": str(int(bits) - 1), "PixelRepresentation": "0"}, path


def test_a_palette_that_cannot_be_applied_is_an_svdi_error() -> None:
    """A palette-colour image without its lookup table data: one SvdiError naming the palette
    (svdi-encode's one-line failure, the batch going on), not pydicom's own exception."""
    dataset = pydicom.dcmread(bundled("examples_palette.dcm"))
    del dataset.RedPaletteColorLookupTableData
    with pytest.raises(SvdiError, match="palette cannot be applied"):
        dicom.read_dicom(dataset)
