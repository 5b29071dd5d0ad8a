"""Mode collapse and memorisation: how close each generated image is to its nearest training
image under the earth mover's distance, compared to how close unseen real images are (the
mode-collapse check of Imani et al., arXiv:2307.13687)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from voxgen.evaluate.distances import nearest_emd, with_charge

COPY_QUANTILE = 0.05
FLAG_PVALUE = 0.01


def mode_collapse_report(candidates: np.ndarray, heldout: np.ndarray, train: np.ndarray, k_prefilter: int = 20) -> dict:
    """Compare the nearest-training-image EMD of generated images to that of held-out real ones.

    ``candidates`` (N, H, W) generated, ``heldout`` (K, H, W) real images not in ``train``
    (M, H, W). Held-out images show how near a fresh sample of the real distribution falls to
    the training set; generated images much nearer than that are copies. Returns:
    ``candidate_nn_emd`` (N,), ``heldout_nn_emd`` (K,) arrays; their ``*_median`` (pixels);
    ``copy_threshold``: the 5th percentile of the held-out NN-EMD; ``copy_fraction``: the
    fraction of candidates strictly below it (~0.05 or less without memorisation);
    ``copy_pvalue``: one-sided binomial p-value of that many candidates below it if the rate
    were 5%; ``copies_flagged``: ``copy_pvalue < 0.01``; ``ks_statistic``, ``ks_pvalue``: the
    two-sample Kolmogorov-Smirnov test between the two NN-EMD distributions.
    """
    cand_nn = nearest_emd(with_charge(candidates), train, k_prefilter)  # an empty crop copies nothing
    held_nn = nearest_emd(heldout, train, k_prefilter)
    threshold = float(np.quantile(held_nn, COPY_QUANTILE))
    below = int(np.sum(cand_nn < threshold))
    pvalue = float(stats.binomtest(below, len(cand_nn), COPY_QUANTILE, alternative="greater").pvalue)
    ks = stats.ks_2samp(cand_nn, held_nn)
    return {
        "candidate_nn_emd": cand_nn,
        "heldout_nn_emd": held_nn,
        "candidate_median": float(np.median(cand_nn)),
        "heldout_median": float(np.median(held_nn)),
        "copy_threshold": threshold,
        "copy_fraction": below / len(cand_nn),
        "copy_pvalue": pvalue,
        "copies_flagged": pvalue < FLAG_PVALUE,
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
    }
