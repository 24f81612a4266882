"""Files that end early (a download cut short): by default `decode` raises SvdiError saying
where the file ends and how to decode what arrived; with truncated="fill" (Pillow:
ImageFile.LOAD_TRUNCATED_IMAGES) it gives what arrived, and every part it gives is exactly
what the whole file gives there: the first k components of every plane (a preview of the
whole file), with every factor block the rows whose residual blocks arrived, before any
component zeros. Every cut point of small files, on the compiled and the numpy path."""

from __future__ import annotations

import functools
import io
import os
import struct
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, UnidentifiedImageError
from support import fixture_maker, kernels, photo

import svdcodec
from svdcodec import SvdiError
from svdcodec.encoder import tuning
from svdcodec.format import SIGNATURE, Plane, unpack

HINT = "LOAD_TRUNCATED_IMAGES"


def chunks(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(start, end, type) of every chunk of a whole file."""
    pos = len(SIGNATURE)
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        yield pos, pos + 12 + length, kind
        pos += 12 + length


def without(data: bytes, kind: bytes) -> bytes:
    """The file with every chunk of one type left out (a valid file for RBLK: spec §4.1)."""
    return SIGNATURE + b"".join(data[a:b] for a, b, k in chunks(data) if k != kind)


def headers_end(data: bytes) -> int:
    """The byte where the HEAD and PLAN chunks are all in."""
    return max(b for a, b, k in chunks(data) if k in (b"HEAD", b"PLAN"))


def residual_file() -> bytes:
    """A lossless RGB file whose residual blocks are 4 rows each (the encoder's blocks are
    4 Mi samples: these are as valid, and a cut falls between and inside them), over a layer
    (the encoder would store so small an image with none: the quality asks for the layer)."""
    before = tuning.RESIDUAL_BLOCK_SAMPLES
    tuning.RESIDUAL_BLOCK_SAMPLES = 4 * 10
    try:
        return svdcodec.encode(photo(15, 10, 3, seed=4), max_error=0, quality=75)
    finally:
        tuning.RESIDUAL_BLOCK_SAMPLES = before


FILES = {
    "rgb": svdcodec.encode(photo(12, 14, 3), quality=60),
    "l plain": svdcodec.encode(photo(11, 9, 1, seed=1)[..., 0], quality=80, layout="plain"),
    "rgba": svdcodec.encode(photo(9, 10, 4, seed=2), quality=50),
    "rgb residual": residual_file(),
}


@functools.cache
def planes_of(data: bytes) -> list[Plane]:
    return unpack(data).planes


def check_cut(data: bytes, cut: int, whole: np.ndarray, layer: np.ndarray) -> str:
    """Decode data[:cut] both ways and check what comes out; what it was, in a word."""
    part = data[:cut]
    with pytest.raises(SvdiError) as raised:
        svdcodec.decode(part)
    if cut < len(SIGNATURE):
        assert "not an SVDI file" in str(raised.value)
        assert ("empty file" in str(raised.value)) == (cut == 0)
        return "not svdi"
    message = str(raised.value)
    assert message.startswith("truncated file: the file ends at byte")
    assert f"ends at byte {cut}" in message
    if cut < headers_end(data):
        # truncated="fill" has nothing to give either: the message does not suggest it
        assert HINT not in message and message.endswith("before its HEAD and PLAN chunks "
                                                        "are whole")
        with pytest.raises(SvdiError, match="before its HEAD and PLAN chunks are whole"):
            svdcodec.decode(part, truncated="fill")
        return "headers"
    assert HINT in message
    out = svdcodec.decode(part, truncated="fill")
    assert out.shape == whole.shape and out.dtype == whole.dtype
    truncation = unpack(part, truncated=True).truncation
    assert truncation is not None and truncation.size == cut
    k = truncation.components_in(planes_of(data))
    if k == 0:
        assert not out.any()
        return "zeros"
    if k is not None:
        np.testing.assert_array_equal(out, svdcodec.decode(data, components=k))
        return f"k={k}"
    # each channel's rows whose residual blocks arrived as in the whole file, the rest the
    # low-rank layer (a channel without residual blocks: the same)
    channels = out.reshape(*out.shape[:2], -1)
    for c, rows in enumerate(truncation.residual_rows):
        np.testing.assert_array_equal(channels[:rows, :, c],
                                      whole.reshape(channels.shape)[:rows, :, c])
        np.testing.assert_array_equal(channels[rows:, :, c],
                                      layer.reshape(channels.shape)[rows:, :, c])
    return "all" if np.array_equal(out, whole) else "rows"


@pytest.mark.parametrize("compiled", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("name", FILES)
def test_every_cut(name: str, compiled: bool) -> None:
    data = FILES[name]
    with kernels(compiled):
        whole = svdcodec.decode(data)
        layer = svdcodec.decode(without(data, b"RBLK"))
        seen = [check_cut(data, cut, whole, layer) for cut in range(len(data))]
    # each outcome over one run of cut points, in the order of the file's parts
    order = ["not svdi", "headers", "zeros", "all"]
    if b"RBLK" in (kind for _, _, kind in chunks(data)):  # (RGBA: exact alpha's residual)
        order = ["not svdi", "headers", "zeros", "rows", "all"]
    assert [o for i, o in enumerate(seen) if i == 0 or seen[i - 1] != o] == order
    # cut inside IEND, or before it: every factor block and residual block is in
    iend = len(data) - 12
    assert seen[iend:] == ["all"] * 12


def test_cut_inside_a_residual_block_keeps_the_rows_before_it() -> None:
    data = FILES["rgb residual"]
    whole = svdcodec.decode(data)
    layer = svdcodec.decode(without(data, b"RBLK"))
    blocks = [(a, b) for a, b, k in chunks(data) if k == b"RBLK"]
    assert len(blocks) == 4 * 3  # rows 0-4, 4-8, 8-12, 12-15 of three channels
    # blocks of rows 8-12: channel 1 (the others' reference), then channel 0, cut in the
    # middle: channel 1 is corrected to row 12, channels 0 and 2 to row 8
    a, b = blocks[7]
    out = svdcodec.decode(data[:(a + b) // 2], truncated="fill")
    for c, rows in enumerate((8, 12, 8)):
        np.testing.assert_array_equal(out[:rows, :, c], whole[:rows, :, c])
        np.testing.assert_array_equal(out[rows:, :, c], layer[rows:, :, c])
        assert not np.array_equal(out[rows:, :, c], whole[rows:, :, c])  # (a lossy layer)
    with pytest.raises(SvdiError, match=f"inside the RBLK chunk at byte {a} "):
        svdcodec.decode(data[:(a + b) // 2])


def test_groups_of_a_large_plane_give_previews() -> None:
    """A plane of 2^18 samples or more: component 0, then 1-15, then the rest (spec §4), so
    a cut gives previews of 1 and 16 components on the way, like a progressive JPEG."""
    data = svdcodec.encode(photo(512, 768, 1, seed=3)[..., 0], quality=75)
    whole = svdcodec.decode(data)
    ends = [b for a, b, k in chunks(data)]
    seen = []
    for end in ends[2:]:  # after HEAD and PLAN
        for cut in (end - 1, end) if end < len(data) else (end - 1,):
            seen.append(check_cut(data, cut, whole, whole))
    assert {"zeros", "k=1", "k=16", "all"} <= set(seen)


@pytest.mark.parametrize("compiled", [True, False], ids=["kernels", "numpy"])
def test_an_adapted_plane_cut_before_its_map_components_reads_them_as_zeros(
        compiled: bool) -> None:
    """Spec §1, a file that ends early: an adapted plane (§5.5) whose first K' components have
    not all arrived derives its map with the missing ones' integers taken as 0. The reference
    encoder's groups (component 0, then 1-15) never cut inside K' <= 16; a file whose luma U
    comes in groups 0, 1, 2.. is as valid, and cut after component 1 it gives a preview of 2
    components whose map reads components 2 and 3 as zeros."""
    from svdcodec.codec.coding import to_symbols
    from svdcodec.format import END, Block
    from svdcodec.format.writer import factor_chunks, pack_header, pack_record

    rechunked, at = fixture_maker().map_components_last(photo(512, 768, 3, seed=6))
    c = unpack(rechunked)
    luma = c.planes[0]

    def with_zeros(block: Block) -> Block:  # luma U from component 2: its integers all 0
        if block.factor != "U" or block.plane != 0 or block.first < 2:
            return block
        zeros = np.zeros((luma.matrix_shape[0], block.count), np.int32)
        return Block("U", 0, block.first, block.count, block.coding, to_symbols(zeros))
    zeroed = pack_header(c.header, c.planes) + b"".join(factor_chunks(
        [(b.factor, pack_record(with_zeros(b), 1)) for b in c.blocks])) + END
    with kernels(compiled):
        cut = svdcodec.decode(rechunked[:at + 20], truncated="fill")
        truncation = unpack(rechunked[:at + 20], truncated=True).truncation
        assert truncation is not None and truncation.components_in(c.planes) == 2
        np.testing.assert_array_equal(cut, svdcodec.decode(zeroed, components=2))
        assert not np.array_equal(cut, svdcodec.decode(rechunked, components=2))


def test_truncated_decode_allocates_no_more_than_the_whole_file() -> None:
    data = svdcodec.encode(photo(512, 520, 3, seed=5), quality=50)

    def peak(part: bytes, **options: str) -> int:
        tracemalloc.start()
        try:
            svdcodec.decode(part, **options)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole = peak(data)
    for cut in np.linspace(headers_end(data), len(data), 9).astype(int):
        assert peak(data[:cut], truncated="fill") <= whole + (64 << 10)


def test_refusals_stay() -> None:
    data = FILES["rgb"]
    start, end, _ = next(c for c in chunks(data) if c[2] in (b"SBLK", b"VBLK", b"UBLK"))
    damaged = bytearray(data[:end + 5])
    damaged[end - 6] ^= 1  # a complete chunk with a bad CRC
    with pytest.raises(SvdiError, match="CRC mismatch"):
        svdcodec.decode(bytes(damaged), truncated="fill")
    huge = data[:start] + struct.pack(">I", 0xFFFFFFF0) + data[start + 4:start + 40]
    with pytest.raises(SvdiError, match="exceeds the chunk limit"):
        svdcodec.decode(huge, truncated="fill")
    with pytest.raises(SvdiError, match="truncated must be one of 'raise', 'fill'"):
        svdcodec.decode(data, truncated="ignore")
    # a factor block after a residual block is no truncation: refused as in a whole file
    rblk = FILES["rgb residual"]
    first = next(c for c in chunks(rblk) if c[2] == b"RBLK")
    ublk = next(c for c in chunks(rblk) if c[2] == b"UBLK")
    moved = rblk[:ublk[0]] + rblk[first[0]:first[1]] + rblk[ublk[0]:ublk[1]]
    with pytest.raises(SvdiError, match="factor block after a residual block"):
        svdcodec.decode(moved, truncated="fill")


def test_the_chunk_a_file_ends_in_is_refused_where_no_byte_could_make_it_valid() -> None:
    data = FILES["rgb"]
    first = next(c[0] for c in chunks(data) if c[2] in (b"SBLK", b"VBLK", b"UBLK"))
    last = max(b for a, b, k in chunks(data) if k != b"IEND")
    for cut, why in (
            (data[:first] + struct.pack(">I4s", 100, b"ZZZZ") + b"x" * 20, "ZZZZ"),
            (data[:first] + struct.pack(">I4s", 100, b"HEAD") + b"x" * 20, "HEAD"),
            (data[:last] + struct.pack(">I4s", 50, b"PLAN") + b"y" * 10, "PLAN"),
            (data[:first] + b"\xff\xff\xff\xffUBLK\x00\x00\x00", "exceeds the chunk limit"),
            (data[:first] + b"\x00\x00\x00\x10\x00\x01\x02\x03\x04", "invalid chunk type")):
        for mode in ("raise", "fill"):
            with pytest.raises(SvdiError, match=why):
                svdcodec.decode(cut, truncated=mode)
    # a cut inside a chunk that may come there stays a cut
    assert svdcodec.decode(data[:last - 3], truncated="fill").shape == (12, 14, 3)


def test_every_component_asked_of_a_cut_file_applies_the_residuals_that_arrived() -> None:
    data = FILES["rgb residual"]
    a, b = [(a, b) for a, b, k in chunks(data) if k == b"RBLK"][7]
    rank = max(p.rank for p in planes_of(data))
    whole = svdcodec.decode(data, components=rank + 1000)  # every component: the residuals too
    out = svdcodec.decode(data[:(a + b) // 2], truncated="fill", components=rank + 1000)
    for c, rows in enumerate((8, 12, 8)):
        np.testing.assert_array_equal(out[:rows, :, c], whole[:rows, :, c])


def test_pillow_raises_by_default_and_loads_what_arrived_when_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # patch 8: U in several component groups, several UBLK chunks (whatever layout the
    # prediction would choose for this picture)
    data = svdcodec.encode(photo(512, 768, 3, seed=6), quality=75, layout="patch8")
    ublk = [a for a, b, k in chunks(data) if k == b"UBLK"]
    cut = data[:ublk[1] + 100]  # inside the second group's U: component 0 whole
    with pytest.raises(OSError, match=HINT):
        Image.open(io.BytesIO(cut)).load()
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    im = Image.open(io.BytesIO(cut))
    im.load()
    np.testing.assert_array_equal(np.asarray(im), svdcodec.decode(data, components=1))
    small = Image.open(io.BytesIO(cut))
    small.draft("RGB", (192, 128))
    np.testing.assert_array_equal(np.asarray(small),
                                  svdcodec.decode(data, components=1, reduce=4))
    # at the headers' end and within the next chunk's header too (the hint of decode's
    # error holds there: Image.open needs no byte past the PLAN chunks)
    for extra in (0, 4, 8, 10):
        nothing = Image.open(io.BytesIO(data[:headers_end(data) + extra]))
        assert nothing.size == (768, 512) and not np.asarray(nothing).any(), extra
    with pytest.raises(UnidentifiedImageError):  # as Pillow's PNG cut before IHDR is whole
        Image.open(io.BytesIO(data[:headers_end(data) - 3]))


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    # the svdcodec this suite imports, run outside any clone (`python -m` would import the
    # clone's sources before it)
    env = {**os.environ, "PYTHONPATH": str(Path(svdcodec.__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable, "-m", "svdcodec", *args], capture_output=True,
                          text=True, check=False, cwd=tempfile.gettempdir(), env=env)


def test_tools_say_where_the_file_ends(tmp_path: Path) -> None:
    data = svdcodec.encode(photo(512, 768, 3, seed=7), quality=75, layout="patch8")  # (above)
    ublk = [a for a, b, k in chunks(data) if k == b"UBLK"]
    src = tmp_path / "cut.svdi"
    src.write_bytes(data[:ublk[1] + 100])
    where = f"the file ends at byte {ublk[1] + 100}, inside the UBLK chunk at byte {ublk[1]}"
    info = run_tool("info", str(src))
    assert info.returncode == 1 and where in info.stderr
    assert "rank r = " in info.stdout and "TRUNCATED" in info.stdout
    assert "the first 1 component of every plane" in info.stdout
    assert "files failed" not in info.stderr  # one file, described and refused: one input
    assert run_tool("info", str(src), str(src)).stderr.rstrip().endswith(
        "svdi-info: 2 of 2 files failed")
    refused = run_tool("decode", str(src), "-o", str(tmp_path / "a.png"))
    assert refused.returncode == 1 and where in refused.stderr
    assert "--truncated fill" in refused.stderr and not (tmp_path / "a.png").exists()
    filled = run_tool("decode", "--truncated", "fill", str(src), "-o", str(tmp_path / "b.png"))
    assert filled.returncode == 0 and where in filled.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")),
                                  svdcodec.decode(data, components=1))
