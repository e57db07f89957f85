"""The library: items, tiers, tags, Markdown files, the vector index and search."""
