"""svdi-view: serve the browser viewer (js/viewer/) and one .svdi file on 127.0.0.1.

    svdi-view FILE [--port N] [--no-browser]

The page, the JS decoder and its zstd module (libzstd as WebAssembly, from js/node_modules
after `npm ci --prefix js`) are static files of the repository's js/ folder; they are not part
of the Python package. The server answers only for a fixed list of those files and the one
named file, each mapped to its path when the server starts, so no request path reaches the file
system (no directory listing, no traversal). It serves until interrupted.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

from .tools import VersionAction
from .wildcards import expand_one

#: Files of js/ the page loads, by URL path (relative to js/).
PAGE_FILES = ("viewer/index.html", "viewer/viewer.js", "viewer/worker.js", "viewer/draw.js",
              "svdi.js", "zstd.js")
ZSTD_FILES = ("node_modules/@bokuweb/zstd-wasm/dist/web/zstd.js",
              "node_modules/@bokuweb/zstd-wasm/dist/web/zstd.wasm")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".wasm": "application/wasm", ".svdi": "application/octet-stream"}


def find_js_dir() -> Path | None:
    """The js/ folder: $SVDI_VIEWER_DIR, or the first js/viewer/index.html above this module
    (an editable install of a clone), or in or above the current directory (a clone where
    `pip install .` copied the package elsewhere)."""
    if os.environ.get("SVDI_VIEWER_DIR"):
        return Path(os.environ["SVDI_VIEWER_DIR"])
    here = Path.cwd().resolve()
    for parent in [*Path(__file__).resolve().parents, here, *here.parents]:
        if (parent / "js" / "viewer" / "index.html").is_file():
            return parent / "js"
    return None


def routes(js_dir: Path, image: Path | None) -> dict[str, Path]:
    """URL path -> file, for every file the server may send."""
    table = {"/" + name: js_dir / name for name in PAGE_FILES + ZSTD_FILES}
    if image is not None:
        table["/file/" + quote(image.name)] = image
    return table


def make_handler(table: dict[str, Path]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            path = urlsplit(self.path).path
            if path == "/":
                target = "/viewer/index.html"
                files = [p for p in table if p.startswith("/file/")]
                if files:
                    target += "?url=" + quote(files[0], safe="")
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            file = table.get(path)
            if file is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            try:
                body = file.read_bytes()
            except OSError:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self.send_response(HTTPStatus.OK)
            kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
            self.send_header("Content-Type", kind or "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the page reports its own errors

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svdi-view", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("file", nargs="?", help=".svdi file to show (else the page opens empty)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-browser", action="store_true",
                        help="print the address and serve, without opening a browser")
    args = parser.parse_args(argv)
    args.file = expand_one(parser, args.file)
    # Status 1, as every tool answers for a file it cannot read or a thing it cannot do here
    # (docs/usage.md, "Exit status"); 2 stays for a command line that is wrong as typed.
    image = None
    if args.file is not None:
        image = Path(args.file).resolve()
        if not image.is_file():
            reason = "not a file" if image.exists() else "No such file or directory"
            print(f"svdi-view: {args.file}: {reason}", file=sys.stderr)
            return 1
    js_dir = find_js_dir()
    if js_dir is None:
        print("svdi-view: the viewer's files (the repository's js/ folder) are not installed "
              "with the Python package; run it inside a clone of the repository, or set "
              "SVDI_VIEWER_DIR to a js/ folder", file=sys.stderr)
        return 1
    missing = [name for name in ZSTD_FILES if not (js_dir / name).is_file()]
    if missing:
        print(f"svdi-view: {js_dir / missing[0]} is missing: run `npm ci --prefix {js_dir}` "
              "once (the page decodes zstd with that package)", file=sys.stderr)
        return 1
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(routes(js_dir, image)))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(url, flush=True)
    if not args.no_browser:
        threading.Timer(0.2, webbrowser.open, (url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
