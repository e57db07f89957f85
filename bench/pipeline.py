"""Pipeline throughput: real pages through a real qcluster, pages per minute and stage costs.

Serves the article-extraction set's pages from 127.0.0.1, submits them all, starts
a django-q2 cluster with two workers (the embedded default: SQLite, ORM broker,
local analyzer and embedder) and times the queue until every job has ended.
"""

from __future__ import annotations

import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    dataset = Path(
        sys.argv[1] if len(sys.argv) > 1 else ROOT / "../shared/benchmarks/article-extraction"
    )
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    data_dir = Path(tempfile.mkdtemp(prefix="librarian-bench-"))
    os.environ.update(
        LIBRARIAN_TESTING="1",
        LIBRARIAN_DATA_DIR=str(data_dir),
        LIBRARIAN_FETCH_ALLOW_PRIVATE="1",
        LIBRARIAN_FETCH_PER_HOST="64",
        DJANGO_SETTINGS_MODULE="librarian.settings",
    )
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from ingestion import services
    from ingestion.models import Job, JobEvent
    from tests.pageserver import PageServer

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    user = User.objects.create_user("bench")
    server = PageServer().start()
    pages = sorted((dataset / "html").glob("*.html.gz"))
    for page in pages:
        server.add(f"/{page.name[:-8]}", gzip.decompress(page.read_bytes()))
    for page in pages:
        services.job_submit(url=server.url(f"/{page.name[:-8]}"), submitted_by=user)
    env = {**os.environ, "LIBRARIAN_WORKERS": str(workers)}
    started = time.monotonic()
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = started + 900
        while time.monotonic() < deadline:
            if not Job.objects.filter(status__in=["queued", "processing"]).exists():
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
    finally:
        # The cluster's parent stops its workers itself; the group is the fallback.
        cluster.terminate()
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, 9)
            cluster.wait()
        server.stop()
    done = Job.objects.filter(status="completed").count()
    failed = Job.objects.filter(status="failed")
    reasons: dict[str, int] = {}
    for reason in failed.values_list("error_type", flat=True):
        reasons[reason] = reasons.get(reason, 0) + 1
    stage_ms: dict[str, list[int]] = {"extract": [], "transform": [], "load": []}
    for data in JobEvent.objects.filter(type="stage_completed").values_list("data", flat=True):
        stage_ms[data["stage"]].append(int(data["duration_ms"]))
    ended = done + failed.count()
    print("## Pipeline throughput\n")
    print(
        f"{len(pages)} real news and blog pages (the extraction set) served from 127.0.0.1, "
        f"one django-q2 cluster with {workers} workers, embedded default (SQLite, ORM broker, "
        "local analyzer, local embedder). Goal: ≥ 120 pages/min.\n"
    )
    print("| pages | completed | failed | wall time | pages/min |")
    print("|---|---|---|---|---|")
    rate = ended / elapsed * 60
    print(f"| {len(pages)} | {done} | {failed.count()} | {elapsed:.1f} s | {rate:.0f} |")
    if reasons:
        print("\nFailures by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    print("\n| stage | mean ms | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for stage, values in stage_ms.items():
        if values:
            values.sort()
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            print(
                f"| {stage} | {statistics.mean(values):.0f} | {statistics.median(values):.0f} "
                f"| {p95} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
