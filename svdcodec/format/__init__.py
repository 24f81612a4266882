"""The .svdi format (spec/svdi.md §1-4): bytes only, no linear algebra.

`records` holds the constants, limits and byte layouts; `reader` is the one parser of untrusted
bytes (`unpack`, `read_headers`); `blocks` opens a factor block's zstd frame within the sizes
the reader checked; `writer` packs records and blocks into chunks (`pack_header`, `pack_block`;
version 5's block records: `pack_record`, `factor_chunks`).
"""

from .blocks import MAX_WINDOW, Block, Container, FrameReader, MeanBlock, ResidualBlock
from .metadata import Metadata, metadata_chunks
from .reader import read_headers, read_prefix, unpack
from .records import *
from .writer import (
    END,
    insert_after_head,
    pack,
    pack_block,
    pack_header,
    pack_means,
    pack_residual,
)

__all__ = [
    "AQ_VERSION",
    "BLOCK_RECORD",
    "COLOUR_NONE",
    "COLOUR_YCBCR",
    "DENSE",
    "DENSE_RECORD",
    "ELEMENT_CODES",
    "ELEMENT_TYPES",
    "END",
    "FACTOR_CHUNKS",
    "FACTOR_TYPES",
    "HEAD_RECORD",
    "LAYOUT_PATCH",
    "LAYOUT_PLAIN",
    "MAX_AQ_COMPONENTS",
    "MAX_CHANNELS",
    "MAX_CHANNELS_V1",
    "MAX_CHUNK",
    "MAX_DIMENSION",
    "MAX_RANK",
    "MAX_RESIDUAL",
    "MAX_RESIDUAL_ELEMENTS",
    "MAX_SHIFT",
    "MAX_WIDE_STEP",
    "MAX_WINDOW",
    "MAX_WORK",
    "MEAN_RECORD",
    "NO_AQ",
    "NO_DEBLOCK",
    "NO_REFERENCE",
    "PATCH_SIZES",
    "PLAN_RECORD",
    "PLAN_RECORD_V2",
    "PLAN_RECORD_V4",
    "PLAN_RECORD_V6",
    "PREDICTORS",
    "RESIDUAL_RECORD",
    "SAMPLE_CODES",
    "SAMPLE_TYPES",
    "SAMPLE_TYPES_V1",
    "SIGNATURE",
    "SPARSE",
    "SPARSE_RECORD",
    "VERSION",
    "VERSIONS",
    "Block",
    "Container",
    "FrameReader",
    "Header",
    "MeanBlock",
    "Metadata",
    "Plane",
    "ResidualBlock",
    "insert_after_head",
    "metadata_chunks",
    "pack",
    "pack_block",
    "pack_header",
    "pack_means",
    "pack_residual",
    "plan_record",
    "read_headers",
    "read_prefix",
    "residual_step_limit",
    "unpack",
]
