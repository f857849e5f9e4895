"""AdaRD-Key: greedy relevance + λ·log-det diversity, with the flat-relevance gate."""

import numpy as np
import pytest

from baselines.adardkey import AdaRDKey, adardkey_indices, rd_greedy
from baselines.topk import top_k
from harness.core.config import ConfigError


def clusters(n_clusters: int = 3, size: int = 4) -> np.ndarray:
    """Frames in time blocks of `size` per cluster: frame t of cluster c is normalise(e_c + 0.1 e_{n_clusters+t}).

    Supports are disjoint across clusters, so cross-cluster cosines are exactly 0 and within a cluster 1/1.01.
    """
    n = n_clusters * size
    out = np.zeros((n, n_clusters + n))
    for t in range(n):
        out[t, t // size] = 1.0
        out[t, n_clusters + t] = 0.1
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_flat_relevance_gates_to_diversity_one_frame_per_cluster():
    emb = clusters()
    # all gains tie at log(1 + ε) → frame 0; its cluster-mates drop to log(1.01 − 0.98 / 1.01) ≈ log(0.04), the
    # other clusters stay at log(1 + ε) exactly (orthogonal) → the earliest of cluster B (4), then of cluster C (8)
    assert adardkey_indices(np.full(12, 0.3), emb, k=3) == [0, 4, 8]
    assert rd_greedy(np.zeros(12), emb, 3, lam=1.0, eps=0.01) == [0, 4, 8]


def test_gate_switches_relevance_off_below_the_spread_threshold():
    emb = clusters()
    scores = np.full(12, 0.3)
    scores[[5, 6, 7]] += 0.01  # a faint peak on three frames of cluster B: spread 0.01
    # gate open (off): min–max makes 5, 6, 7 fully relevant, and a small λ lets relevance beat redundancy
    assert adardkey_indices(scores, emb, k=3, lam=0.01, gate=0.0) == [5, 6, 7]
    # spread 0.01 < gate 0.02: diversity-only, exactly the constant-relevance choice
    assert adardkey_indices(scores, emb, k=3, lam=0.01, gate=0.02) == [0, 4, 8]


def test_peaked_relevance_with_small_lambda_takes_the_top_frames():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 8))
    emb[[3, 11, 17]] = emb[3]  # the three most relevant frames are exact duplicates
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    scores = rng.uniform(0.0, 0.5, 20)
    scores[[3, 11, 17]] = [1.0, 0.95, 0.9]
    # λ = 1e-4: a duplicate costs λ·log(≈2ε) ≈ −4e-4, far below the relevance gaps
    assert adardkey_indices(scores, emb, k=3, lam=1e-4) == top_k(scores, 3) == [3, 11, 17]
    # λ = 1: a duplicate costs ≈ −3.9, so after frame 3 its copies lose to distinct frames
    picked = adardkey_indices(scores, emb, k=3, lam=1.0)
    assert 3 in picked and 11 not in picked and 17 not in picked


def test_each_greedy_pick_is_the_brute_force_argmax_of_the_rd_mv_gain():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(9, 4))  # more frames than dimensions: only the ridge keeps L_S non-singular
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rel, lam, eps = rng.random(9), 0.7, 0.05
    big = emb @ emb.T + eps * np.eye(9)

    def logdet(subset):
        return np.linalg.slogdet(big[np.ix_(subset, subset)])[1] if subset else 0.0

    order = rd_greedy(rel, emb, 6, lam, eps)
    for step, j in enumerate(order):
        before = order[:step]
        gain = {i: rel[i] + lam * (logdet(before + [i]) - logdet(before)) for i in range(9) if i not in before}
        assert j == max(gain, key=gain.get)


def test_budget_is_exact_sorted_and_small_pools_keep_everything():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(50, 16))
    scores = rng.random(50)
    for k in (1, 7, 16, 49):
        picked = adardkey_indices(scores, emb, k)
        assert len(picked) == k == len(set(picked)) and picked == sorted(picked)
    assert adardkey_indices(scores[:10], emb[:10], k=16) == list(range(10))
    assert adardkey_indices(scores[:16], emb[:16], k=16) == list(range(16))
    assert adardkey_indices(np.zeros(0), np.zeros((0, 16)), k=16) == []


@pytest.mark.parametrize("bad, match", [(dict(k=0), "k must be"), (dict(lam=0.0), "lam and eps"),
                                        (dict(eps=0.0), "lam and eps"), (dict(gate=-0.1), "gate >= 0")])
def test_invalid_settings(bad, match):
    with pytest.raises(ValueError, match=f"adardkey: .*{match}"):
        AdaRDKey(**bad)


def test_unknown_encoder_is_a_config_error():
    with pytest.raises(ConfigError):
        AdaRDKey(encoder="no-such-encoder")
