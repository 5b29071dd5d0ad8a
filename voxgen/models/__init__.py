"""The networks, each exposing ``loss(batch)`` for the one training loop and a ``build_*`` from its
``model`` config node (registered by name in ``voxgen.runs.MODELS``)."""
