"""voxgen's Hydra configs, shipped as package data (``voxgen.conf``)."""
