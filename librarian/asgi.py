"""The ASGI entry point: Django for HTTP, Channels consumers for streams."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "librarian.settings")

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi = get_asgi_application()

from librarian.routing import build_application  # noqa: E402
from library.search import start_catch_up_thread  # noqa: E402
from library.services import become_index_owner  # noqa: E402

# The web process owns Qdrant local mode; workers leave vectors pending for it.
become_index_owner()
start_catch_up_thread()

if settings.LIBRARIAN_SERVE_STATIC:
    # One process serves its own CSS and JS (make run); behind the production
    # proxy the files are served by the proxy and this is switched off.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi = ASGIStaticFilesHandler(django_asgi)
application = build_application(django_asgi)
