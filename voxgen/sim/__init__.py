"""The built-in LArTPC simulator: tracks, showers, Michel electrons, deltas -> labelled voxels."""
