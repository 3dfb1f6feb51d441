"""A local MJPEG stream for the live tests (not a test module): a clip's frames served over
HTTP on 127.0.0.1 at a fixed rate, as a network camera would.

Each client gets `count` frames (the clip looped, from its first frame) paced at `fps`, then
the connection closes (the source ends), unless `stall` keeps it open without sending (a
source that stops sending). `count=None` streams until the server closes.

    python tests/stream_helpers.py sample_data/camvid/val --fps 15 --port 8090
"""
import argparse
import http.server
import itertools
import os
import threading
import time
from typing import List, Optional

import cv2

BOUNDARY = "clipframe"


def clip_jpegs(folder: str, quality: int = 90) -> List[bytes]:
    """The images of `folder` (sorted) encoded as JPEG."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".png", ".jpg")))
    out = []
    for name in names:
        ok, buf = cv2.imencode(".jpg", cv2.imread(os.path.join(folder, name)),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok, name
        out.append(buf.tobytes())
    if not out:
        raise FileNotFoundError(f"no .png/.jpg frames in {folder}")
    return out


class ClipServer:
    """Serves `frames` (JPEG bytes) as multipart/x-mixed-replace on 127.0.0.1."""

    def __init__(self, frames: List[bytes], fps: float, count: Optional[int] = None,
                 stall: bool = False, port: int = 0):
        self.frames, self.fps, self.count, self.stall = frames, float(fps), count, stall
        self.sent = 0                      # frames written to clients, all clients together
        self.closing = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                server.stream(self.wfile)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def stream(self, out) -> None:
        """Write frames to one client at `fps` (deadline-paced, so the rate does not drift)."""
        start = time.monotonic()
        frames = itertools.cycle(self.frames)
        indices = range(self.count) if self.count is not None else itertools.count()
        try:
            for i in indices:
                if self.closing.is_set():
                    return
                delay = start + i / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                jpeg = next(frames)
                out.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                          f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                out.flush()
                self.sent += 1
            while self.stall and not self.closing.is_set():
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            return

    def __enter__(self) -> "ClipServer":
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (open streams end at their next frame)."""
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--count", type=int, default=None, help="frames per client")
    a = parser.parse_args()
    with ClipServer(clip_jpegs(a.folder), a.fps, a.count, port=a.port) as srv:
        print(f"serving {a.folder} at {a.fps:g} fps on {srv.url} (Ctrl-C stops)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
