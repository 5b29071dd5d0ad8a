"""The one training loop (``loop``) and the per-model training stages."""
