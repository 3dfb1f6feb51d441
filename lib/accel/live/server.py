"""The live view in a browser: an MJPEG stream over HTTP (`--serve PORT`).

`GET /` is a page showing the stream, `GET /stream.mjpg` the stream itself
(multipart/x-mixed-replace, one JPEG per picture; every client gets the newest picture as it
comes, so a slow client skips pictures instead of queueing them). Bound to 127.0.0.1 unless
told otherwise: the view is not on the network by default.
"""
import http.server
import logging
import socket
import threading
from typing import Optional

import cv2
import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["MjpegServer"]

BOUNDARY = "accelframe"
PAGE = ("<!doctype html><title>Accel live</title><body style='margin:0;background:#222'>"
        "<img src='/stream.mjpg' style='max-width:100%'></body>\n")


class MjpegServer:
    """Serves the newest published picture as MJPEG on `bind:port` (port 0: any free one,
    see `port`)."""

    def __init__(self, port: int, bind: str = "127.0.0.1", quality: int = 80):
        self.quality = int(quality)
        self.clients = 0
        self._cond = threading.Condition()
        self._picture: Optional[np.ndarray] = None
        self._jpeg: Optional[bytes] = None
        self._seq = 0
        self._closed = False
        cls = http.server.ThreadingHTTPServer
        if ":" in bind:   # an IPv6 address
            cls = type("ThreadingHTTPServer6", (cls,), {"address_family": socket.AF_INET6})
        try:
            self.httpd = cls((bind, int(port)), _handler(self))
        except OSError as err:
            raise OSError(f"--serve {port}: cannot listen on {bind}:{port} ({err.strerror or err})"
                          ) from None
        self.httpd.daemon_threads = True
        self.bind, self.port = bind, self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="live-serve",
                                        daemon=True)
        self._thread.start()
        host = f"[{bind}]" if ":" in bind else bind
        self.url = f"http://{host}:{self.port}/"
        logger.info("live view at %s (MJPEG stream: %sstream.mjpg)%s", self.url, self.url,
                    "" if bind in ("127.0.0.1", "localhost", "::1")
                    else "; reachable from the network (--bind)")

    def publish(self, picture: np.ndarray) -> None:
        """Make `picture` (BGR) the newest one; encoded only while a client watches."""
        with self._cond:
            self._picture, self._jpeg = picture, None
            self._seq += 1
            watched = self.clients > 0
            self._cond.notify_all()
        if watched:
            self._encoded()

    def _encoded(self) -> Optional[bytes]:
        """The newest picture as JPEG (encoded once, by whichever thread asks first)."""
        with self._cond:
            picture, jpeg = self._picture, self._jpeg
        if jpeg is None and picture is not None:
            ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            jpeg = buf.tobytes() if ok else None
            with self._cond:
                if self._picture is picture:
                    self._jpeg = jpeg
        return jpeg

    def _stream(self, out) -> None:
        """Write pictures to one client until it leaves or the server closes."""
        with self._cond:
            self.clients += 1
            seen = 0 if self._picture is not None else self._seq
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._seq != seen or self._closed, 0.5)
                    if self._closed:
                        return
                    if self._seq == seen:
                        continue
                    seen = self._seq
                jpeg = self._encoded()
                if jpeg is None:
                    continue
                out.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                          f"{len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                out.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            with self._cond:
                self.clients -= 1

    def close(self) -> None:
        """End every stream and stop listening."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: MjpegServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # requests at debug level, not on stderr
            logger.debug("%s %s", self.address_string(), fmt % args)

        def do_GET(self):
            if self.path in ("/", "/index.html"):
                body = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.split("?")[0] == "/stream.mjpg":
                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                server._stream(self.wfile)
            else:
                self.send_error(404, "the live view is at / and /stream.mjpg")
    return Handler
