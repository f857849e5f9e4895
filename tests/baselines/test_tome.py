"""ToMe bipartite soft matching: the most similar A→B pairs merge, as size-weighted means, to a budget."""

import torch

from baselines.tome import ToMe, bipartite_merge, merge_to
from harness.core.records import EncodedVideo


def test_most_similar_pair_merges_with_size_weights():
    # A = even rows, B = odd rows; A0 (row 0) is nearly B1 (row 3); everything else is orthogonal-ish
    x = torch.tensor([[1.0, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1.0, 0, 0, 0]])
    size = torch.tensor([3.0, 1.0, 1.0, 1.0])
    out, out_size, pos = bipartite_merge(x, size, torch.arange(4), r=1)
    assert pos.tolist() == [1, 2, 3]  # row 0 merged into its partner at position 3; time order kept
    assert torch.allclose(out[2], (3 * x[0] + 1 * x[3]) / 4)
    assert out_size.tolist() == [1.0, 1.0, 4.0]
    assert torch.equal(out[:2], x[1:3])


def test_at_most_half_merge_per_step():
    x = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
    out, size, _ = bipartite_merge(x, torch.ones(10), torch.arange(10), r=9)
    assert len(out) == 5 and size.sum() == 10


def test_merge_to_budget_preserves_mass():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    out, size = merge_to(x, 13)
    assert out.shape == (13, 16) and size.sum() == 64


def test_duplicates_collapse_first():
    base = torch.randn(8, 16, generator=torch.Generator().manual_seed(2))
    x = base.repeat_interleave(2, dim=0)  # each token twice, adjacent: A(2i) and B(2i+1) identical
    out, size = merge_to(x, 8)
    assert torch.allclose(out, base, atol=1e-6) and size.tolist() == [2.0] * 8


def test_reducer_keeps_ratio():
    tokens = torch.randn(16, 16, 32, generator=torch.Generator().manual_seed(3))
    out = ToMe(keep_ratio=0.25).reduce(EncodedVideo(tokens, ()), None)
    assert out.tokens.shape == (64, 32) and out.rows is None  # merged tokens stand for no one encoded row
