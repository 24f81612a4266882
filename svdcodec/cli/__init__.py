"""The command-line tools svdi-encode, svdi-decode, svdi-info and svdi-compare (`tools`,
`compare`), with the safe output writing (`safe_io`) and process-pool batches (`batch`) they
share. Nothing else in the package imports this one."""

from .tools import compare_main, decode_main, encode_main, info_main, main

__all__ = ["compare_main", "decode_main", "encode_main", "info_main", "main"]
