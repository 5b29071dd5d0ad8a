"""Generative processes as objects, independent of the networks that parametrise them
(``process``: the interface; ``flow``: flow matching; ``sde``/``score_sde``/``solvers``: the
VP-SDE, its process and samplers; ``processes``: the registry by name), classifier-free
``guidance``, and the particle/momentum ``conditioning`` shared by 2D and 3D models."""
