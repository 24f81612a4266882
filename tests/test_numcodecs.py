"""The svdi codec for numcodecs and zarr v3, and a Dask cluster of worker processes that find
it through the entry points. Skipped only where numcodecs, zarr or dask.distributed are not
installed (pip install -e ".[test,zarr]")."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from PIL import Image

import svdcodec
from svdcodec import chunks as chunk_convention
from svdcodec.evaluation.metrics import psnr

numcodecs = pytest.importorskip("numcodecs")

#: PSNR floors (dB) of a 2 x 256 x 384 stack of the grey sample in 128 x 128 chunks, for every
#: sample type at its own peak. Measured: 32.4, 37.2, 43.7 dB at quality 50, 75, 90 (a whole
#: slice in one file: 32.6, 37.4, 43.8).
PSNR_FLOOR = {50: 31.5, 75: 36.3, 90: 42.7}
SAMPLE_TYPES = {  # dtype -> (the grey stack in that type, peak)
    "uint8": (lambda g: g, 255.0),
    "uint16": (lambda g: g.astype(np.uint16) * np.uint16(257), 65535.0),
    "float32": (lambda g: g.astype(np.float32) / np.float32(255), 1.0),
}


def sample(mode: str = "L") -> np.ndarray:
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        return np.asarray(im.convert(mode))


def grey_stack() -> np.ndarray:
    grey = sample()
    return np.stack([grey, grey[::-1, ::-1]])  # (2, 256, 384)


# ----------------------------------------------------------------------------- numcodecs


def test_codec_found_by_id_and_config_round_trip() -> None:
    codec = numcodecs.get_codec({"id": "svdi", "quality": 90, "layout": "plain", "rank": 7})
    assert type(codec).__module__ == "svdcodec.numcodecs"
    config = codec.get_config()
    assert config == {"id": "svdi", "quality": 90, "layout": "plain", "rank": 7}
    again = numcodecs.get_codec(config)
    assert again == codec and repr(again) == "Svdi(quality=90, layout='plain', rank=7)"
    assert numcodecs.get_codec({"id": "svdi"}).get_config() == {
        "id": "svdi", "quality": 75, "layout": "auto"}


@pytest.mark.parametrize("config, message", [
    ({"quality": 0}, "quality"), ({"layout": "diagonal"}, "layout"), ({"rank": -1}, "rank"),
    ({"energy": 1.5}, "energy")])
def test_bad_options_are_refused(config, message) -> None:
    with pytest.raises(svdcodec.SvdiError, match=message):
        numcodecs.get_codec({"id": "svdi", **config})


def test_a_chunk_is_one_svdi_file_of_its_stacked_slices() -> None:
    """(slices, h, w) is coded exactly as svdcodec.encode codes the slices stacked top to
    bottom; decode gives that image back, or the chunk's shape through out=."""
    stack = grey_stack()
    codec = numcodecs.get_codec({"id": "svdi", "quality": 80})
    data = codec.encode(stack)
    assert svdcodec.check(data)
    assert data == svdcodec.encode(stack.reshape(512, 384), 80)
    stacked = codec.decode(data)
    assert stacked.shape == (512, 384) and stacked.dtype == np.uint8
    out = np.zeros_like(stack)
    assert codec.decode(data, out=out) is out
    assert np.array_equal(out, stacked.reshape(stack.shape))
    assert psnr(stack, out) > 38.0
    flat = np.zeros(stack.size, dtype=np.uint8)  # a flat buffer takes the samples in C order
    codec.decode(data, out=flat)
    assert np.array_equal(flat, stacked.ravel())


def test_channels_last_and_n_d_chunks() -> None:
    rgb = sample("RGB")
    chunk = np.stack([rgb[:128], rgb[128:]])[None]  # (1, 2, 128, 384, 3)
    codec = numcodecs.get_codec({"id": "svdi", "quality": 85, "channels_last": True})
    data = codec.encode(chunk)
    assert data == svdcodec.encode(rgb, 85)  # the slices stack back into the sample
    out = np.empty_like(chunk)
    codec.decode(data, out=out)
    assert np.array_equal(out.reshape(rgb.shape), svdcodec.decode(data))
    with pytest.raises(svdcodec.SvdiError, match="1..255 channels"):
        codec.encode(np.zeros((8, 8, 256), np.uint8))


@pytest.mark.parametrize("dtype", ["float16", "int64", "bool", "complex64"])
def test_unsupported_sample_types_are_named(dtype: str) -> None:
    codec = numcodecs.get_codec({"id": "svdi"})
    with pytest.raises(svdcodec.SvdiError, match=f"uint8, uint16, float32, int8, int16, int32, "
                                                 f"uint32, float64; not {dtype}"):
        codec.encode(np.zeros((16, 16), dtype=dtype))


@pytest.mark.parametrize("dtype", ["int8", "int16", ">i2", "int32", "uint32", "float64"])
def test_version_2_sample_types_round_trip(dtype: str) -> None:
    """Every sample type of version 2 comes back in its own type, shape and channels (8)."""
    codec = numcodecs.get_codec({"id": "svdi", "quality": 90, "channels_last": True})
    offset = 0.0 if np.dtype(dtype).kind == "u" else 40.0  # signed types: negative samples
    grey = grey_stack()[:, :32, :24, None].astype(np.float64) * (100 / 255)
    x = (grey * np.linspace(0.2, 1, 8) - offset).astype(dtype)
    out = np.zeros_like(x)
    codec.decode(codec.encode(x), out=out)
    assert out.dtype == x.dtype and out.shape == x.shape
    peak = float(np.abs(x.astype(np.float64)).max())
    assert psnr(x.astype(np.float64), out.astype(np.float64), peak) > 30.0


def test_big_endian_and_shape_errors() -> None:
    codec = numcodecs.get_codec({"id": "svdi", "quality": 90})
    x = grey_stack()[0].astype(">u2") * 100
    out = np.zeros(x.shape, dtype=">u2")
    codec.decode(codec.encode(x), out=out)
    assert psnr(x.astype(np.float64), out.astype(np.float64), 25500.0) > 40.0
    with pytest.raises(svdcodec.SvdiError, match=r"\(\.\.\., h, w\)"):
        codec.encode(np.arange(10, dtype=np.uint8))
    with pytest.raises(svdcodec.SvdiError, match="does not hold a chunk"):
        codec.decode(codec.encode(x), out=np.zeros((128, 384), np.uint16))


def test_a_chunk_comes_back_in_its_own_memory_order_and_byte_order() -> None:
    """A codec of bytes gives back the bytes it was given (zarr format 2 reads them as the
    chunk's memory, in its own order and byte order): a column-major or byte-swapped chunk
    comes back so, each sample within max_error; a C-order native chunk's file is as before."""
    codec = numcodecs.get_codec({"id": "svdi", "max_error": 3})
    stack = grey_stack()[:, :64, :96]
    for dtype in ("<u2", ">u2", "uint8", "float32"):
        x = stack.astype(dtype)
        for chunk in (x, np.asfortranarray(x), np.asfortranarray(x[0]),
                      np.asfortranarray(np.stack([x[0]] * 3, axis=-1).astype(dtype))):
            data = codec.encode(chunk)
            back = np.asarray(codec.decode(data))
            as_bytes = np.frombuffer(back.tobytes(order="A"), chunk.dtype).reshape(
                chunk.shape, order="F" if chunk.flags.f_contiguous and chunk.ndim > 1
                and not chunk.flags.c_contiguous else "C")
            assert np.abs(as_bytes.astype(float) - chunk.astype(float)).max() <= 3
            for order in "CF":  # into out= of either order
                out = np.zeros(chunk.shape, dtype=dtype, order=order)
                codec.decode(data, out=out)
                assert np.abs(out.astype(float) - chunk.astype(float)).max() <= 3
    native = stack.astype("<u2")
    assert svdcodec.read_metadata(codec.encode(native)) == {}  # no layout to record
    # big-endian samples are recorded on a machine of either order: a store moves between them
    assert chunk_convention.memory_layout(stack.astype(">u2")) == "byteorder=big"
    assert chunk_convention.memory_layout(stack.astype("<u2")) is None
    assert svdcodec.read_metadata(codec.encode(np.asfortranarray(native)))["text"] == {
        "svdcodec chunk layout": "order=F shape=2x64x96"}


@pytest.mark.parametrize("text", ["order=C", "order=F", "order=F shape=2x64x97",
                                  "order=F shape=0x1", "shape=2x64x96", "byteorder=middle",
                                  "order=F shape=2xx96", "colour=blue",
                                  "order=F shape=" + "1x" * 64 + "12288",  # 65 axes
                                  "order=F shape=\u0662x64x96",  # a digit numpy would take
                                  "order=F shape=" + "9" * 4000 + "x1"])
def test_a_chunk_layout_that_does_not_fit_is_refused(text: str) -> None:
    data = svdcodec.encode(grey_stack()[:, :64, :96].reshape(128, 96),
                           text={"svdcodec chunk layout": text})
    with pytest.raises(svdcodec.SvdiError, match="chunk layout"):
        numcodecs.get_codec({"id": "svdi"}).decode(data)


def test_a_nan_fill_value_is_named_with_its_remedy() -> None:
    chunk = np.full((64, 64), np.nan, np.float32)
    chunk[:50, :40] = 1.0  # zarr's padding of an edge chunk by a NaN fill_value
    with pytest.raises(svdcodec.SvdiError, match="finite one"):
        numcodecs.get_codec({"id": "svdi"}).encode(chunk)


# ----------------------------------------------------------------------------- zarr v3


try:
    import zarr
    HAVE_ZARR = int(zarr.__version__.split(".")[0]) >= 3
except ImportError:
    HAVE_ZARR = False
needs_zarr = pytest.mark.skipif(not HAVE_ZARR, reason="zarr>=3 is not installed")


def write_read(tmp_path, x: np.ndarray, config: dict, chunks=(1, 128, 128)) -> np.ndarray:
    path = tmp_path / "array.zarr"
    z = zarr.create_array(str(path), shape=x.shape, chunks=chunks, dtype=x.dtype,
                          serializer={"name": "svdi", "configuration": config},
                          compressors=None, overwrite=True)
    z[:] = x
    reopened = zarr.open_array(str(path), mode="r")
    assert reopened.metadata.codecs[0].to_dict() == {"name": "svdi", "configuration": config}
    return reopened[:]


@needs_zarr
@pytest.mark.parametrize("dtype", list(SAMPLE_TYPES))
@pytest.mark.parametrize("quality", list(PSNR_FLOOR))
def test_zarr_array_on_a_local_store(tmp_path, dtype: str, quality: int) -> None:
    convert, peak = SAMPLE_TYPES[dtype]
    x = convert(grey_stack())
    y = write_read(tmp_path, x, {"quality": quality, "layout": "auto"})
    assert y.dtype == x.dtype and y.shape == x.shape
    assert psnr(x.astype(np.float64), y.astype(np.float64), peak) >= PSNR_FLOOR[quality]
    files = sorted(p for p in (tmp_path / "array.zarr").rglob("*") if p.is_file()
                   and p.name != "zarr.json")
    assert len(files) == 2 * 2 * 3  # every chunk stored, each one .svdi file
    assert all(svdcodec.check(p.read_bytes()) for p in files)


@needs_zarr
def test_zarr_edge_chunks_and_rank(tmp_path) -> None:
    """Chunks that overhang the array (zarr pads them) and a fixed rank per chunk."""
    x = grey_stack()[:, :200, :300]
    y = write_read(tmp_path, x, {"quality": 90, "layout": "plain", "rank": 40},
                   chunks=(2, 128, 128))
    assert psnr(x, y) > 29.0  # measured 30.0 dB: 40 components of 128 per 256 x 128 stack
    chunk = (tmp_path / "array.zarr" / "c" / "0" / "0" / "0").read_bytes()
    (factors,) = svdcodec.read_factors(chunk)
    assert factors.layout == "plain" and factors.S.size == 40 and factors.U.shape[0] == 256


@needs_zarr
def test_zarr_format_2_with_the_numcodecs_codec(tmp_path) -> None:
    """zarr's format 2 takes numcodecs codecs as the compressor and reshapes what decode
    returns (the stacked image) to the chunk."""
    x = SAMPLE_TYPES["uint16"][0](grey_stack())
    path = str(tmp_path / "v2.zarr")
    codec = numcodecs.get_codec({"id": "svdi", "quality": 90})
    z = zarr.create_array(path, shape=x.shape, chunks=(1, 128, 128), dtype=x.dtype,
                          zarr_format=2, compressors=codec, filters=None, overwrite=True)
    z[:] = x
    reopened = zarr.open_array(path, mode="r")
    assert reopened.metadata.compressor.get_config() == codec.get_config()
    y = reopened[:]
    assert psnr(x.astype(np.float64), y.astype(np.float64), 65535.0) >= PSNR_FLOOR[90]


@needs_zarr
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [">u2", "<u2", "float32"])
def test_zarr_format_2_in_either_memory_order_and_byte_order(tmp_path, order: str,
                                                              dtype: str) -> None:
    x = grey_stack()[:, :200, :300].astype(dtype)
    path = str(tmp_path / "v2.zarr")
    codec = numcodecs.get_codec({"id": "svdi", "max_error": 2})
    z = zarr.create_array(path, shape=x.shape, chunks=(2, 128, 128), dtype=dtype,
                          zarr_format=2, order=order, compressors=codec, filters=None)
    z[:] = x
    y = zarr.open_array(path, mode="r")[:]
    assert np.abs(y.astype(float) - x.astype(float)).max() <= 2


@needs_zarr
def test_zarr_refuses_unsupported_arrays_when_created(tmp_path) -> None:
    for dtype, chunks, message in [("float16", (4, 4), "not float16"),
                                   ("uint8", (16,), r"\(\.\.\., h, w\)")]:
        with pytest.raises(svdcodec.SvdiError, match=message):
            zarr.create_array(str(tmp_path / "bad.zarr"), shape=chunks, chunks=chunks,
                              dtype=dtype, serializer={"name": "svdi"}, overwrite=True)


# ----------------------------------------------------------------------------- Dask

#: Run in a process of its own (`python CLUSTER_SCRIPT array.zarr`), so that Dask's event-loop
#: threads and cluster objects never live in the test process. Its top level imports nothing of
#: svdcodec: the worker processes (spawned, they import this script as __mp_main__) must find
#: the codec through the entry points alone. Prints one JSON object.
CLUSTER_SCRIPT = """
import json
import sys


def probe_fresh_worker():
    # which svdcodec modules a worker had loaded, and what the registries give for "svdi"
    before = sorted(name for name in sys.modules if name.split(".")[0] == "svdcodec")
    import numcodecs
    from zarr.registry import get_codec_class

    numcodecs_class = type(numcodecs.get_codec({"id": "svdi"}))
    zarr_class = get_codec_class("svdi")
    from svdcodec.runtime.threads import configured_threads, workers

    return {"before": before,
            "numcodecs": numcodecs_class.__module__ + "." + numcodecs_class.__name__,
            "zarr": zarr_class.__module__ + "." + zarr_class.__name__,
            "threads": [workers(), configured_threads()[1]]}


def write_block(path, index, block):
    import zarr  # the array opened by its path: the codec comes from its metadata

    zarr.open_array(path, mode="r+")[index] = block
    return index


def read_block(path, index):
    import zarr

    return zarr.open_array(path, mode="r")[index]


def loaded_svdcodec_modules():
    return sorted(name for name in sys.modules if name.startswith("svdcodec."))


def main(path):
    import numpy as np
    import zarr
    from distributed import Client, LocalCluster

    x = zarr.open_array(path, mode="r")[:]  # the client reads the planned values here
    expected = np.load(path + ".npy")
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        probes = list(client.run(probe_fresh_worker).values())
        writes = client.map(write_block, [path] * len(expected), range(len(expected)),
                            list(expected))
        written = sorted(client.gather(writes))
        reads = client.map(read_block, [path] * len(expected), range(len(expected)),
                           pure=False)
        back = np.stack(client.gather(reads))
        loaded = list(client.run(loaded_svdcodec_modules).values())
    np.save(path + ".back.npy", back)
    print(json.dumps({"probes": probes, "written": written, "loaded": loaded,
                      "empty_before": bool(np.all(x == 0))}))


if __name__ == "__main__":
    main(sys.argv[1])
"""


@needs_zarr
def test_dask_workers_write_and_read_in_parallel(tmp_path) -> None:
    """A LocalCluster of two worker processes (loopback only) whose workers load the codec by
    entry point, write a chunked zarr v3 array in parallel and read it back."""
    pytest.importorskip("distributed")
    x = np.concatenate([grey_stack()] * 3)  # (6, 256, 384)
    path = str(tmp_path / "dask.zarr")
    zarr.create_array(path, shape=x.shape, chunks=(1, 128, 128), dtype=x.dtype,
                      serializer={"name": "svdi", "configuration": {"quality": 90}},
                      compressors=None, fill_value=0)
    np.save(path + ".npy", x)
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER_SCRIPT)
    run = subprocess.run([sys.executable, str(script), path], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["empty_before"]
    assert len(report["probes"]) == 2
    for probe in report["probes"]:
        assert probe["before"] == []  # nothing of svdcodec until the registries asked for it
        assert probe["numcodecs"] == "svdcodec.numcodecs.Svdi"
        assert probe["zarr"] == "svdcodec.zarr.Svdi"
        assert probe["threads"] == [1, "Dask worker"]
    assert report["written"] == list(range(len(x)))
    assert len(report["loaded"]) == 2
    assert all("svdcodec.zarr" in names for names in report["loaded"])  # both workers coded
    y = np.load(path + ".back.npy")
    assert y.shape == x.shape and y.dtype == x.dtype
    assert psnr(x, y) >= PSNR_FLOOR[90]
    assert np.array_equal(zarr.open_array(path, mode="r")[:], y)  # what the store holds


@needs_zarr
def test_a_fill_value_far_beyond_the_data_is_warned_of(tmp_path) -> None:
    """An edge chunk padded with a fill value far outside the data (-9999 beside 270..290)
    takes it as its peak, and lossy coding loses the chunk's detail: zarr writes it with a
    UserWarning that says so (docs/arrays.md); not with a fill within the data, nor under
    max_error, whose bound holds in every chunk."""
    import warnings

    y, x = np.mgrid[0:150, 0:130]
    field = (280 + 10 * np.sin(x / 9) * np.cos(y / 7)).astype(np.float32)
    for fill, config, warned in ((-9999.0, {"quality": 90}, True), (0.0, {"quality": 90}, False),
                                 (-9999.0, {"quality": 90, "max_error": 0.5}, False)):
        z = zarr.create_array(str(tmp_path / f"f{fill}-{len(config)}.zarr"), shape=field.shape,
                              chunks=(128, 128), dtype=field.dtype, fill_value=fill,
                              serializer={"name": "svdi", "configuration": config},
                              compressors=None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            z[:] = field
        messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert any("fill_value -9999" in m for m in messages) == warned, (fill, config, messages)
