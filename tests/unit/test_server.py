"""The production server's command line (app/server.py) from the environment."""

from __future__ import annotations

from app.server import command


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_bind_forms_that_gunicorn_took_still_work():
    plain = command(env={"BIND": "10.0.0.5:80"})
    assert (_option(plain, "--host"), _option(plain, "--port")) == ("10.0.0.5", "80")
    ipv6 = command(env={"BIND": "[::]:8000"})
    assert (_option(ipv6, "--host"), _option(ipv6, "--port")) == ("::", "8000")
    socket = command(env={"BIND": "unix:/run/bilheteria.sock"})
    assert _option(socket, "--uds") == "/run/bilheteria.sock" and "--host" not in socket


def test_processes_threads_and_a_stop_that_never_hangs():
    argv = command("app:create_app", env={"WEB_CONCURRENCY": "3", "WEB_THREADS": "6"})
    assert _option(argv, "--workers") == "3" and _option(argv, "--blocking-threads") == "6"
    assert _option(argv, "--workers-kill-timeout") == "30"
    assert argv[-1] == "app:create_app" and "--factory" in argv
    assert "--factory" not in command("bench_proto:app", factory=False, env={})
