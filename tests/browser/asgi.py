"""The real ASGI application, plus static files, for the browser tests' Daphne.

Daphne does not serve static files by itself; Django's own handler does it here
so the tests load the same CSS and scripts a deployment serves.
"""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from librarian.asgi import application as librarian_application

application = ASGIStaticFilesHandler(librarian_application)
