"""DyCoke TTM: windows of 4, same-position similarity to the reference frame, least similar tokens kept."""

import pytest
import torch

from baselines.dycoke import DyCoke, ttm_keep
from harness.core.records import EncodedVideo


def test_keeps_the_changed_positions_against_the_right_reference():
    g = torch.Generator().manual_seed(0)
    m, c = 10, 32
    f0 = torch.randn(m, c, generator=g)

    def changed(frame, rows):
        out = frame.clone()
        out[rows] = torch.randn(len(rows), c, generator=g)
        return out

    f1 = changed(f0, [1, 4, 7])  # compared with f0
    f2 = changed(f0, [0, 2, 9])  # compared with f0
    f3 = changed(f2, [3, 5, 8])  # compared with f2 (it differs from f0 at six positions)
    tokens = torch.stack([f0, f1, f2, f3, f0, f0, f0, f0])
    kept = ttm_keep(tokens, prune_ratio=0.7)  # ⌊0.3 · 10⌋ = 3 per non-anchor frame
    assert [k.tolist() for k in kept[:4]] == [list(range(10)), [1, 4, 7], [0, 2, 9], [3, 5, 8]]
    assert kept[4].tolist() == list(range(10))  # the next window's anchor is whole
    out = DyCoke().reduce(EncodedVideo(tokens, ()), None)
    assert out.tokens.shape == (2 * (10 + 3 * 3), c)
    assert torch.equal(out.tokens[10:13], f1[[1, 4, 7]])
    assert out.rows[10:13].tolist() == [10 + 1, 10 + 4, 10 + 7]  # survivors declare their encoded rows
    assert torch.equal(out.tokens, tokens.reshape(-1, c)[out.rows])


def test_token_share_is_about_47_percent():
    tokens = torch.randn(32, 196, 8, generator=torch.Generator().manual_seed(1))
    share = len(DyCoke().reduce(EncodedVideo(tokens, ()), None)) / (32 * 196)
    assert share == pytest.approx((196 + 3 * 58) / (4 * 196))  # ≈ 47.2%; 47.5% with no flooring


def test_partial_last_window():
    tokens = torch.randn(6, 10, 4, generator=torch.Generator().manual_seed(2))
    assert len(DyCoke().reduce(EncodedVideo(tokens, ()), None)) == 10 + 3 * 3 + 10 + 3


def test_bad_ratio():
    with pytest.raises(ValueError, match="prune_ratio"):
        DyCoke(prune_ratio=1.0)
