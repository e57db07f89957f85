"""manage.py serve: run Daphne and a django-q2 cluster together; stop both cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the web app (Daphne) and the workers (qcluster); Ctrl-C or SIGTERM stops both."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-worker", action="store_true", help="web server only")

    def handle(self, *args: Any, **opts: Any) -> None:
        python = sys.executable
        commands = [
            [
                python,
                "-m",
                "daphne",
                "-b",
                opts["host"],
                "-p",
                str(opts["port"]),
                "librarian.asgi:application",
            ]
        ]
        if not opts["no_worker"]:
            commands.append([python, "manage.py", "qcluster"])
        children = [subprocess.Popen(cmd) for cmd in commands]
        self.stdout.write(f"serving on http://{opts['host']}:{opts['port']}/ (Ctrl-C stops)")
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.2)
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        codes = [child.returncode for child in children]
        if not stopping and any(codes):
            raise SystemExit(f"a child process exited: {codes}")
