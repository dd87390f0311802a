"""Augmentation and batching: tensor ops under an explicit generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from minimax_problems.data import augment

N_TRAIN, N_TEST = 12, 7  # per training batch / test batch

# ---------------------------------------------------------------------------------------------
# augmentation, batching, splits


def test_to_float() -> None:
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(augment.to_float(x), torch.tensor([0.0, 0.2, 1.0]))
    assert augment.to_float(x).dtype == torch.float32
    y = torch.rand(3)
    assert augment.to_float(y) is y


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_deterministic_under_seed(dtype: torch.dtype) -> None:
    x = torch.randint(0, 256, (16, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    x = x.to(torch.uint8) if dtype == torch.uint8 else x.float() / 255
    a = augment.augment(x, generator=torch.Generator().manual_seed(7))
    b = augment.augment(x, generator=torch.Generator().manual_seed(7))
    d = augment.augment(x, generator=torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, d)


def test_flip_on_hand_made_tensor() -> None:
    x = torch.arange(2 * 1 * 2 * 3).reshape(2, 1, 2, 3)
    flipped = augment.random_flip(x, p=1.0)
    assert flipped[0, 0].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert torch.equal(augment.random_flip(x, p=0.0), x)
    # per example: about half of a large batch is flipped
    many = torch.arange(4).repeat(1000, 1, 1, 1).reshape(1000, 1, 1, 4)
    out = augment.random_flip(many, generator=torch.Generator().manual_seed(0))
    n_flipped = int((out[:, 0, 0, 0] == 3).sum())
    assert 400 < n_flipped < 600
    assert all(row in ([0, 1, 2, 3], [3, 2, 1, 0]) for row in out[:, 0, 0].tolist())


def test_crop_on_hand_made_tensor() -> None:
    """Every output is one of the (2p+1)^2 windows of the zero-padded image, all occur."""
    p, h, w = 2, 4, 5
    image = torch.arange(1, 1 + 2 * h * w, dtype=torch.float32).reshape(1, 2, h, w)
    x = image.repeat(400, 1, 1, 1)
    out = augment.random_crop(x, padding=p, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(image[0], (p, p, p, p))
    windows = {
        (dy, dx): padded[:, dy : dy + h, dx : dx + w]
        for dy in range(2 * p + 1)
        for dx in range(2 * p + 1)
    }
    seen = set()
    for o in out:
        match = [k for k, win in windows.items() if torch.equal(o, win)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(windows)  # uniform offsets in [0, 2p]: all 25 appear in 400 draws
    # channels move together; zero padding; the centre window is the identity
    assert torch.equal(windows[(p, p)], image[0])
    assert torch.equal(windows[(0, 0)][:, :p, :], torch.zeros(2, p, w))
    assert torch.equal(augment.random_crop(x, padding=0), x)


def test_batches_cover_the_data_once(tmp_path: Path) -> None:
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1).expand(10, 3, 4, 4)
    labels = torch.arange(10)
    seen = []
    for xb, yb in augment.batches(images, labels, 4, shuffle=True, generator=torch.Generator()):
        assert xb.dtype == torch.float32 and xb.shape[1:] == (3, 4, 4)
        assert torch.allclose(xb[:, 0, 0, 0] * 255, yb.float())  # labels stay with images
        seen += yb.tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    sizes = [len(y) for _, y in augment.batches(images, labels, 4, drop_last=True)]
    assert sizes == [4, 4]
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    run1 = list(augment.batches(images, labels, 3, shuffle=True, generator=g1, augment=True))
    run2 = list(augment.batches(images, labels, 3, shuffle=True, generator=g2, augment=True))
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(run1, run2, strict=True)
    )
    assert all(0 <= float(x.min()) and float(x.max()) <= 1 for x, _ in run1)
