"""Scale-out on Ray: a connection to a cluster (``cluster``), sampling and evaluation shards as
Ray tasks (``shards``), data-parallel training with Ray Train (``train``), Ray Tune sweeps
(``sweep``) and job submission (``submit``). Nothing outside this package imports Ray."""
