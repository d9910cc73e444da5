"""The production HTTP server: Granian (HTTP in Rust) running the app's WSGI callable in a few
threads of one process per core. `make serve` and the benchmarks start it through here.

    python -m app.server                  # app:create_app on BIND, as `make serve` does

Settings from the environment: ``BIND`` (host:port, 127.0.0.1:8000), ``WEB_CONCURRENCY``
(processes, one per core) and ``WEB_THREADS`` (threads per process, 4); any other Granian
setting through its own ``GRANIAN_*`` variables.

Why not gunicorn, which served until 2026-11: on the on-sale benchmark (bench/onsale.py, 2 cores,
2 x 4, runs alternating on one machine) gunicorn sold 249 to 252 tickets/s and Granian 266 to 287,
with a lower p99: gunicorn's HTTP handling is Python, and every request crosses its threads.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Mapping, Sequence

# One process per core with a few threads: more threads only fight over the GIL and hold more
# transactions open at once (bench/onsale.py: 2 x 4 best, 2 x 8 a sixth slower). Threads
# still cover the wait on a slow card processor.
DEFAULT_THREADS = 4
KILL_TIMEOUT_SECONDS = 30


def command(
    target: str = "app:create_app",
    *,
    factory: bool = True,
    env: Mapping[str, str] = os.environ,
) -> list[str]:
    """The Granian command line that serves ``target`` (a factory by default) with the
    settings of ``env``."""
    workers = env.get("WEB_CONCURRENCY") or str(multiprocessing.cpu_count())
    threads = env.get("WEB_THREADS") or str(DEFAULT_THREADS)
    return [
        sys.executable, "-m", "granian",
        "--interface", "wsgi",
        *(["--factory"] if factory else []),
        *_listen(env.get("BIND", "127.0.0.1:8000")),
        "--workers", workers,
        "--blocking-threads", threads,
        "--runtime-threads", "1",  # the Rust side only does HTTP: one thread is plenty
        "--no-ws",
        "--respawn-failed-workers",
        # A stop waits this long for requests in flight, then kills the worker (as gunicorn's
        # 30 s timeout did); a deploy never hangs on one stuck request.
        "--workers-kill-timeout", str(KILL_TIMEOUT_SECONDS),
        target,
    ]  # fmt: skip


def _listen(bind: str) -> list[str]:
    """Granian's options for a gunicorn-style BIND: host:port, [ipv6]:port or unix:/path."""
    if bind.startswith("unix:"):
        return ["--uds", bind.removeprefix("unix:")]
    host, _, port = bind.rpartition(":")
    return ["--host", host.strip("[]") or "127.0.0.1", "--port", port]


def main(argv: Sequence[str] | None = None) -> None:
    """Replace this process with the server (signals go straight to Granian)."""
    args = list(sys.argv[1:] if argv is None else argv)
    target = args[0] if args else "app:create_app"
    factory = target.endswith("()") or not args
    argv_out = command(target.removesuffix("()"), factory=factory)
    os.execv(sys.executable, argv_out)  # noqa: S606 - our own interpreter, our own arguments


if __name__ == "__main__":
    main()
