"""What models eat: the built-in data and data splits, crop sets, 3D event crops, the one
epoch batcher and sparse collate (``voxgen.data.batches``), charge transforms."""
