"""Embedders: the numpy MiniLM against the reference model, and the API embedder.

The reference vectors in data/minilm_reference.json were made once with
sentence-transformers (see data/make_reference.py). The API embedder talks to an
OpenAI-compatible server on 127.0.0.1, the one stand-in the suite allows.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from library.embeddings import (
    LocalEmbedder,
    OpenAIEmbedder,
    bytes_to_vector,
    get_embedder,
    vector_to_bytes,
)

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


def test_it_matches_the_reference_model(local: LocalEmbedder) -> None:
    texts = [item["text"] for item in REFERENCE["items"]]
    expected = np.asarray([item["vector"] for item in REFERENCE["items"]], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)

    vectors = local.embed(texts)

    cosines = np.sum(vectors * expected, axis=1)
    assert vectors.shape == (len(texts), 384)
    assert cosines.min() >= 0.999, dict(zip(texts, cosines.round(5).tolist(), strict=True))


def test_it_returns_float32_unit_vectors(local: LocalEmbedder) -> None:
    vectors = local.embed(["a short one", "and a somewhat longer sentence to embed", ""])

    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_it_returns_an_empty_matrix_for_no_texts(local: LocalEmbedder) -> None:
    assert local.embed([]).shape == (0, 384)


def test_it_ranks_a_paraphrase_above_unrelated_text(local: LocalEmbedder) -> None:
    query, paraphrase, unrelated = local.embed(
        [
            "How do I bake bread at home?",
            "A simple recipe for making your own loaf in a home oven.",
            "The central bank raised interest rates by half a percentage point.",
        ]
    )

    assert float(query @ paraphrase) > float(query @ unrelated) + 0.2


def test_it_gives_the_same_vectors_in_a_batch_as_one_by_one(local: LocalEmbedder) -> None:
    texts = [item["text"] for item in REFERENCE["items"]]

    batched = local.embed(texts)
    single = np.concatenate([local.embed([text]) for text in texts])

    assert np.allclose(batched, single, atol=1e-5)


def test_it_keeps_the_order_when_batches_are_small() -> None:
    texts = [item["text"] for item in REFERENCE["items"]]
    embedder = LocalEmbedder(batch_size=3)

    assert np.allclose(embedder.embed(texts), LocalEmbedder().embed(texts), atol=1e-5)


def test_it_reads_only_the_first_256_tokens(local: LocalEmbedder) -> None:
    long_text = " ".join(f"sentence number {i} about gardens and bees." for i in range(200))

    first, longer = local.embed([long_text, long_text + " A completely different ending."])

    assert np.allclose(first, longer, atol=1e-6)


def test_it_round_trips_vectors_through_bytes() -> None:
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)

    data = vector_to_bytes(vector)

    assert len(data) == 384 * 4
    assert np.array_equal(bytes_to_vector(data), vector)
    assert np.array_equal(bytes_to_vector(memoryview(data)), vector)


def test_it_describes_the_local_model() -> None:
    embedder = LocalEmbedder()

    assert embedder.name == "all-minilm-l6-v2"
    assert embedder.dim == 384
    assert embedder.version.startswith("all-minilm-l6-v2/")


def test_it_chooses_the_local_embedder_by_default(settings) -> None:
    settings.LIBRARIAN_EMBEDDER = "local"

    assert isinstance(get_embedder(), LocalEmbedder)
    assert get_embedder() is get_embedder()


def test_it_refuses_an_unknown_embedder(settings) -> None:
    settings.LIBRARIAN_EMBEDDER = "word2vec"

    with pytest.raises(ImproperlyConfigured):
        get_embedder()


# --- the OpenAI-compatible API -------------------------------------------------------

API_DIM = 12


def fake_vector(text: str) -> list[float]:
    """A deterministic, deliberately unnormalised vector for `text`."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(byte - 100) / 10 for byte in digest[:API_DIM]]


class EmbeddingsServer:
    """POST /v1/embeddings answered with `fake_vector`, in reverse order, like a
    server is allowed to; every request body and auth header is kept."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.auth.append(self.headers.get("Authorization", ""))
                inputs = body["input"]
                data = [
                    {"object": "embedding", "index": i, "embedding": fake_vector(text)}
                    for i, text in enumerate(inputs)
                ]
                reply = json.dumps(
                    {
                        "object": "list",
                        "data": data[::-1],
                        "model": body["model"],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    }
                ).encode()
                status = 200 if self.path == "/v1/embeddings" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api() -> Iterator[EmbeddingsServer]:
    server = EmbeddingsServer()
    yield server
    server.stop()


@pytest.fixture
def api_settings(settings, api: EmbeddingsServer):
    settings.LIBRARIAN_EMBEDDER = "openai"
    settings.LIBRARIAN_EMBEDDING_MODEL = "stand-in-embed-3"
    settings.OPENAI_BASE_URL = api.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.LIBRARIAN_LLM_MAX_RETRIES = 0
    return settings


def test_it_embeds_through_an_openai_compatible_api(api: EmbeddingsServer, api_settings) -> None:
    embedder = get_embedder()
    texts = ["first text", "second text", "third text"]

    vectors = embedder.embed(texts)

    expected = np.asarray([fake_vector(t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert isinstance(embedder, OpenAIEmbedder)
    assert vectors.dtype == np.float32
    assert np.allclose(vectors, expected, atol=1e-6)
    assert api.requests[-1] == {
        "model": "stand-in-embed-3",
        "input": texts,
        "encoding_format": "float",
    }
    assert api.auth[-1] == "Bearer test-key"


def test_it_discovers_the_dimension_from_the_api(api: EmbeddingsServer, api_settings) -> None:
    embedder = get_embedder()

    assert embedder.dim == API_DIM
    assert embedder.name == "stand-in-embed-3"
    assert embedder.version == "openai/stand-in-embed-3"
    assert len(api.requests) == 1


def test_it_takes_the_dimension_from_a_setting(api: EmbeddingsServer, api_settings) -> None:
    api_settings.LIBRARIAN_EMBEDDING_DIM = API_DIM

    assert get_embedder().dim == API_DIM
    assert api.requests == []


def test_it_splits_many_texts_into_several_requests(api: EmbeddingsServer, api_settings) -> None:
    texts = [f"text number {i}" for i in range(300)]

    vectors = get_embedder().embed(texts)

    assert vectors.shape == (300, API_DIM)
    assert [len(r["input"]) for r in api.requests] == [128, 128, 44]
    last = np.asarray(fake_vector(texts[299]))
    assert np.allclose(vectors[299], last / np.linalg.norm(last), atol=1e-6)


def test_it_needs_a_key_or_a_base_url_for_the_api(settings) -> None:
    settings.LIBRARIAN_EMBEDDER = "openai"
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""

    with pytest.raises(ImproperlyConfigured):
        get_embedder()
