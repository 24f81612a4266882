"""Band and buffer sizes: how the encoder and decoder cut a plane into pieces of work.

None of these change the bytes of a file or the decoded pixels (the tests run with tiny values
to check that); they trade per-band overhead against cache and memory. The code reads them as
`band_sizes.NAME` at call time, so a test can patch them in one place.
"""

from __future__ import annotations

from itertools import pairwise

#: Decoder: target pixels per band: large enough that per-band Python overhead is noise, small
#: enough that a band's float temporaries stay in cache.
BAND_PIXELS = 1 << 18
#: Decoder, band renderer (`decoder.stream`): target pixels per band of a file whose planes are
#: all exact (every file of format version 5), whose pixels do not depend on the bands. An
#: image below about 2^19 pixels (a 768 x 512 photo) is then one band, rendered without a
#: thread hand-off (docs/performance.md, "What a 19 MP load() holds").
EXACT_BAND_PIXELS = 1 << 18
#: Above LARGE_IMAGE_PIXELS, bands of LARGE_EXACT_BAND_PIXELS: what two threads' band buffers
#: hold is then the part of a load()'s memory above the image itself that the band size sets
#: (the issue's bound of 1.5 x the raw pixels at 19 MP), for a few more calls per image: 48
#: rows of a 4608-pixel-wide image (docs/performance.md, "The 19 MP `load()` in larger bands").
LARGE_IMAGE_PIXELS = 1 << 22
LARGE_EXACT_BAND_PIXELS = 3 << 16


def exact_band_pixels(height: int, width: int) -> int:
    """Target pixels per band of the band renderer for an image of exact planes."""
    if height * width > LARGE_IMAGE_PIXELS:
        return min(EXACT_BAND_PIXELS, LARGE_EXACT_BAND_PIXELS)
    return EXACT_BAND_PIXELS
#: Decoder, band renderer: bytes of symbols per piece of a held sparse block of a left factor
#: (`decoder.factors.SparsePieces`), each dropped once the bands that read it are done.
PIECE_BYTES = 1 << 18
#: Decoder: fewest matrix rows per band: below this OpenBLAS uses small-matrix kernels that round
#: differently from the whole-matrix product.
MIN_BAND_ROWS = 256
#: Decoder: bytes of int64 work per chunk when a dense block is streamed.
CHUNK_BYTES = 1 << 20
#: Decoder: rows between the compiled decoder's checkpoints in a sparse block (24 bytes each),
#: from which any range of rows is decoded (the rows from the checkpoint before a range are
#: walked in vain). The index counts the bytes between checkpoints in blocks, and walks symbol
#: by symbol only the block that holds one: sparser checkpoints, a faster index.
CHECKPOINT_ROWS = 256
#: Decoder: fewest bytes a piece of a factor may take (see `decoder.plane.pass_budget`).
MIN_PASS_BYTES = 1 << 24
#: Decoder: most bytes of decompressed chroma factors for which the chroma planes decode
#: concurrently with the set-up of Y' (each with its own buffers); above, one after the other.
JOB_BYTES = 1 << 24
#: Decoder: fewest bytes of work (decompressed factor blocks, factor rows filled) worth handing
#: to other threads: a smaller job runs in the calling thread, where it costs less than the
#: hand-off (the usual small block, a patch layout's V).
THREAD_BYTES = 1 << 18
#: Decoder: fewest bytes a factor's blocks must average for the opening of its sparse ones
#: (decompressed and indexed) to be shared with other threads: a block of a few hundred bytes costs more in
#: Python steps than in compiled ones, and threads taking such blocks in turn wait for the
#: interpreter's lock more than they work (a file of many one-component records).
THREAD_BLOCK_BYTES = 1 << 14
#: Decoder: largest work array (a band's left factor, product, pixels) a thread keeps for the
#: next decode (`runtime.scratch`): a band of BAND_PIXELS float32 is 1 MiB, a short last band
#: joined to the one before up to twice that.
KEEP_BYTES = 1 << 22
#: Decoder: most bytes of work arrays a thread keeps in all (`runtime.scratch`).
KEEP_THREAD_BYTES = 1 << 23
#: Pillow plugin: largest image memory (bytes, in Pillow's layout) that `load()` renders into
#: directly, as an array the image maps (`pillow_plugin.MAPPED_MODES`); None: every size.
#: A larger image is rendered into band buffers that Pillow copies into its own memory. The
#: array is faulted in page by page as Pillow's own memory is, the copy and the band buffers
#: saved (docs/performance.md, "The 19 MP `load()` into a mapped array").
MAPPED_BYTES: int | None = None
#: Decoder: images of at most this many samples (pixels x channels) are decoded in the calling
#: thread: their bands are too few and too small to repay the hand-off to other threads. A
#: larger image of one band is cut into a band per thread (`decoder.stream.whole_jobs`): on 2
#: cores that shortens a 768 x 512 photo's decode, not a 384 x 384 crop's, and lengthens a
#: 256 x 256 crop's (docs/performance.md, "A photo's decode on both cores").
SERIAL_SAMPLES = 1 << 19
#: Encoder: images of at most this many samples (pixels x channels) run their bands in the
#: calling thread, with no hand-off to other threads (but for their plane jobs: below).
#: Measured on 2 cores (docs/performance.md, "The encoder's one-thread threshold"): bands in
#: a second thread shorten a 768 x 512 RGB photo's encode not at all, one of 1.6-2.4 M
#: samples by 5 % at most, each for 30-50 % more CPU; one of 2.65 M samples by 2-7 %, from
#: 1 MP RGB (3.1 M samples) on by 9-26 %.
ENCODE_SERIAL_SAMPLES = 5 << 19
#: Encoder: images of ENCODE_PLANE_JOB_MIN_SAMPLES to ENCODE_PLANE_JOB_MAX_SAMPLES samples
#: code their planes (of patch layouts) concurrently, each plane whole in a job of one thread
#: with its bands in that thread (`threads.run_jobs`): one hand-off per plane, where the bands
#: are too small to repay a hand-off each (ENCODE_SERIAL_SAMPLES) or barely repay it. Measured
#: on 2 cores (docs/performance.md, "A photo's planes on two cores"): a 768 x 512 RGB photo's
#: encode 11-23 % shorter than in one thread (for 8-31 % more CPU), 1024 x 768 28-32 %;
#: 1152 x 768 to 1920 x 1080 13-21 % shorter than band by band in threads, for less CPU; a
#: 256 x 256 crop's not shorter (-2 to +7 %: below MIN); from about 7 M samples on, within
#: a few % of the bands (above MAX).
ENCODE_PLANE_JOB_MIN_SAMPLES = 1 << 18
ENCODE_PLANE_JOB_MAX_SAMPLES = 3 << 21
#: Encoder: target samples per band of the streaming passes (rows of a plane, whole patch rows).
BAND_SAMPLES = 1 << 18
#: Encoder: Pillow images (8-bit L and RGB) of at least this many samples are read band by
#: band at each pass (`modes.ImageRows`), not copied whole into an array first.
ROWS_FROM_SAMPLES = 1 << 21
#: Encoder: band heights are multiples of this, so that every patch size fits whole patch rows
#: (the largest patch side of the format).
BAND_UNIT = 32


def row_bands(rows: int, unit: int, min_units: int, target: int) -> list[tuple[int, int]]:
    """Split rows into bands of whole units (patch rows) of about `target` rows, none smaller
    than min_units units unless the whole is."""
    if 0 < rows <= target:  # one band (what the lines below give: units <= per)
        return [(0, rows)]
    units = -(-rows // unit)
    per = max(min_units, -(-target // unit), 1)
    bounds = list(range(0, units, per)) + [units]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < per:
        del bounds[-2]  # a short last band joins the one before
    return [(a * unit, min(b * unit, rows)) for a, b in pairwise(bounds)]


def even_bands(rows: int, unit: int, target: int) -> list[tuple[int, int]]:
    """Split rows into as many bands of whole units as `row_bands(rows, unit, 1, target)`,
    their sizes within one unit of each other: no band larger than the others (the joined
    short last band of `row_bands`), so that buffers sized by the first bands fit them all."""
    if 0 < rows <= target:  # one band (what the lines below give: count 1)
        return [(0, rows)]
    units = -(-rows // unit)
    if units == 0:
        return []
    count = max(1, units // max(-(-target // unit), 1))
    size, larger = divmod(units, count)  # the first `larger` bands take a unit more
    bounds = [k * size + min(k, larger) for k in range(count + 1)]
    return [(a * unit, min(b * unit, rows)) for a, b in pairwise(bounds)]
