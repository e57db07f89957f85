"""Benchmark live progress events and print a Markdown section `## Live events`.

Usage: python bench/streams.py [--clients 1000] [--events 1000] [--redis-url URL]
                               [--database-url URL]

For each delivery mode (Redis channel layer; the embedded default's table
polling) it starts a real Daphne process on a fresh database and measures:

- emit → client latency over `--events` events to one SSE client (the clock
  starts just before `emit_event` writes the row, so it includes the write);
- `--clients` simultaneous SSE clients (spread over 10 jobs) held by the one
  process while events flow: memory per connection (server RSS growth / N) and
  the p99 latency every client saw;
- 1,000 connect/disconnect cycles: server RSS growth over the second 1,000
  (the first warms the allocator) and channel-layer group members left behind.

Clients and server share this machine's CPUs, so the client's own scheduling
is part of every latency here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = {"redis": "Redis layer (push)", "polling": "polling fallback (table)"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- a lean SSE client


@dataclass
class Client:
    """One raw HTTP/1.1 SSE connection: cheap enough to run 1,000 beside the server."""

    host: str
    port: int
    path: str
    token: str
    latencies: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    first_event: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.StreamWriter | None = None

    async def run(self, stop_after_first: bool = False) -> None:
        reader, self.writer = await asyncio.open_connection(self.host, self.port)
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Token {self.token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        self.writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        chunked = b"chunked" in head.lower()
        self.opened.set()
        buffer = b""
        try:
            while True:
                if chunked:
                    size = int((await reader.readline()).strip() or b"0", 16)
                    if size == 0:
                        return
                    data = await reader.readexactly(size + 2)
                    buffer += data[:-2]
                else:
                    data = await reader.read(65536)
                    if not data:
                        return
                    buffer += data
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    if self.on_frame(frame) and stop_after_first:
                        return
        finally:
            self.writer.close()

    def on_frame(self, frame: bytes) -> bool:
        now = time.time()
        seq = None
        for line in frame.split(b"\n"):
            if line.startswith(b"id: "):
                seq = int(line[4:])
            elif line.startswith(b"data: ") and seq is not None:
                sent = json.loads(line[6:]).get("t0")
                if sent is not None:
                    self.latencies.append((now - sent) * 1000)
        if seq is None:
            return False
        self.seqs.append(seq)
        self.first_event.set()
        return True


# ---------------------------------------------------------------- one mode, in a child process


def setup_django(mode: str, redis_url: str, database_url: str, data_dir: str) -> dict[str, str]:
    env = {
        "LIBRARIAN_TESTING": "1",
        "LIBRARIAN_DATA_DIR": data_dir,
        "DJANGO_SETTINGS_MODULE": "librarian.settings",
        "LOG_LEVEL": "WARNING",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    if mode == "redis":
        env["REDIS_URL"] = redis_url
    os.environ.update(env)
    for name in ("REDIS_URL", "DATABASE_URL"):
        if name not in env:
            os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def start_daphne(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = free_port()
    daphne = Path(sys.executable).parent / "daphne"
    process = subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), "librarian.asgi:application"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/stream", timeout=2).status_code == 401:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("daphne did not start")


def emit_paced(job_ids: list[uuid.UUID], count: int, interval: float, final: bool) -> None:
    from django.db import connections

    from ingestion.events import emit_event

    try:
        for n in range(count):
            emit_event(job_ids[n % len(job_ids)], "stage_progress", stage="extract", t0=time.time())
            if interval:
                time.sleep(interval)
        if final:
            for job_id in job_ids:
                emit_event(job_id, "job_completed", duration_ms=0, result={}, t0=time.time())
    finally:
        connections.close_all()


def new_jobs(user: Any, count: int) -> list[uuid.UUID]:
    from ingestion.models import Job

    ids = []
    for _ in range(count):
        url = f"https://example.com/bench-{uuid.uuid4().hex}"
        ids.append(Job.objects.create(url=url, canonical_url=url, submitted_by=user).pk)
    return ids


async def connect_all(clients: list[Client], tasks: list[asyncio.Task[None]]) -> None:
    for start in range(0, len(clients), 50):
        # In batches: a burst of 1,000 SYNs overflows the listen backlog.
        batch = clients[start : start + 50]
        tasks += [asyncio.create_task(c.run()) for c in batch]
        await asyncio.wait_for(asyncio.gather(*(c.opened.wait() for c in batch)), 60)


async def latency_phase(port: int, token: str, job_id: uuid.UUID, events: int) -> list[float]:
    client = Client("127.0.0.1", port, f"/api/v1/stream/{job_id}", token)
    task = asyncio.create_task(client.run())
    await client.opened.wait()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(emit_paced, [job_id], events, 0.002, True)
    await asyncio.wait_for(task, 60)
    return client.latencies[:events]


async def concurrency_phase(
    pid: int, port: int, token: str, job_ids: list[uuid.UUID], clients_n: int, events: int
) -> dict[str, Any]:
    base = rss_kib(pid)
    clients = [
        Client("127.0.0.1", port, f"/api/v1/stream/{job_ids[n % len(job_ids)]}", token)
        for n in range(clients_n)
    ]
    tasks: list[asyncio.Task[None]] = []
    await connect_all(clients, tasks)
    await asyncio.sleep(2)
    held = sum(1 for t in tasks if not t.done())
    per_conn = (rss_kib(pid) - base) / clients_n
    await asyncio.to_thread(emit_paced, job_ids, events, 0.02, True)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    latencies = [ms for c in clients for ms in c.latencies]
    expected = events // len(job_ids) + 1
    complete = sum(1 for c in clients if len(set(c.seqs)) == len(c.seqs) == expected)
    return {
        "held": held,
        "kib_per_conn": per_conn,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "frames": len(latencies),
        "complete": complete,
    }


async def churn(port: int, token: str, job_id: uuid.UUID, cycles: int) -> None:
    path = f"/api/v1/stream/{job_id}"
    semaphore = asyncio.Semaphore(20)

    async def one() -> None:
        async with semaphore:
            client = Client("127.0.0.1", port, path, token)
            await asyncio.wait_for(client.run(stop_after_first=True), 30)

    await asyncio.gather(*(one() for _ in range(cycles)))


def group_members(redis_url: str, job_id: uuid.UUID) -> int:
    if not redis_url:
        return 0
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.zcard(f"asgi:group:job.{job_id}"))
    finally:
        client.close()


def run_mode(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="bench-streams-")
    env = setup_django(args.mode, args.redis_url, args.database_url, data_dir)
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from ingestion.events import emit_event

    user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    token = Token.objects.create(user=user).key
    process, port = start_daphne(env)
    try:
        [job] = new_jobs(user, 1)
        latencies = asyncio.run(latency_phase(port, token, job, args.events))
        concurrency = asyncio.run(
            concurrency_phase(process.pid, port, token, new_jobs(user, 10), args.clients, 200)
        )
        [churn_job] = new_jobs(user, 1)
        emit_event(churn_job, "job_started", t0=time.time())
        asyncio.run(churn(port, token, churn_job, 1000))
        time.sleep(1)
        warm = rss_kib(process.pid)
        asyncio.run(churn(port, token, churn_job, 1000))
        time.sleep(2)
        grown = rss_kib(process.pid) - warm
        left = group_members(env.get("REDIS_URL", ""), churn_job)
    finally:
        process.terminate()
        process.wait(10)
    return {
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "events": len(latencies),
        "concurrency": concurrency,
        "churn_rss_kib": grown,
        "churn_group_members": left,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    parser.add_argument("--mode", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return 0

    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        # A process per mode: settings (and the channel layer) are read once.
        command = [sys.executable, __file__, "--mode", mode, *sys.argv[1:]]
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(render(results, args))
    return 0


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(results[m]) for m in MODES) + " |"

    n = args.clients
    lines = [
        "## Live events",
        "",
        f"One Daphne process; SSE clients on this machine; database: "
        f"{'as given' if args.database_url else 'SQLite'}; polling every "
        f"{_poll_s()} s. Latency is from just before `emit_event` to the client parsing the frame.",
        "",
        "| | " + " | ".join(MODES.values()) + " |",
        "|---|" + "---|" * len(MODES),
        row(f"emit → client p50 ({args.events} events)", lambda r: f"{r['p50']:.1f} ms"),
        row(f"emit → client p99 ({args.events} events)", lambda r: f"{r['p99']:.1f} ms"),
        row(
            f"SSE clients held (of {n}, over 10 jobs)",
            lambda r: f"{r['concurrency']['held']}",
        ),
        row(
            "clients that got every event once, in order",
            lambda r: f"{r['concurrency']['complete']}",
        ),
        row(
            "server memory per connection", lambda r: f"{r['concurrency']['kib_per_conn']:.0f} KiB"
        ),
        row(
            f"p50 / p99 with {n} clients (200 events)",
            lambda r: f"{r['concurrency']['p50']:.1f} / {r['concurrency']['p99']:.1f} ms",
        ),
        row(
            "1,000 connect/disconnect cycles: RSS growth",
            lambda r: f"{r['churn_rss_kib']} KiB",
        ),
        row("… group members left behind", lambda r: f"{r['churn_group_members']}"),
    ]
    return "\n".join(lines)


def _poll_s() -> str:
    return os.environ.get("LIBRARIAN_SSE_POLL_S", "0.2")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
