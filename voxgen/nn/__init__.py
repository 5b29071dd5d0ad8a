"""Network building blocks (dense 2D here; sparse 3D backends in ``voxgen.nn.sparse``)."""
