"""Layer rules against the materialized reference: each layer type's share of the per-example
Gramian and the weighted-backward direction (Conv2d, Linear, LayerNorm, GroupNorm, BatchNorm in
eval mode, Embedding)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

DT = torch.float64


class MeanOver(nn.Module):
    """Mean over the given axes (no parameters)."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dims)


class TokenNet(nn.Module):
    """Embedding of the rounded inputs (ids; no gradient to δ) plus a δ-dependent path."""

    def __init__(self, vocab: int, dim: int, classes: int, padding_idx: int | None) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=padding_idx)
        self.mix = nn.Linear(1, dim)
        self.out = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.detach().round().long()
        h = self.emb(ids) + self.mix(x.unsqueeze(-1))
        return self.out(torch.celu(h).mean(1))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=8)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    cin=st.sampled_from([1, 2, 4]),
    k=st.sampled_from([1, 2, 3]),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    padding=st.sampled_from([0, 1, "same"]),
    mode=st.sampled_from(["zeros", "reflect", "circular"]),
    groups=st.sampled_from([1, 2]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_conv2d_gram_and_direction(
    module_problem,
    random_deltas,
    image_batch,
    assert_gram_matches,
    assert_direction_matches,
    b,
    m,
    cin,
    k,
    stride,
    dilation,
    padding,
    mode,
    groups,
    bias,
    seed,
):
    if padding == "same":
        stride = 1
    groups = groups if cin % groups == 0 else 1
    torch.manual_seed(seed)
    conv = nn.Conv2d(cin, 2 * groups, k, stride, padding, dilation, groups, bias, mode)
    model = nn.Sequential(conv, nn.CELU(), MeanOver(2, 3), nn.Linear(2 * groups, 3))
    problem = module_problem(model)
    x, y = image_batch(b, cin, 6, seed)
    deltas = random_deltas(m, x, seed)
    assert_gram_matches(problem, (x, y), deltas)
    assert_direction_matches(problem, (x, y), deltas, seed)


@settings(max_examples=8)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    t=st.integers(1, 4),
    d=st.integers(1, 5),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_and_layer_norm_with_a_sequence_axis(
    module_problem,
    random_deltas,
    assert_gram_matches,
    assert_direction_matches,
    b,
    m,
    t,
    d,
    bias,
    seed,
):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(d, 4, bias=bias),
        nn.LayerNorm(4),
        nn.CELU(),
        nn.Linear(4, 3),
        MeanOver(1),
    )
    problem = module_problem(model)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(b, t, d, generator=g, dtype=DT), torch.randint(0, 3, (b,), generator=g)
    deltas = random_deltas(m, x, seed)
    mask = torch.rand(b, m, generator=g) < 0.7
    mask[:, 0] = True
    assert_gram_matches(problem, (x, y), deltas, mask)
    assert_direction_matches(problem, (x, y), deltas, seed)


@settings(max_examples=6)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_norm_layers(
    module_problem,
    random_deltas,
    image_batch,
    assert_gram_matches,
    assert_direction_matches,
    b,
    m,
    groups,
    seed,
):
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.GroupNorm(groups, 4),
        nn.CELU(),
        bn,
        nn.LayerNorm([4, 5, 5]),
        MeanOver(2, 3),
        nn.Linear(4, 3),
    ).eval()
    with torch.no_grad():  # non-trivial affine parameters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    problem = module_problem(model)
    x, y = image_batch(b, 2, 5, seed)
    deltas = random_deltas(m, x, seed)
    assert_gram_matches(problem, (x, y), deltas)
    assert_direction_matches(problem, (x, y), deltas, seed)


@settings(max_examples=6)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    t=st.integers(1, 4),
    padding=st.sampled_from([None, 0]),
    seed=st.integers(0, 2**16),
)
def test_embedding_without_gradient_to_delta(
    module_problem,
    random_deltas,
    assert_gram_matches,
    assert_direction_matches,
    b,
    m,
    t,
    padding,
    seed,
):
    torch.manual_seed(seed)
    problem = module_problem(TokenNet(5, 3, 3, padding))
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 5, (b, t), generator=g).to(DT)
    y = torch.randint(0, 3, (b,), generator=g)
    deltas = random_deltas(m, x, seed)
    assert_gram_matches(problem, (x, y), deltas)
    assert_direction_matches(problem, (x, y), deltas, seed)
