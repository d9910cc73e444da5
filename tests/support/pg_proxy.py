"""A TCP proxy in front of PostgreSQL that a test cuts and restores, to take the database away
from a second app while the suite's own connections stay up."""

from __future__ import annotations

import contextlib
import socket
import threading

from sqlalchemy.engine import URL


class PgProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; ``cut`` closes the listener and every forwarded
    connection (connections are then refused at once), ``restore`` listens on the port again."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        """``upstream``: PostgreSQL's (host, port), or the path of its Unix socket."""
        self.upstream = upstream
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._open)

    def restore(self) -> None:
        assert self._listener is None, "the proxy is already listening"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.05)
        self._stop.clear()
        self._acceptor = threading.Thread(target=self._accept, args=(self._listener,), daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        if self._listener is None:
            return
        self._stop.set()
        assert self._acceptor is not None
        self._acceptor.join(timeout=5)
        self._listener.close()
        self._listener = None
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            self._close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = _connect(self.upstream)
            except OSError:
                downstream.close()
                continue
            downstream.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((downstream, upstream))
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src)
            self._close(dst)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
        sock.close()


def _connect(upstream: tuple[str, int] | str) -> socket.socket:
    if isinstance(upstream, tuple):
        return socket.create_connection(upstream, timeout=2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    sock.connect(upstream)
    return sock


def upstream_of(url: URL) -> tuple[str, int] | str:
    """Where the database listens: a TCP address, or the Unix socket of a server named by a
    ``host`` directory in the query (the embedded PostgreSQL)."""
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return f"{socket_dir}/.s.PGSQL.{url.query.get('port', url.port or 5432)}"
    return (url.host or "127.0.0.1", url.port or 5432)
