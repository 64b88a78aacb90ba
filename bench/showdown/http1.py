"""HTTP/1.1 over raw sockets: one request with Connection: close (readiness and status checks), and
the open-loop fixed-rate client (asyncio), which counts every answer by status and `valid` field."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from .common import percentile


def http_request(port: int, body: bytes, *, timeout: float = 5.0, path: str = "/validate",
                 bearer: str | None = None) -> tuple[int, str]:
    """One POST with Connection: close (with `bearer`: a GET carrying `Authorization: Bearer`, as a
    gateway's client sends it). Returns (status, body). Raises OSError on socket errors."""
    if bearer is not None:
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {bearer}\r\n"
               "Connection: close\r\n\r\n").encode()
    else:
        req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/1."):
        raise ConnectionError(f"not an HTTP response: {raw[:80]!r}")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        rest = dechunk(rest)
    return status, rest.decode("utf-8", "replace")


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2:]


def validity(body: str) -> str:
    if '"valid":true' in body:
        return "true"
    if '"valid":false' in body:
        return "false"
    return "none"


async def read_response(reader: asyncio.StreamReader) -> tuple[int, str, bool]:
    """Read one HTTP/1.1 response. Returns (status, validity, keep_alive)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before a response")
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ConnectionError(f"not an HTTP status line: {line[:80]!r}")
    status = int(parts[1])
    length = None
    chunked = False
    keep_alive = parts[0] == b"HTTP/1.1"
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.partition(b":")
        k = k.strip().lower()
        v = v.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v:
            chunked = True
        elif k == b"connection":
            keep_alive = v == b"keep-alive" or (keep_alive and v != b"close")
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        keep_alive = False
    return status, validity(bytes(body).decode("utf-8", "replace")), keep_alive


async def fixed_rate_async(port: int, token: str, rate: float, duration: float) -> dict:
    """Open-loop generator: one request every 1/rate s, each on an idle keep-alive connection (a new
    one if none is idle, so a slow answer never delays the next send). Latency: send → full answer."""
    body = json.dumps({"token": token}, separators=(",", ":")).encode()
    request = (f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    idle: list = []
    samples: list[tuple[float, float, str]] = []  # (latency s, lag s, "status:valid")
    errors: list[str] = []
    opened = 0

    async def connect():
        nonlocal opened
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened += 1
        return r, w

    async def one(due: float):
        t0 = time.perf_counter()
        try:
            conn = idle.pop() if idle else await connect()
            reader, writer = conn
            writer.write(request)
            await writer.drain()
            status, valid, keep = await asyncio.wait_for(read_response(reader), timeout=10)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
            return
        t1 = time.perf_counter()
        samples.append((t1 - t0, t0 - due, f"{status}:{valid}"))
        if keep:
            idle.append(conn)
        else:
            writer.close()

    for _ in range(4):
        idle.append(await connect())
    n = int(rate * duration)
    start = time.perf_counter() + 0.02
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    wall = time.perf_counter() - start
    for _r, w in idle:
        w.close()
    counts: dict[str, int] = {}
    for _l, _g, k in samples:
        counts[k] = counts.get(k, 0) + 1
    lat = sorted(s[0] * 1000 for s in samples)
    return {
        "sent": n,
        "answered": len(samples),
        "wall_s": wall,
        "achieved_rps": len(samples) / wall if wall > 0 else None,
        "connections_opened": opened,
        "errors": errors,
        "counts": counts,
        "latencies_ms": [round(s[0] * 1000, 4) for s in samples],
        "send_lag_ms_max": round(max((s[1] for s in samples), default=0) * 1000, 3),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else None,
    }
