"""Load under failure: many clients submit while a worker is killed and Redis restarts empty.

Starts its own PostgreSQL database, a second redis-server (broker, cache and
channel layer), Daphne and a django-q2 cluster with two workers, and serves the
pages from 127.0.0.1. Twenty client threads submit 500 URLs through the API;
a third of the way in, the worker running a job is SIGKILLed; two thirds of the
way in, Redis is killed and started again empty. Then `manage.py sweep` nudges
until every accepted job has ended (or the time limit passes), and the numbers
are printed as Markdown.

    python bench/load.py [--jobs 500] [--clients 20] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ingestion.test_crash_safety import (  # noqa: E402
    POSTGRES,
    RedisServer,
    app_env,
    scratch_database,
    start_cluster,
    start_daphne,
    stop,
    sweep,
)
from tests.pageserver import PageServer  # noqa: E402

WORDS = [
    "orchard", "bees", "pollination", "harvest", "research", "season", "colony",
    "variety", "bloom", "farmer", "hedgerow", "nectar", "cooperative", "blossom",
    "distance", "weather", "spring", "insect", "yield", "branch",
]  # fmt: skip


def article(index: int) -> str:
    """A distinct article per page, so the library never sees two alike."""
    paragraphs = []
    for p in range(6):
        words = [WORDS[(index * 7 + p * 3 + i * (index % 5 + 1)) % len(WORDS)] for i in range(45)]
        paragraphs.append(f"<p>Report {index}, part {p}: " + " ".join(words) + ".</p>")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Field report {index}</title></head><body><article>"
        f"<h1>Field report {index}</h1>{''.join(paragraphs)}</article></body></html>"
    )


@dataclass
class Requests:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    def record(self, status: int, ms: float, job_id: str | None) -> None:
        with self.lock:
            self.sent += 1
            self.statuses[status] += 1
            self.latencies_ms.append(ms)
            if job_id:
                self.accepted.append(job_id)


def client(base: str, token: str, urls: list[str], requests: Requests) -> None:
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for url in urls:
            # A client retries a deliberate 503 after its Retry-After, as the API asks.
            for _ in range(10):
                started = time.perf_counter()
                try:
                    response = http.post("/api/v1/ingest", json={"url": url})
                except httpx.HTTPError as exc:
                    with requests.lock:
                        requests.errors[type(exc).__name__] += 1
                    time.sleep(0.5)
                    continue
                ms = (time.perf_counter() - started) * 1000
                job_id = response.json().get("job_id") if response.status_code == 202 else None
                requests.record(response.status_code, ms, job_id)
                if response.status_code != 503:
                    break
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))


def kill_a_busy_worker(db: psycopg.Connection) -> int | None:
    """SIGKILL the worker process that holds a job's lease (its pid is in lease_owner)."""
    for _ in range(100):
        row = db.execute(
            "SELECT lease_owner FROM ingestion_job WHERE status = 'processing' LIMIT 1"
        ).fetchone()
        if row and row[0]:
            pid = int(row[0].split(":")[1])
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.1)
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for jobs")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="librarian-load-"))
    pages = PageServer().start()
    urls = [pages.add(f"/report-{i}", article(i)) for i in range(args.jobs)]
    broker = RedisServer().start()
    daphne = cluster = None
    events: list[str] = []
    requests = Requests()
    try:
        with scratch_database("load", data_dir) as (name, token):
            env = app_env(
                DATABASE_URL=f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}",
                REDIS_URL=broker.url,
                LIBRARIAN_DATA_DIR=str(data_dir),
                LIBRARIAN_INGEST_RATE="1000000/min",
                LIBRARIAN_WORKERS="2",
                LIBRARIAN_LEASE_S="5",
                LIBRARIAN_NUDGE_AFTER_S="2",
                LOG_LEVEL="WARNING",
            )
            daphne, base = start_daphne(env, data_dir / "daphne.log")
            cluster = start_cluster(env, data_dir / "cluster.log")
            db = psycopg.connect(
                f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}", autocommit=True
            )
            shares = [urls[i :: args.clients] for i in range(args.clients)]
            threads = [
                threading.Thread(target=client, args=(base, token, share, requests))
                for share in shares
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()

            while requests.sent < args.jobs // 3 and any(t.is_alive() for t in threads):
                time.sleep(0.05)
            pid = kill_a_busy_worker(db)
            events.append(f"worker {pid} SIGKILLed after {requests.sent} requests")
            while requests.sent < 2 * args.jobs // 3 and any(t.is_alive() for t in threads):
                time.sleep(0.05)
            broker.kill()
            time.sleep(1.0)
            broker.start()
            events.append(f"Redis restarted empty after {requests.sent} requests")

            for thread in threads:
                thread.join()
            submitted_s = time.monotonic() - started
            accepted = list(requests.accepted)
            deadline = time.monotonic() + args.timeout
            sweeps = 0
            while time.monotonic() < deadline:
                active = db.execute(
                    "SELECT count(*) FROM ingestion_job WHERE status IN ('queued', 'processing')"
                ).fetchone()
                if not active or active[0] == 0:
                    break
                time.sleep(5)
                sweep(env)
                sweeps += 1
            drained_s = time.monotonic() - started

            statuses: dict[str, str] = dict(
                db.execute("SELECT id::text, status FROM ingestion_job").fetchall()
            )
            reasons = Counter(
                r[0] or "?"
                for r in db.execute(
                    "SELECT error_type FROM ingestion_job WHERE status = 'failed'"
                ).fetchall()
            )
            twice = db.execute(
                "SELECT count(*) FROM (SELECT job_id FROM ingestion_jobevent"
                " WHERE type = 'job_completed' GROUP BY job_id HAVING count(*) > 1) t"
            ).fetchone()
            attempts = Counter(
                r[0] for r in db.execute("SELECT attempts FROM ingestion_job").fetchall()
            )
            cluster_alive = cluster.poll() is None
            db.close()
    finally:
        stop(cluster, group=True)
        stop(daphne)
        broker.kill()
        pages.stop()

    final = Counter(statuses.get(job_id, "missing") for job_id in accepted)
    lost = sum(n for s, n in final.items() if s not in ("completed", "failed", "cancelled"))
    server_errors = sum(n for s, n in requests.statuses.items() if s >= 500 and s != 503)
    lat = requests.latencies_ms
    print("## Load under failure\n")
    print(
        f"{args.jobs} URLs submitted by {args.clients} concurrent clients (httpx threads) to one "
        "Daphne process; a django-q2 cluster with 2 workers; PostgreSQL, and a Redis of its "
        "own as broker, cache and channel layer; pages served from 127.0.0.1. "
        + "; ".join(events)
        + f". `manage.py sweep` ran {sweeps} times while the queue drained.\n"
    )
    print("| measure | value | goal |")
    print("|---|---|---|")
    print(f"| requests sent | {len(lat)} | |")
    print(
        "| responses by status | "
        + ", ".join(f"{s}: {n}" for s, n in sorted(requests.statuses.items()))
        + " | |"
    )
    print(f"| accepted (202) | {len(accepted)} | {args.jobs} |")
    print(f"| completed | {final.get('completed', 0)} | |")
    failed = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
    print(f"| failed | {final.get('failed', 0)} ({failed}) | |")
    print(f"| processed twice | {twice[0] if twice else '?'} | 0 |")
    print(f"| lost (accepted, never ended) | {lost} | 0 |")
    print(f"| 5xx other than deliberate 503 | {server_errors} | 0 |")
    print(f"| client-side transport errors | {sum(requests.errors.values())} | 0 |")
    print(f"| API latency p50 | {percentile(lat, 0.50):.1f} ms | |")
    print(f"| API latency p99 | {percentile(lat, 0.99):.1f} ms | < 50 ms |")
    print(f"| API latency mean | {statistics.fmean(lat) if lat else 0:.1f} ms | |")
    print(f"| submissions took | {submitted_s:.1f} s | |")
    print(f"| all jobs ended after | {drained_s:.1f} s | |")
    print(
        "| jobs by attempts | "
        + ", ".join(f"{a}: {n}" for a, n in sorted(attempts.items()))
        + " | |"
    )
    print(f"| cluster still running | {'yes' if cluster_alive else 'no'} | yes |")
    ok = lost == 0 and server_errors == 0 and (not twice or twice[0] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
