"""Jobs survive the services under them failing: Redis restarted empty, PostgreSQL gone a while.

Everything here is a real process: redis-server, Daphne, a django-q2 cluster, a
TCP proxy in front of PostgreSQL that can drop every connection. The helpers at
the top are also what `bench/load.py` drives its load-under-failure run with.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = ("127.0.0.1", 5432)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# ---------------------------------------------------------------- real processes


class RedisServer:
    """A throwaway redis-server that keeps nothing: a restart loses every key."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        if not wait_for(answers, 10, 0.05):
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class TcpProxy:
    """127.0.0.1:<port> → upstream. `stop()` drops every connection and refuses new ones."""

    def __init__(self, upstream: tuple[str, int], port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.1)  # so the accept loop notices stop()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def start_process(
    args: list[str], env: dict[str, str], log: Path, *, group: bool = False
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=group,
    )


def start_daphne(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    daphne = str(Path(sys.executable).parent / "daphne")
    process = start_process(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "librarian.asgi:application"], env, log
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            httpx.get(f"{base}/health", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    if not wait_for(answers, 60):
        process.kill()
        raise RuntimeError("daphne did not answer within 60 s")
    return process, base


def start_cluster(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_process([sys.executable, "manage.py", "qcluster"], env, log, group=True)


def stop(process: subprocess.Popen[bytes] | None, *, group: bool = False) -> None:
    """Ask politely, then kill: a cluster waits on its pusher's blocking dequeue."""
    if process is None or process.poll() is not None:
        return
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()


def sweep(env: dict[str, str]) -> str:
    """`manage.py sweep` in the app's own configuration (its broker, its database)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "sweep"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip() or result.stderr.strip()[-500:]


def app_env(**extra: str) -> dict[str, str]:
    """A server or worker environment with none of this process's database or Redis."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "LIBRARIAN_SQLITE_PATH")
    }
    env.update(
        LIBRARIAN_TESTING="1",
        LIBRARIAN_FETCH_ALLOW_PRIVATE="1",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="librarian.settings",
    )
    env.update(extra)
    return env


SETUP_DATABASE = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("createcachetable")
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
user = User.objects.create_user("loader", password="loader-password-123")
print(Token.objects.create(user=user).key)
"""


@contextlib.contextmanager
def scratch_database(prefix: str, data_dir: Path) -> Iterator[tuple[str, str]]:
    """A fresh migrated PostgreSQL database; yields (name, an API token), dropped after."""
    name = f"librarian_{prefix}_{os.getpid()}"
    admin = f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = app_env(
            DATABASE_URL=f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}",
            LIBRARIAN_DATA_DIR=str(data_dir),
        )
        result = subprocess.run(
            [sys.executable, "-c", SETUP_DATABASE],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise RuntimeError(f"could not migrate {name}: {result.stderr[-3000:]}")
        yield name, result.stdout.strip().splitlines()[-1]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- the tests


def submit(base: str, token: str, url: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/v1/ingest",
        json={"url": url},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )


@pytest.mark.django_db(transaction=True)
def test_it_loses_no_job_when_redis_restarts_empty(alice, page_server, settings, tmp_path):
    from rest_framework.authtoken.models import Token

    from ingestion.models import Job, JobEvent, Status
    from library.models import LibraryItem
    from tests.conftest import slow_article, subprocess_env

    token = Token.objects.create(user=alice).key
    broker = RedisServer().start()
    settings.REDIS_URL = broker.url
    env = subprocess_env(
        settings,
        REDIS_URL=broker.url,
        LIBRARIAN_DATA_DIR=str(tmp_path),
        LIBRARIAN_LEASE_S="3",
        LIBRARIAN_NUDGE_AFTER_S="1",
        LIBRARIAN_WORKERS="2",
    )
    urls = [page_server.add(f"/r{i}", handler=slow_article(seconds=0.8)) for i in range(13)]
    cluster = daphne = None
    try:
        daphne, base = start_daphne(env, tmp_path / "daphne.log")
        cluster = start_cluster(env, tmp_path / "cluster.log")
        before = [submit(base, token, url) for url in urls[:10]]
        assert [r.status_code for r in before] == [202] * 10
        assert wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).exists(), 60)

        # Every task still waiting in Redis is lost here.
        broker.kill()
        time.sleep(0.5)
        broker.start()

        after = [submit(base, token, url) for url in urls[10:]]
        assert [r.status_code for r in after] == [202] * 3
        ids = [r.json()["job_id"] for r in before + after]

        def all_ended() -> bool:
            if Job.objects.filter(pk__in=ids, status__in=["queued", "processing"]).exists():
                sweep(env)  # nudges jobs whose task died with Redis
                return False
            return True

        ended = wait_for(all_ended, 120, 0.5)
        log = (tmp_path / "cluster.log").read_text(errors="replace")[-3000:]
        assert ended, f"{list(Job.objects.values_list('status', 'attempts'))}\n{log}"
        assert cluster.poll() is None, f"the cluster died with Redis:\n{log}"
    finally:
        stop(cluster, group=True)
        stop(daphne)
        broker.kill()
    failed = list(
        Job.objects.filter(pk__in=ids)
        .exclude(status=Status.COMPLETED)
        .values_list("status", "error_stage", "error_type", "error_message")
    )
    assert failed == []
    for job_id in ids:
        types = list(JobEvent.objects.filter(job_id=job_id).values_list("type", flat=True))
        assert types.count("job_completed") == 1, (job_id, types)
    assert LibraryItem.objects.count() == len(ids)


def test_it_answers_503_while_postgres_is_gone_and_finishes_every_job_after(page_server, tmp_path):
    from tests.conftest import slow_article

    with scratch_database("crash", tmp_path) as (name, token):
        proxy = TcpProxy(POSTGRES).start()
        env = app_env(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{proxy.port}/{name}",
            LIBRARIAN_DATA_DIR=str(tmp_path),
            LIBRARIAN_LEASE_S="3",
            LIBRARIAN_NUDGE_AFTER_S="1",
            LIBRARIAN_WORKERS="2",
        )
        observer = psycopg.connect(
            f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}", autocommit=True
        )

        def statuses() -> dict[str, str]:
            rows = observer.execute("SELECT id::text, status FROM ingestion_job").fetchall()
            return dict(rows)

        urls = [page_server.add(f"/p{i}", handler=slow_article(seconds=2)) for i in range(4)]
        cluster = daphne = None
        try:
            daphne, base = start_daphne(env, tmp_path / "daphne.log")
            cluster = start_cluster(env, tmp_path / "cluster.log")
            accepted = [submit(base, token, url) for url in urls]
            assert [r.status_code for r in accepted] == [202] * 4
            assert wait_for(lambda: "processing" in statuses().values(), 60)

            proxy.stop()
            down = time.monotonic()
            refused = submit(base, token, page_server.url("/during"))
            assert refused.status_code == 503
            assert int(refused.headers["Retry-After"]) > 0
            assert refused.json() == {
                "error": "the database is unavailable; try again shortly",
                "field": "",
            }
            job_id = accepted[0].json()["job_id"]
            status = httpx.get(
                f"{base}/api/v1/ingest/{job_id}",
                headers={"Authorization": f"Token {token}"},
                timeout=30,
            )
            assert status.status_code == 503
            # A login cookie is read before any view runs: still a 503, not a 500.
            cookies = {"sessionid": "x" * 32}
            api = httpx.get(f"{base}/api/v1/library", cookies=cookies, timeout=30)
            page = httpx.get(f"{base}/", cookies=cookies, timeout=30)
            assert (api.status_code, page.status_code) == (503, 503)
            assert api.headers["content-type"] == "application/json"
            assert page.headers["Retry-After"]
            assert httpx.get(f"{base}/health", timeout=30).status_code == 503
            # Stay down past the lease, so a worker mid-job loses it.
            time.sleep(max(0.0, 4.0 - (time.monotonic() - down)))
            proxy.start()

            late = submit(base, token, page_server.url("/p0") + "?after=1")
            assert late.status_code in (202, 409)
            if late.status_code == 202:
                accepted.append(late)
            ids = [r.json()["job_id"] for r in accepted]

            def all_ended() -> bool:
                current = statuses()
                if any(current[i] in ("queued", "processing") for i in ids):
                    sweep(env)
                    return False
                return True

            ended = wait_for(all_ended, 120, 0.5)
            log = (tmp_path / "cluster.log").read_text(errors="replace")[-3000:]
            assert ended, f"{statuses()}\n{log}"
            assert cluster.poll() is None, f"the cluster died with the database:\n{log}"
            final = statuses()
            assert {final[i] for i in ids} == {"completed"}, final
            twice = observer.execute(
                "SELECT job_id::text, count(*) FROM ingestion_jobevent"
                " WHERE type = 'job_completed' GROUP BY job_id HAVING count(*) > 1"
            ).fetchall()
            assert twice == []
        finally:
            stop(cluster, group=True)
            stop(daphne)
            proxy.stop()
            observer.close()
