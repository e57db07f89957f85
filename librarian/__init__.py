"""The Librarian: turns URLs into a curated, searchable library of Markdown files."""

import os

__version__ = "1.0.0"

# Each worker embeds on one core: with BLAS threading on a loaded 2-core machine the
# embedder collapsed from ~55 ms to 300+ ms per chunk (docs/benchmarks.md). Set
# before numpy loads; an operator's own value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
