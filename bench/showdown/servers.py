"""Server processes: started in their own session, polled until ready, checked against the contract,
and ended by their process group, also on failure or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .common import ROOT, BenchFailure, free_port
from .contenders import BY_NAME
from .http1 import http_request, validity


@dataclass
class Server:
    contender: str
    port: int
    proc: subprocess.Popen
    log: Path | None = None
    t_spawn: float = 0.0  # perf_counter just before Popen
    idle_rss_kib: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


LIVE: list[subprocess.Popen] = []  # every process group this harness started and has not ended yet


def stop(proc: subprocess.Popen) -> None:
    """End the process group we created for this server (start_new_session: its pgid is its pid)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    else:
        # the leader is gone; make sure nothing it started lingers in its group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc in LIVE:
        LIVE.remove(proc)


def stop_all() -> None:
    for p in list(LIVE):
        stop(p)


def spawn(name: str, cmd: list[str], env: dict, log: Path | None, port: int) -> Server:
    """Start one process in a session of its own (its process group is its pid, ended by stop())."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    try:
        t_spawn = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log:
            out.close()
    LIVE.append(proc)
    return Server(name, port, proc, log, t_spawn)


def start(ctx, c: str, log: Path | None, jwt_env: dict | None = None) -> Server:
    """A contender on a free port, with the run's HS256 secret unless another key configuration is given."""
    port = free_port()
    cmd, extra = BY_NAME[c].command(ctx, port, jwt_env or {"JWT_SECRET": ctx.secret})
    return spawn(c, cmd, ctx.env_with(**extra), log, port)


def wait_ready(ctx, srv: Server, timeout: float = 30.0, token: str | None = None,
               gateway_path: str | None = None) -> float:
    """Poll POST /validate (valid token) tightly until a 200; returns perf_counter at that answer.
    With `gateway_path`: GET it with `Authorization: Bearer`, any other answer tolerated until the
    timeout (a proxy answers 5xx until what is behind it listens)."""
    body = json.dumps({"token": token or ctx.tokens["valid"]}).encode()
    deadline = time.perf_counter() + timeout
    while True:
        if srv.proc.poll() is not None:
            tail = srv.log.read_text(errors="replace")[-2000:] if srv.log and srv.log.exists() else ""
            raise BenchFailure(f"{srv.contender} exited with {srv.proc.returncode} before answering\n{tail}")
        try:
            if gateway_path is None:
                status, text = http_request(srv.port, body, timeout=10)
            else:
                status, text = http_request(srv.port, b"", timeout=10, path=gateway_path, bearer=token)
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
            status = None
        except (OSError, ConnectionError, ValueError) as e:
            status = None
            if time.perf_counter() > deadline:
                raise BenchFailure(f"{srv.contender}: socket error while waiting for it: {e}")
        if status == 200:
            if gateway_path is None and validity(text) != "true":
                raise BenchFailure(f"{srv.contender}: 200 without \"valid\":true for the valid token: {text[:200]}")
            return time.perf_counter()
        if status is not None and status != 503 and gateway_path is None:
            raise BenchFailure(f"{srv.contender}: the valid token was answered {status}: {text[:200]}")
        if time.perf_counter() > deadline:
            raise BenchFailure(f"{srv.contender}: no 200 for the valid token within {timeout}s of the spawn "
                               f"(last answer: {status})")
        time.sleep(0.001)


def check_contract(ctx, srv: Server, tokens: dict | None = None):
    """The statuses the harness relies on, for this server: valid 200, invalid 401, no token 400."""
    tokens = tokens or ctx.tokens
    checks = [
        ("valid", json.dumps({"token": tokens["valid"]}).encode(), 200, "true"),
        ("invalid-signature", json.dumps({"token": tokens["invalid"]}).encode(), 401, "false"),
        ("no token", b"{}", 400, "false"),
    ]
    for name, body, want, want_valid in checks:
        try:
            status, text = http_request(srv.port, body)
        except (OSError, ConnectionError, ValueError) as e:
            raise BenchFailure(f"{srv.contender}: socket error on the {name} check: {e}")
        ok = status == want and validity(text) == want_valid
        ctx.checks["preflight"].append(
            {"contender": srv.contender, "check": name, "status": status, "expected": want, "ok": ok,
             "body": text[:160]})
        ctx.checks["responses_checked"] += 1
        if not ok:
            raise BenchFailure(f"{srv.contender}: {name} answered {status} {text[:200]!r}, expected {want} "
                               f"with \"valid\":{want_valid}")
