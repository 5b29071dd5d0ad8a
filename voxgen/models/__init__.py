"""Models: each exposes ``loss(batch)`` for the shared training loop."""
