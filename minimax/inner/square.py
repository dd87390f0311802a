"""The Square attack: a gradient-free, score-based random search (L∞ and L2).

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box adversarial
attack via random search", ECCV 2020 (arXiv:1912.00049); the gradient-free member of AutoAttack,
there to expose gradient masking: it reads only the objective's values, never its gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

import torch
from torch import Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.base import Candidates, InnerSolver, rows_of_set
from minimax.inner.early_stop import EarlyStop
from minimax.inner.square_windows import _l2_pattern, _place, _window_mask
from minimax.problem import Batch, Params, Problem
from minimax.sets import L2Ball, LinfBall

__all__ = ["Square", "margin_loss", "square_fraction"]

# p_init is divided by 2^k after the k-th of these query counts, stated for a 10,000-query budget
# and rescaled to the actual budget (Andriushchenko et al. 2020, Appendix; AutoAttack's schedule).
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_HALVING_FACTORS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def square_fraction(p_init: float, query: int, queries: int) -> float:
    """The fraction p of the input a square covers at ``query`` (of ``queries``).

    ``p_init`` is halved, then quartered, ... (down to ``p_init / 512``) at the query counts
    10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of a 10,000-query budget, rescaled to
    ``queries``: the published piecewise-constant schedule.
    """
    t = int(query / max(queries, 1) * 10000)
    k = sum(t > h for h in _HALVINGS)
    return p_init / _HALVING_FACTORS[k]


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """``max_{j≠y} z_j − z_y`` per row: logits [..., C] (C ≥ 2), integer labels y [...] → [...].

    Positive iff y is misclassified: the Square attack's untargeted objective."""
    if logits.ndim < 1 or logits.shape[-1] < 2:
        raise ValueError(f"the margin loss needs logits [..., C ≥ 2], got {tuple(logits.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    at_y = y.unsqueeze(-1)
    z_y = logits.gather(-1, at_y).squeeze(-1)
    other = logits.scatter(-1, at_y, -torch.inf).amax(dim=-1)
    return other - z_y


def _norms(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    return t.pow(2).sum(dim=dims, keepdim=True).sqrt()


def _image_shape(event: torch.Size) -> tuple[int, int, int]:
    """One example's δ viewed as [c, h, w]: [D] → [1, 1, D], [H, W] → [1, H, W]."""
    if len(event) == 1:
        return 1, 1, int(event[0])
    if len(event) == 2:
        return 1, int(event[0]), int(event[1])
    if len(event) == 3:
        return int(event[0]), int(event[1]), int(event[2])
    raise ValueError(
        f"Square needs δ of one example shaped [D], [H, W] or [C, H, W], got {tuple(event)}"
    )


def _side(p: float, h: int, w: int, smallest: int, odd: bool) -> tuple[int, int]:
    """Window sides covering about a fraction p of the h×w plane (a square, or a segment when
    h = 1): at least ``smallest`` (odd when asked), at most the plane."""
    s = round(p * w) if h == 1 else round(math.sqrt(p * h * w))
    s = max(s, smallest)
    if odd and s % 2 == 0:
        s += 1
    if h == 1:
        return 1, min(s, w)
    s = min(s, h, w)
    return s, s


class Square(InnerSolver):
    """The Square attack (Andriushchenko et al. 2020), L∞ and L2, with m random restarts.

    A random search that only evaluates the objective: at query t it proposes a change of δ on
    one random square window (per example) covering a fraction ``p_t`` of the input, and keeps it
    if the loss increases. ``p_t`` follows the published schedule (`square_fraction`: ``p_init``
    halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 queries of a 10,000 budget,
    rescaled to ``queries``).

    - L∞: starts from vertical stripes ``±ε`` (one sign per column and channel); a proposal sets
      its window to ``±ε`` (one random sign per channel).
    - L2: starts from a grid of ``±`` centred-square patterns scaled to ‖δ‖ = ε; a proposal
      moves the mass of a second random window into the first (a centred-square pattern plus the
      first window's old content), keeping ‖δ‖ = ε.

    Both then project onto the set (and the bounds on x + δ). δ of one example is viewed as
    ``[C, H, W]`` (``[H, W]`` and ``[D]`` work too).

    Args:
        queries: the query budget per restart (the start counts as one); each query is one
            forward pass over the examples still searched.
        restarts: m, the number of candidates per example (independent runs).
        p_init: the initial fraction of the input a window covers (0.8 in AutoAttack).
        loss: ``"margin"``: maximize ``max_{j≠y} z_j − z_y`` of a `ModuleProblem` classifier (the
            published untargeted loss) and stop searching an example once it is misclassified;
            ``"objective"``: maximize the problem's own g for the whole budget (any problem).
        seed: seeds the solver's own `torch.Generator` (used unless a generator is passed).
        stop: early stopping (`minimax.inner.early_stop.EarlyStop`; None: the whole budget):
            with ``loss="margin"``, an example also stops once its margin has not increased for
            ``stop.patience`` queries.

    The candidates' ``values`` are the problem's own objective g at the results.
    """

    def __init__(
        self,
        queries: int = 5000,
        restarts: int = 1,
        *,
        p_init: float = 0.8,
        loss: Literal["margin", "objective"] = "margin",
        seed: int | None = 0,
        stop: EarlyStop | None = None,
    ) -> None:
        if stop is not None and not isinstance(stop, EarlyStop):
            raise TypeError(f"stop must be an EarlyStop or None, got {type(stop).__name__}")
        self.stop = stop
        queries = checks.integer("queries", queries, minimum=1)
        restarts = checks.integer("restarts", restarts, minimum=1)
        p_init = checks.real_number("p_init", p_init, at_most=1.0)
        if not 0.0 < p_init <= 1.0:
            raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
        if loss not in ("margin", "objective"):
            raise ValueError(
                f"loss must be 'margin' (classifiers) or 'objective' (the problem's g), "
                f"got {loss!r}"
            )
        self.queries = int(queries)
        self.p_init = float(p_init)
        self.loss = loss
        super().__init__(restarts=restarts, random_start=True, seed=seed)

    def __repr__(self) -> str:
        return (
            f"Square(queries={self.queries}, restarts={self.restarts}, p_init={self.p_init:g}, "
            f"loss={self.loss!r})"
        )

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: torch.Generator | None
    ) -> Candidates:
        problem = engine.problem
        S = problem.perturbation
        if not isinstance(S, (LinfBall, L2Ball)):
            raise ValueError(f"Square supports LinfBall and L2Ball, got {S!r}: use PGD")
        params = {k: v.detach() for k, v in params.items()}
        search = self._search_engine(engine, batch)  # counts on this engine's counter
        gen = generator or self.generator
        with torch.no_grad():
            runs = [self._run(problem, search, params, batch, gen) for _ in range(self.restarts)]
            deltas = torch.stack(runs)
            engine.last_values = search.last_values  # refused if non-finite where unscored
            values = engine.score(params, deltas, batch)
        return Candidates(deltas, values)

    def _search_engine(self, engine: Engine, batch: Batch) -> Engine:
        """The engine whose values the search maximizes: the margin of the same classifier, or
        the problem itself."""
        if self.loss == "objective":
            return engine
        try:
            search = engine.with_loss(margin_loss)
        except TypeError as err:
            raise ValueError(
                f"loss='margin' needs class logits and labels, which only a ModuleProblem "
                f"provides (got {type(engine.problem).__name__}); use loss='objective'"
            ) from err
        y = batch[1]
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or y.ndim != 1:
            raise ValueError(
                f"loss='margin' needs integer class labels y of shape [B], got dtype {y.dtype} "
                f"and shape {tuple(y.shape)}"
            )
        return search

    def _run(
        self,
        problem: Problem,
        search: Engine,
        params: Mapping[str, Tensor],
        batch: Batch,
        gen: torch.Generator,
    ) -> Tensor:
        """One restart: the searched δ [B, *event]. Each query proposes and scores only the
        examples still searched (`_Rows`) where examples are independent."""
        S = problem.perturbation
        assert isinstance(S, (LinfBall, L2Ball))
        shape = problem.delta_shape(batch)
        ref = problem.reference(batch)
        image = (shape[0], *_image_shape(shape[1:]))
        eps = torch.as_tensor(S.eps, dtype=ref.dtype, device=ref.device).expand(shape[0])

        def draw_signs(size: tuple[int, ...]) -> Tensor:
            bits = torch.randint(0, 2, size, generator=gen, device=gen.device)
            return (2 * bits - 1).to(ref.device, ref.dtype)

        every = torch.arange(shape[0], device=ref.device)
        work = _Rows(problem, S, batch, every, eps)
        start = _start_linf if isinstance(S, LinfBall) else _start_l2
        delta = work.project(start(image, work.eps, draw_signs))
        best = work.score(search, params, delta)
        propose = _propose_linf if isinstance(S, LinfBall) else _propose_l2
        split = search.rows_independent and self.loss == "margin"
        patience = self.stop.patience if self.stop is not None and split else None
        # the searched rows' δ, margin and queries since it last increased, kept apart from
        # the batch's (written back when the rows shrink, and at the end)
        rows, d_w, b_w = every, delta, best
        idle = torch.zeros_like(best, dtype=torch.long) if patience is not None else None
        for q in range(1, self.queries):
            searched = b_w <= 0 if self.loss == "margin" else None
            if searched is not None:
                if idle is not None and patience is not None:
                    searched &= idle < patience
                n = int(searched.sum())
                if n == 0:
                    break
                if split and n != rows.numel():  # fewer rows: restrict to them
                    delta, best = _write_back(delta, best, rows, d_w, b_w)
                    rows, d_w, b_w = rows[searched], d_w[searched], b_w[searched]
                    idle = None if idle is None else idle[searched]
                    work = _Rows(problem, S, batch, rows, eps)
            p = square_fraction(self.p_init, q, self.queries)
            proposal = propose(d_w, work.eps, p, work.project, draw_signs, gen)
            new = work.score(search, params, proposal)
            better = new > b_w
            if searched is not None and not split:
                better &= searched
            d_w = torch.where(better.reshape(-1, *([1] * (d_w.ndim - 1))), proposal, d_w)
            b_w = torch.where(better, new, b_w)
            if idle is not None:
                idle = torch.where(better, 0, idle + 1)
        delta, _ = _write_back(delta, best, rows, d_w, b_w)
        return delta.reshape(shape)


def _write_back(
    delta: Tensor, best: Tensor, rows: Tensor, d_w: Tensor, b_w: Tensor
) -> tuple[Tensor, Tensor]:
    """The batch's δ and margin with the searched rows' (``rows`` [n]) written in."""
    if rows.numel() == delta.shape[0]:  # every row: the rows' tensors are the batch's
        return d_w, b_w
    delta[rows], best[rows] = d_w, b_w
    return delta, best


class _Rows:
    """The examples ``rows`` [n] of a batch, as one attack query sees them: their sub-batch
    (indexed once, so that the problem checks it once), their set, and ε [n, 1, 1, 1]. All the
    rows of any problem's batch, or some rows of a classifier's (x, y)."""

    def __init__(
        self, problem: Problem, S: LinfBall | L2Ball, batch: Batch, rows: Tensor, eps: Tensor
    ) -> None:
        shape = problem.delta_shape(batch)
        self.rows, self.eps = rows, eps[rows].reshape(-1, 1, 1, 1)
        self.batch, self.S, self.x = batch, S, problem.clean_input(batch)
        if rows.numel() < shape[0]:
            x, y = batch
            self.batch, self.x = (x[rows], y[rows]), x[rows]
            self.S = rows_of_set(S, rows, x.shape[0], x.ndim)
        self.shape = (rows.numel(), *shape[1:])
        self.box: tuple[Tensor, Tensor] | None = None
        self.at: Callable[[Tensor], Tensor] | None = None  # the rows' evaluator, once used
        if isinstance(S, LinfBall):  # the ball ∩ the bounds is a box: one clamp projects
            n = rows.numel()
            far = (2 * self.eps.reshape(n, 1)).expand(n, math.prod(self.shape[1:]))
            self.box = (self._project(-far), self._project(far))

    def _project(self, d: Tensor) -> Tensor:
        flat = self.S.project(d.reshape(self.shape), self.x, event_ndim=len(self.shape) - 1)
        return flat.reshape(d.shape)

    def project(self, d: Tensor) -> Tensor:
        """Project d viewed as [n, c, h, w] onto the rows' set (and bounds); same view back."""
        if self.box is None:
            return self._project(d)
        lo, hi = self.box
        return torch.clamp(d, lo.reshape(d.shape), hi.reshape(d.shape))

    def score(self, search: Engine, params: Mapping[str, Tensor], d: Tensor) -> Tensor:
        """The search objective at δ (viewed [n, c, h, w]) of the rows: one forward."""
        if self.at is None:  # the rows' batch and θ are checked once, not at every query
            self.at = search.evaluator(params, self.batch)
        return self.at(d.reshape(self.shape))


Signs = Callable[[tuple[int, ...]], Tensor]  # size → random ±1 tensor on the problem's device


def _start_linf(image: tuple[int, ...], eps: Tensor, signs: Signs) -> Tensor:
    """Vertical stripes: δ = ±ε, one sign per (example, channel, column)."""
    b, c, h, w = image
    return (eps * signs((b, c, 1, w))).expand(b, c, h, w).clone()


def _start_l2(image: tuple[int, ...], eps: Tensor, signs: Signs) -> Tensor:
    """A grid of ±(centred-square pattern) tiles of side ~h/5 (one sign per example, channel and
    tile), scaled to ‖δ‖ = ε."""
    b, c, h, w = image
    th, tw = (1, max(w // 5, 1)) if h == 1 else (max(h // 5, 1), max(w // 5, 1))
    pattern = _l2_pattern(th, tw).to(eps.device, eps.dtype)
    delta = torch.zeros(image, dtype=eps.dtype, device=eps.device)
    for r in range(max((h - 5 * th) // 2, 0), h, th):
        for q in range(max((w - 5 * tw) // 2, 0), w, tw):
            block = pattern[: min(th, h - r), : min(tw, w - q)]
            delta[:, :, r : r + th, q : q + tw] += block * signs((b, c, 1, 1))
    return delta * eps / _norms(delta, (1, 2, 3)).clamp_min(1e-12)


def _propose_linf(
    delta: Tensor,
    eps: Tensor,
    p: float,
    project: Callable[[Tensor], Tensor],
    signs: Signs,
    gen: torch.Generator,
) -> Tensor:
    """Each example's window set to ±ε (one random sign per channel). Where that would leave δ
    unchanged (the window already held those signs), the signs are redrawn among the other
    2^C − 1 patterns: the published "resample until it changes", in one draw."""
    b, c, h, w = delta.shape
    mask = _window_mask(h, w, _side(p, h, w, 1, odd=False), b, gen).to(delta.device)
    s = signs((b, c, 1, 1))
    proposal = project(torch.where(mask, eps * s, delta))
    same = (proposal == delta).flatten(1).all(dim=1)
    if bool(same.any()):
        r = torch.randint(1, 2**c, (b, 1), generator=gen, device=gen.device).to(delta.device)
        bits = (r >> torch.arange(c, device=delta.device)) & 1  # [b, c]: the channels to flip
        flipped = s * (1 - 2 * bits).to(s.dtype).reshape(b, c, 1, 1)
        again = project(torch.where(mask, eps * flipped, delta))
        proposal = torch.where(same.reshape(b, 1, 1, 1), again, proposal)
    return proposal


def _propose_l2(
    delta: Tensor,
    eps: Tensor,
    p: float,
    project: Callable[[Tensor], Tensor],
    signs: Signs,
    gen: torch.Generator,
) -> Tensor:
    """Move the mass of window 2 into window 1: window 1 becomes ±(centred-square pattern) plus
    its old content, rescaled per channel so that ‖δ‖ = ε is kept; window 2 is emptied."""
    b, c, h, w = delta.shape
    side = _side(p, h, w, 3, odd=True)
    m1 = _window_mask(h, w, side, b, gen).to(delta.device)
    m2 = _window_mask(h, w, side, b, gen).to(delta.device)
    union = m1 | m2
    norm_1 = _norms(delta * m1, (2, 3))  # [b, c, 1, 1]
    norm_union = _norms(delta * union, (2, 3))
    norm_all = _norms(delta, (1, 2, 3))  # [b, 1, 1, 1]
    transpose = torch.rand(b, generator=gen, device=gen.device) < 0.5
    pattern = _l2_pattern(*side).to(delta.device, delta.dtype)
    bump = _place(pattern, m1, transpose.to(delta.device)) * signs((b, c, 1, 1))
    window = bump + delta * m1 / (norm_1 + 1e-12)
    room = ((eps**2 - norm_all**2).clamp_min(0) / c + norm_union**2).sqrt()
    window = window / _norms(window, (2, 3)).clamp_min(1e-12) * room
    moved = delta * ~union + window * m1
    return project(moved * eps / _norms(moved, (1, 2, 3)).clamp_min(1e-12))
