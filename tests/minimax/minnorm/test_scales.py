"""The min-norm solvers at every scale (issue 21): Gram matrices from 1e-300 to 1e300, subnormal
ones included, are solved as at unit scale. Each case is checked against an independent
reference, a brute-force enumeration of supports on the same matrix scaled exactly (by a power of
two) to unit size: the weights must reach the reference's objective (to within the matrix's
negative eigenvalue, for data PSD only up to rounding), the reported KKT residual
must not hide a violation found by an independent recomputation, and no PSD-up-to-rounding input
may be refused."""

import itertools

import numpy as np
import pytest
import torch

import minimax as mm

F64 = torch.float64
EXACT = ("wolfe", "nnls")
ITERATIVE = ("frank-wolfe", "apg")


def brute_force_value(K: np.ndarray) -> float:
    """min over the simplex of αᵀKα by enumerating supports (m ≤ 6): each support's affine
    minimizer from the KKT linear system, kept when it is feasible."""
    m = K.shape[0]
    best = float(np.diag(K).min())
    for r in range(2, m + 1):
        for S in itertools.combinations(range(m), r):
            idx = list(S)
            A = np.zeros((r + 1, r + 1))
            A[:r, :r] = 2 * K[np.ix_(idx, idx)]
            A[:r, r] = A[r, :r] = 1.0
            b = np.zeros(r + 1)
            b[r] = 1.0
            y = np.linalg.lstsq(A, b, rcond=None)[0][:r]
            if (y >= -1e-12).all():
                y = np.maximum(y, 0.0) / np.maximum(y, 0.0).sum()
                best = min(best, float(y @ K[np.ix_(idx, idx)] @ y))
    return best


def true_kkt(a: np.ndarray, K: np.ndarray) -> float:
    """The simplex KKT residual of a for K (unit scale), recomputed independently."""
    t = np.trace(K) / K.shape[0]
    if t <= 0:
        return abs(a.sum() - 1.0)
    r = (K / t) @ a
    lam = a @ r
    return max(
        float(np.maximum(lam - r, 0).max()),
        float((np.maximum(a, 0) * np.abs(r - lam)).max()),
        float(np.maximum(-a, 0).max()),
        abs(float(a.sum()) - 1.0),
    )


def scaled_grams(n_cases: int, seed: int):
    """(K, kind) float64 Gram matrices over scales 1e-320..1e300, four kinds: an integer Gram
    matrix times a power of two (exactly PSD, subnormal down to 2^-1074); vectors scaled by 10^s
    and multiplied (PSD up to rounding, subnormal products); a unit Gram matrix times 10^s; and
    vectors scaled so that K is subnormal (max|K| in 1e-322..1e-306)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n_cases:
        m, n, kind = int(rng.integers(1, 7)), int(rng.integers(1, 6)), len(out) % 4
        if kind == 0:
            G = rng.integers(-20, 21, size=(m, n)).astype(float)
            K = np.ldexp(G @ G.T, int(rng.integers(-1074, 1000)))
        elif kind == 1:
            G = rng.standard_normal((m, n)) * 10.0 ** rng.uniform(-162, 150)
            K = G @ G.T
        elif kind == 2:
            G = rng.standard_normal((m, n))
            K = (G @ G.T) * 10.0 ** rng.uniform(-322, 300)
        else:
            G = rng.standard_normal((m, n)) * 10.0 ** rng.uniform(-161, -153)
            K = G @ G.T
        if np.isfinite(K).all() and np.abs(K).max() > 0:
            out.append((K, kind))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_over_scales_finds_no_wrong_certificate_and_no_refusal(seed):
    wrong, refused, cases = [], [], 0
    for K, kind in scaled_grams(160, seed):
        e = np.frexp(np.abs(K).max())[1]
        Kh = np.ldexp(K, -e)  # the same matrix at unit scale, exactly
        ref = brute_force_value(Kh)
        t = np.trace(Kh) / K.shape[0]
        # PSD only up to rounding (subnormal data keep few digits): the data fix the objective
        # only to within their most negative eigenvalue
        slack = 4 * max(0.0, -float(np.linalg.eigvalsh(Kh)[0])) / t
        for method in EXACT + ITERATIVE:
            cases += 1
            try:
                r = mm.min_norm_weights(torch.tensor(K, dtype=F64), method=method)
            except ValueError as exc:
                refused.append((kind, float(np.abs(K).max()), method, str(exc)))
                continue
            a = r.weights.numpy()
            true, reported = true_kkt(a, Kh), float(r.kkt)
            gap = (float(a @ Kh @ a) - ref) / t
            if true > max(10 * reported, 1e-9) or (method in EXACT and gap > 1e-9 + slack):
                wrong.append((kind, float(np.abs(K).max()), method, reported, true, gap))
            if method in EXACT:  # ‖d‖² in the original scale, to rounding
                want = np.ldexp(max(float(a @ Kh @ a), 0.0), e)
                assert abs(float(r.sq_norm) - want) <= 1e-12 * np.ldexp(t, e) + 5e-324
    print(f"scale fuzz (seed {seed}): {cases} cases, {len(wrong)} wrong, {len(refused)} refused")
    assert not wrong, wrong[:5]
    assert not refused, refused[:5]


@pytest.mark.parametrize("log2_scale", [-1062, -1040, -1030, -990, 0, 990])
def test_invalid_grams_are_refused_at_every_scale(log2_scale):
    """Scaling never turns a non-Gram matrix into an accepted one, subnormal ones included while
    their entries keep more digits than the tolerance asks for (max|K| ≥ ~2^-1040; below, the
    scale is taken as float64's smallest normal number, see docs/reliability.md)."""
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]]) * 2.0**20
    asymmetric = np.array([[4.0, 1.0], [3.0, 4.0]]) * 2.0**20
    for K in (indefinite, asymmetric):
        with pytest.raises(ValueError, match=r"not (positive semidefinite|symmetric)"):
            mm.min_norm_weights(torch.tensor(np.ldexp(K, log2_scale + 1), dtype=F64))


def test_kkt_residual_agrees_with_the_rescaled_matrix_for_subnormal_grams():
    G = np.array([[3.0, 1.0], [-1.0, 2.0], [1.0, -3.0]])
    K = np.ldexp(G @ G.T, -1070)  # entries 2^-1070·(integers): exact subnormals
    w = mm.min_norm_weights(torch.tensor(K)).weights
    assert float(mm.linalg.kkt_residual(w, torch.tensor(K))) < 1e-12
    assert true_kkt(w.numpy(), G @ G.T) < 1e-12
    wrong = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    assert float(mm.linalg.kkt_residual(wrong, torch.tensor(K))) == pytest.approx(
        true_kkt(wrong.numpy(), G @ G.T), rel=1e-12
    )


@pytest.mark.parametrize("batch", [1, 2])
def test_per_example_ddi_on_a_float32_model_with_small_batches(batch):
    """Issue 21: the layerwise K of a float32 model carries float32 rounding (K − Kᵀ up to
    ~5e-8 × max|K|), above the 1e-8 allowance for float64 data: batches of 1 or 2 were refused
    ("gram is not symmetric"). The solver now allows the rounding of the dtype K was formed in."""
    from torch import nn

    for seed in range(10):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
        problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(0.1, lower=0, upper=1))
        x, y = torch.rand(batch, 3, 4), torch.randint(0, 3, (batch,))
        layerwise = mm.Engine(problem, gramian="layerwise")
        for rule, engine in ((mm.DDi(per_example=True), None), (mm.DDi(), layerwise)):
            d, _ = mm.descent_direction(
                problem, None, (x, y), mm.PGD(2, 0.05, restarts=3, seed=seed), rule, engine=engine
            )
            assert float(d.kkt) < 1e-6
            assert all(bool(torch.isfinite(v).all()) for v in d.vector.values())


def test_precision_allows_the_rounding_of_the_dtype_k_was_formed_in():
    G = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    K = (G @ G.T).double()
    K[0, 1] *= 1 + 5e-8  # float32-level asymmetry in a float64 matrix
    with pytest.raises(ValueError, match="not symmetric"):
        mm.min_norm_weights(K)  # float64 data: 1e-8 allowance, unchanged
    r = mm.min_norm_weights(K, precision=torch.float32)
    assert float(r.kkt) < 1e-9
    r = mm.linalg.min_norm_product_weights(K, [2, 2], precision=torch.float32)
    assert float(r.kkt) < 1e-9
    with pytest.raises(TypeError, match="precision"):
        mm.min_norm_weights(K, precision="float32")
