"""The pipeline's stages, one module each: extract, transform, load."""
