"""Tensor-op augmentation and mini-batches of in-memory image data sets.

Public API (images [B, C, H, W], uint8 or float)::

    to_float(images) -> float32 in [0, 1]          (uint8 / 255; float input is passed through)
    random_crop(images, *, padding=4, generator=None) -> same shape and dtype
    random_flip(images, *, generator=None, p=0.5) -> same shape and dtype
    augment(images, *, padding=4, generator=None) -> random_flip(random_crop(images))
    default_augment(x, generator) -> x             (the trainer's default: crop + flip)
    batches(images, labels, batch_size, *, shuffle=False, generator=None, augment=False,
            padding=4, drop_last=False, device=None)
        -> Iterator[(float32 [B, C, H, W] in [0, 1], int64 [B])]

Randomness goes through an explicit ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["augment", "batches", "default_augment", "random_crop", "random_flip", "to_float"]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [..., C, H, W] -> float32 in [0, 1] (divides by 255); floating input is unchanged."""
    if images.is_floating_point():
        return images
    return images.to(torch.float32).div_(255.0)


def _generator_device(images: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else images.device


def random_crop(
    images: torch.Tensor, *, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-example random crop of [B, C, H, W] images after zero padding by ``padding`` pixels.

    Each example gets its own offset (dy, dx) uniform in [0, 2 * padding]^2; output has the input's
    shape and dtype (uint8 or float).
    """
    if padding == 0:
        return images
    b, _, h, w = images.shape
    dev = _generator_device(images, generator)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(images.device)
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=images.device)[:, None, None]
    # advanced indices around a slice put the indexed dims first: [B, H, W, C]
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(
    images: torch.Tensor, *, generator: torch.Generator | None = None, p: float = 0.5
) -> torch.Tensor:
    """Flip each [C, H, W] example of a [B, C, H, W] batch left-right with probability ``p``."""
    dev = _generator_device(images, generator)
    flip = torch.rand(images.shape[0], generator=generator, device=dev).to(images.device) < p
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(
    images: torch.Tensor, *, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The standard CIFAR-10 augmentation: random crop (zero padding 4) then horizontal flip."""
    cropped = random_crop(images, padding=padding, generator=generator)
    return random_flip(cropped, generator=generator)


def batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augment: bool = False,
    padding: int = 4,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float32 [B, C, H, W] in [0, 1], int64 [B]) mini-batches of an in-memory dataset.

    ``shuffle`` permutes the order with ``generator`` (the global RNG if None); ``augment``
    applies :func:`augment` (on the uint8 batch, moved to ``device`` first) with the same
    generator. The last short batch is kept unless ``drop_last``.
    """
    n = images.shape[0]
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle:
        dev = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=dev).cpu()
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        x, y = images[idx], labels[idx]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if augment:
            x = _augment(x, padding=padding, generator=generator)
        yield to_float(x), y


_augment = augment


def default_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding 4, or 1 for images under 16 pixels) then a horizontal flip;
    batches that are not [B, C, H, W] images pass through unchanged."""
    if x.ndim != 4:
        return x
    padding = 4 if min(x.shape[-2:]) >= 16 else 1
    return augment(x, padding=padding, generator=generator)
