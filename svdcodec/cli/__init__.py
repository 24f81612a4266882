"""The command-line tools svdi-encode, svdi-decode, svdi-info, svdi-compare (`tools`,
`compare`) and svdi-view (`view`: the JavaScript viewer served on localhost), with the safe
output writing (`safe_io`) and process-pool batches (`batch`) they share. Nothing else in the
package imports this one."""

from .tools import compare_main, decode_main, encode_main, info_main, main, view_main

__all__ = ["compare_main", "decode_main", "encode_main", "info_main", "main", "view_main"]
