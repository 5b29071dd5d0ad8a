"""Generative processes, independent of the networks that parametrise them: the VP-SDE and its
samplers, and the particle/momentum conditioning shared by 2D and 3D models."""
