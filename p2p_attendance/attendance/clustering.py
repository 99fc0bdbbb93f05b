"""Grouping faces that matched nobody into unknown people (one stranger all lecture = 1 unknown)."""
from __future__ import annotations

import numpy as np


def cluster_unknown_faces(encodings: np.ndarray, threshold: float = 0.55) -> np.ndarray:
    """Average-linkage agglomerative clustering; returns a cluster label per encoding.

    Two groups merge while the mean distance between their members is below threshold. This is
    stricter than single linkage, which chains different people together through one blurry
    face. The result does not depend on the order faces arrived in (peers finish out of order).
    Beyond a few hundred faces it clusters a regular sample and labels the rest by nearest sample.
    """
    encodings = np.asarray(encodings, np.float32).reshape(-1, 128)
    n = len(encodings)
    if n == 0:
        return np.zeros(0, np.int64)
    max_points = 400  # the merge loop is O(n^3)
    if n > max_points:
        # Cluster a regular sample, then give every face its nearest sample's label.
        sample = np.linspace(0, n - 1, max_points).astype(int)
        sample_labels = cluster_unknown_faces(encodings[sample], threshold)
        nearest = np.argmin(_pairwise(encodings, encodings[sample]), axis=1)
        return sample_labels[nearest]

    distances = _pairwise(encodings, encodings).astype(np.float64)
    sizes = np.ones(n)
    sums = distances.copy()  # sums[a, b] = total distance between members of groups a and b
    active = np.ones(n, bool)
    labels = np.arange(n)
    np.fill_diagonal(sums, np.inf)
    while True:
        mean = sums / np.outer(sizes, sizes)
        mean[~active, :] = np.inf
        mean[:, ~active] = np.inf
        a, b = np.unravel_index(np.argmin(mean), mean.shape)
        if not np.isfinite(mean[a, b]) or mean[a, b] >= threshold:
            break
        a, b = min(a, b), max(a, b)
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        sums[a, a] = np.inf
        sizes[a] += sizes[b]
        active[b] = False
        labels[labels == b] = a
    _, dense = np.unique(labels, return_inverse=True)
    return dense


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))
