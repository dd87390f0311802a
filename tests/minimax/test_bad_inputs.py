"""Bad inputs at every public entry of `minimax` (docs/reliability.md, "Arguments").

Each case replaces one argument of a working call by a hostile value (NaN, ±Inf, a negative,
fractional or huge number, a string, None, a bool, an integer, complex or NaN tensor, a wrong
shape) drawn by hypothesis. The call must raise a ValueError or TypeError whose message names
that argument, or return a finite, correct result. One test runs every entry in turn, prints
how many cases it tried per entry and in all, and asserts a minimum. Another checks the messages
of common mistakes one by one (a delta of the wrong shape, an empty batch, a loss that reduces, a
parameter the optimizer does not hold, ...).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import minimax as mm

F64 = torch.float64
NAN, INF = float("nan"), float("inf")

SCALARS = [NAN, INF, -INF, -1.0, -0.5, 0.0, 2.7, 1e308, 1e-300, "a", None, True, [1.0]]
TENSORS = [
    torch.tensor([[NAN, 0.0]], dtype=F64),
    torch.tensor([[INF, 0.0]], dtype=F64),
    torch.ones(1, 2, dtype=torch.long),
    torch.ones(1, 2, dtype=torch.complex64),
    torch.ones(3, dtype=F64),
    torch.tensor([[1e308, -1e308]], dtype=F64),
    torch.tensor([[1e-300, 0.0]], dtype=F64),
    "a",
    None,
]
BAD = st.sampled_from(SCALARS + TENSORS)


def _finite(out):
    if isinstance(out, Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, mm.extend.Candidates):
        return _finite(out.values) and _finite(out.deltas)
    if isinstance(out, mm.extend.Direction):
        return all(_finite(v) for v in out.vector.values()) and _finite(out.norm)
    if isinstance(out, mm.extend.MinNormResult):
        return _finite(out.weights) and _finite(out.kkt)
    if isinstance(out, (tuple, list)):
        return all(_finite(o) for o in out)
    if isinstance(out, float):
        return math.isfinite(out)
    return True


Tensor = torch.Tensor


# --- the working calls, as name → (builder(**overrides), {argument: default}, check) -----------
def _toy():
    def g(p, d, batch):
        return -((d.reshape(d.shape[0], -1) - p["w"]) ** 2).sum(-1)

    return mm.FunctionProblem(
        g, {"w": torch.tensor([0.3, -0.2], dtype=F64)}, mm.LinfBall(0.5), event_shape=(2,)
    )


def _classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 4)).double()


X = torch.tensor([[0.2, 0.7], [0.5, 0.1]], dtype=F64)
Y = torch.tensor([1, 3])
BATCH = torch.zeros(2, 2, dtype=F64)


def _set_call(S_cls, method):
    def call(eps=0.5, delta=None, grad=None, step_size=0.1, x=None):
        S = S_cls(eps)
        delta = torch.tensor([[0.3, -0.9]], dtype=F64) if delta is None else delta
        if method == "project":
            return S.project(delta)
        if method == "contains":
            return S.contains(delta)
        if method == "random":
            return S.random(delta.shape if isinstance(delta, Tensor) else delta, dtype=F64)
        g = torch.tensor([[1.0, -2.0]], dtype=F64) if grad is None else grad
        return S.ascent_step(delta, g, step_size)

    return call


def _solve(solver_builder):
    def call(**kw):
        problem = _toy()
        solver = solver_builder(**kw)
        cands = solver(problem, problem.parameters(), BATCH)
        assert bool(problem.perturbation.contains(cands.deltas.detach()).all())
        return cands

    return call


def _classifier_solve(solver_builder):
    def call(**kw):
        problem = mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
        x = kw.pop("x", X)
        return solver_builder(**kw)(problem, problem.parameters(), (x, Y))

    return call


def _min_norm(fn):
    def call(gram=None, method="wolfe", tol=None, max_iter=None):
        k = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=F64) if gram is None else gram
        if fn is mm.linalg.min_norm_product_weights:
            return fn(k, [1, 1] if method == "wolfe" else method)
        if fn is mm.min_norm_point:
            return fn(k)
        return fn(k, method, tol=tol, max_iter=max_iter)

    return call


def _optimizer(lr=0.1, nonfinite="raise", x=X):
    problem = mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
    opt = torch.optim.SGD(problem.parameters().values(), lr=0.1)
    opt.param_groups[0]["lr"] = lr  # past torch's own checks
    mmo = mm.MinMaxOptimizer(problem, opt, mm.PGD(1, 0.05), mm.DDi(), nonfinite=nonfinite)
    return mmo.step((x, Y)).norm


def _function_problem(params=None, event_shape=(2,), perturbation=None):
    p = {"w": torch.zeros(2, dtype=F64)} if params is None else params
    S = mm.LinfBall(0.5) if perturbation is None else perturbation
    problem = mm.FunctionProblem(
        lambda q, d, b: (q["w"] * d).sum(-1), p, S, event_shape=event_shape
    )
    return mm.PGD(1, 0.1)(problem, problem.parameters(), BATCH)


def _rule(rule_name):
    def call(tolerance=None, x=X):
        problem = mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
        kw = {} if tolerance is None else {"tolerance": tolerance}
        rule = (
            mm.extend.RULES.build(rule_name, **kw)
            if rule_name.startswith("ddi")
            else (mm.extend.RULES.build(rule_name))
        )
        return mm.descent_direction(problem, None, (x, Y), mm.PGD(1, 0.05, restarts=2), rule)[0]

    return call


def _backward(x=X, update_statistics=True):
    problem = mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
    return mm.backward(
        problem, (x, Y), mm.PGD(1, 0.05), mm.DDi(), update_statistics=update_statistics
    )


# --- the entries of issue 21: attack/evaluate/backward arguments, files, finite max, ranks -----
LABELS = [
    torch.tensor([1, 9]),  # beyond the model's 4 classes
    torch.tensor([-1, 0]),
    torch.tensor([1.0, 3.0]),  # float labels
    torch.tensor([True, False]),
    torch.tensor([1]),  # one label for two inputs
    torch.tensor([[1, 3]]),
    [1, 3],
    "a",
    None,
]
MODELS = [
    "one-logit",  # 1 output for 4 classes: robust acc = clean acc before the check
    "two-logits",
    "wrong-input",  # expects 3 features, x has 2
    "a",
    None,
]
DEVICES = ["cuda:7", "gpu", "cuda", 3, None, "cpu"]
RULE_ARGS = ["ddi", "nope", 3, None, mm.PGD(1, 0.05)]
INNER_ARGS = ["pgd", 3, None, mm.DDi()]
PATHS = ["link", "directory", "missing-dir", "", None, 3]
RESULTS = ["nan", "inf", "a", None]
STATES = ["nan-momentum", "inf-lr", "negative-steps", "generator", "missing", "a", None]
COUNTS = [-1, 2.5, NAN, "a", None, True, 2**70]


def _model(spec=None):
    if spec is None:
        return _classifier()
    if not isinstance(spec, str) or spec not in ("one-logit", "two-logits", "wrong-input"):
        return spec
    torch.manual_seed(0)
    shape = {"one-logit": (2, 1), "two-logits": (2, 2), "wrong-input": (3, 4)}[spec]
    return nn.Linear(*shape).double()


def _attack(eps=0.1, steps=2, restarts=1, x=X, y=Y, seed=0, lower=0.0, upper=1.0, model=None):
    return mm.attack(
        _model(model),
        x,
        y,
        eps=eps,
        attack="pgd",
        steps=steps,
        restarts=restarts,
        seed=seed,
        lower=lower,
        upper=upper,
    )


def _evaluate(eps=0.1, restarts=1, batch_size=2, x=X, y=Y, seed=0, device=None, model=None):
    return mm.evaluate(
        _model(model),
        (x, y),
        eps=eps,
        attacks=["pgd"],
        steps=2,
        restarts=restarts,
        batch_size=batch_size,
        seed=seed,
        device=device,
    ).robust_acc


def _backward_pieces(rule=None, inner=None, problem=None):
    p = (
        mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
        if problem is None
        else problem
    )
    return mm.backward(
        p, (X, Y), mm.PGD(1, 0.05) if inner is None else inner, mm.DDi() if rule is None else rule
    ).norm


def _write_robustbench(path="file", result="ok", dataset="cifar10"):
    import math as _math
    import os
    import tempfile

    folder = tempfile.mkdtemp()
    target = os.path.join(folder, "target.json")
    with open(target, "w") as f:
        f.write("{}")
    os.symlink(target, os.path.join(folder, "link"))
    where = {
        "file": os.path.join(folder, "out.json"),
        "link": os.path.join(folder, "link"),
        "directory": folder,
        "missing-dir": os.path.join(folder, "no", "out.json"),
    }
    r = mm.evaluate(_classifier(), (X, Y), eps=0.1, attacks=["pgd"], steps=1)
    if result in ("nan", "inf"):
        r.robust_acc = _math.nan if result == "nan" else _math.inf
    elif result != "ok":
        r = result
    try:
        mm.write_robustbench(r, where.get(path, path), dataset=dataset)  # type: ignore[arg-type]
    finally:
        with open(target) as f:
            assert f.read() == "{}", "wrote through the link"
    return 0.0


def _worst_group(num_groups=3, group=None, x=X):
    torch.manual_seed(0)
    model = nn.Linear(2, 4).double()
    problem = mm.WorstGroupProblem.from_module(model, num_groups)
    g = torch.tensor([0, 2]) if group is None else group
    cands = mm.Enumerate()(problem, problem.parameters(), (x, Y, g))
    return mm.DDi()(problem, problem.parameters(), (x, Y, g), cands).norm


def _group_dro(step_size=0.5, group=None):
    torch.manual_seed(0)
    problem = mm.WorstGroupProblem.from_module(nn.Linear(2, 4).double(), 3)
    g = torch.tensor([0, 2]) if group is None else group
    cands = mm.Enumerate()(problem, problem.parameters(), (X, Y, g))
    return mm.GroupDRO(step_size)(problem, problem.parameters(), (X, Y, g), cands).norm


def _group_dro_state(q=None, step_size=0.5):
    rule = mm.GroupDRO(0.5)
    rule.load_state_dict(
        {"q": torch.tensor([0.5, 0.5]) if q is None else q, "step_size": step_size}
    )
    return rule.q


def _optimizer_state(state="ok"):
    import copy

    problem = mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
    opt = torch.optim.SGD(problem.parameters().values(), lr=0.1, momentum=0.9)
    mmo = mm.MinMaxOptimizer(problem, opt, mm.PGD(1, 0.05), mm.DDi())
    mmo.step((X, Y))
    good = copy.deepcopy(mmo.state_dict())
    bad = copy.deepcopy(good)
    if state == "nan-momentum":
        bad["optimizer"]["state"][0]["momentum_buffer"].fill_(NAN)
    elif state == "inf-lr":
        bad["optimizer"]["param_groups"][0]["lr"] = INF
    elif state == "negative-steps":
        bad["steps"] = -3
    elif state == "generator":
        bad["generator"] = torch.zeros(2)
    elif state == "missing":
        del bad["optimizer"]
    elif state != "ok":
        bad = state
    before = copy.deepcopy(mmo.state_dict())
    try:
        mmo.load_state_dict(bad)
    except (ValueError, TypeError):
        after = mmo.state_dict()
        assert repr(after["optimizer"]) == repr(before["optimizer"]), "state changed"
        assert after["steps"] == before["steps"]
        raise
    return mmo.steps


def _weighted_gradient(weights=None):
    problem = mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
    deltas = torch.zeros(2, 2, 2, dtype=F64)
    w = torch.full((2, 2), 0.5, dtype=F64) if weights is None else weights
    return mm.linalg.weighted_gradient(problem, problem.parameters(), (X, Y), deltas, w)["0.weight"]


def _communicator(tensors=None, count=2, values=None):
    local = mm.distributed.LOCAL
    t = {"a": torch.ones(2, dtype=F64)} if tensors is None else tensors
    v = torch.ones(3, 2, dtype=F64) if values is None else values
    return local.mean(t, count)["a"], local.batch_means(v)


ENTRIES = {
    **{
        f"{S.__name__}.{m}": (_set_call(S, m), ["eps", "delta", "grad", "step_size"])
        for S in (mm.LinfBall, mm.L2Ball, mm.L1Ball)
        for m in ("project", "ascent_step", "contains", "random")
    },
    "Box": (
        lambda lower=0.0, upper=1.0: mm.Box(lower, upper).project(torch.full((1, 2), 2.0)),
        ["lower", "upper"],
    ),
    "Simplex": (lambda k=3: mm.Simplex(k).vertices(), ["k"]),
    "FunctionProblem": (_function_problem, ["params", "event_shape", "perturbation"]),
    "ModuleProblem": (_classifier_solve(lambda: mm.PGD(1, 0.05)), ["x"]),
    "PGD": (
        _solve(
            lambda steps=2, step_size=0.1, restarts=1, chunk=None, select="last": mm.PGD(
                steps, step_size, restarts, chunk=chunk, select=select
            )
        ),
        ["steps", "step_size", "restarts", "chunk", "select"],
    ),
    "FGSM": (
        _solve(lambda step_size=0.1, restarts=1: mm.FGSM(step_size, restarts)),
        ["step_size", "restarts"],
    ),
    "APGD": (
        _solve(
            lambda steps=2, restarts=1, rho=0.75, alpha=0.75, loss="ce": mm.APGD(
                steps, restarts, rho=rho, alpha=alpha, loss=loss
            )
        ),
        ["steps", "restarts", "rho", "alpha", "loss"],
    ),
    "APGDTargeted": (
        _classifier_solve(
            lambda steps=2, targets=2, restarts=1: mm.extend.APGDTargeted(steps, targets, restarts)
        ),
        ["steps", "targets", "restarts", "x"],
    ),
    "Square": (
        _solve(
            lambda queries=5, restarts=1, p_init=0.8: mm.Square(
                queries, restarts, p_init=p_init, loss="objective"
            )
        ),
        ["queries", "restarts", "p_init"],
    ),
    "Grid": (
        lambda points=5, candidates=2, tol=1e-9: _solve(
            lambda: mm.Grid(points, candidates, tol=tol)
        )(),
        ["points", "candidates", "tol"],
    ),
    "Enumerate": (_classifier_solve(lambda: mm.Enumerate()), ["x"]),
    "rules.ddi": (_rule("ddi"), ["tolerance", "x"]),
    "rules.danskin": (_rule("danskin"), ["x"]),
    "rules.maxloss": (_rule("maxloss"), ["x"]),
    "min_norm_weights": (_min_norm(mm.min_norm_weights), ["gram", "method", "tol", "max_iter"]),
    "min_norm_point": (_min_norm(mm.min_norm_point), ["gram"]),  # gram: the vectors here
    "min_norm_product_weights": (_min_norm(mm.linalg.min_norm_product_weights), ["gram"]),
    "MinMaxOptimizer": (_optimizer, ["lr", "nonfinite", "x"]),
    "descent_direction": (_rule("ddi"), ["x"]),
    "backward": (_backward, ["x"]),
    "attack": (
        _attack,
        ["eps", "steps", "restarts", "x", "y", "seed", "lower", "upper", "model"],
    ),
    "evaluate": (
        _evaluate,
        ["eps", "restarts", "batch_size", "x", "y", "seed", "device", "model"],
    ),
    "backward.pieces": (_backward_pieces, ["rule", "inner", "problem"]),
    "write_robustbench": (_write_robustbench, ["path", "result", "dataset"]),
    "Simplex.project": (
        lambda k=3, delta=None: mm.Simplex(k).project(
            torch.tensor([[0.2, 0.9, -0.4]], dtype=F64) if delta is None else delta
        ),
        ["k", "delta"],
    ),
    "WorstGroupProblem+Enumerate": (_worst_group, ["num_groups", "group", "x"]),
    "GroupDRO": (_group_dro, ["step_size", "group"]),
    "GroupDRO.load_state_dict": (_group_dro_state, ["q", "step_size"]),
    "MinMaxOptimizer.load_state_dict": (_optimizer_state, ["state"]),
    "weighted_gradient": (_weighted_gradient, ["weights"]),
    "Communicator": (_communicator, ["tensors", "count", "values"]),
    "shard_bounds": (
        lambda n=10, rank=1, world_size=3: mm.distributed.shard_bounds(n, rank, world_size),
        ["n", "rank", "world_size"],
    ),
    "split_sizes": (
        lambda n=10, world_size=3: mm.distributed.split_sizes(n, world_size),
        ["n", "world_size"],
    ),
    "kkt_residual": (
        lambda weights=None, gram=None: mm.linalg.kkt_residual(
            torch.tensor([0.5, 0.5], dtype=F64) if weights is None else weights,
            torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=F64) if gram is None else gram,
        ),
        ["weights", "gram"],
    ),
}

#: argument pools beyond the generic scalars and tensors
POOLS = {
    "y": LABELS,
    "group": LABELS,
    "model": MODELS,
    "device": DEVICES,
    "rule": RULE_ARGS,
    "inner": INNER_ARGS,
    "problem": ["a", None, 3, nn.Linear(2, 2)],
    "path": PATHS,
    "result": RESULTS,
    "state": STATES,
    "count": COUNTS,
    "n": COUNTS,
    "rank": [*COUNTS, 3, 7],
    "world_size": [*COUNTS, 0],
    "q": [
        torch.tensor([NAN, 1.0]),
        torch.tensor([INF, 0.0]),
        torch.tensor([0.7, 0.7]),
        torch.tensor([[0.5, 0.5]]),
        "a",
    ],
    "tensors": [[1.0], "a", None, {"a": "b"}, {"a": 3.0}],
    # a reducer passes NaN through (as a mean does); the solvers' value checks refuse it before
    "values": TENSORS[2:],
    "weights": [*TENSORS, torch.tensor([[NAN, 0.5], [0.5, 0.5]], dtype=F64)],
}

#: words a message may use for an argument instead of its name
ALIASES = {
    "delta": ("delta", "shape"),
    "x": ("x", "batch", "inputs", "shape"),
    "gram": ("gram", "K ", "vectors"),
    "params": ("params", "parameters"),
    "event_shape": ("event_shape", "shape"),
    "lr": ("lr", "learning rate"),
    "perturbation": ("perturbation", "set"),
    "y": ("y", "labels"),
    "group": ("group",),
    "model": ("model", "logits"),
    "rule": ("rule",),
    "inner": ("inner",),
    "problem": ("problem",),
    "path": ("path",),
    "result": ("result",),
    "state": ("state", "MinMaxOptimizer"),
    "q": ("q", "GroupDRO"),
    "tensors": ("tensors",),
    "weights": ("weights",),
    "values": ("values",),
}

# Entries where `delta` and `grad` are shapes or tensors: only the tensor pool makes sense for
# them; other arguments take scalars too.
TENSOR_ARGS = {"delta", "grad", "gram", "x"}
# Arguments a call ignores (the call still has to work): e.g. `random` takes no grad.
IGNORED = {
    ("random", "grad"),
    ("random", "step_size"),
    ("project", "grad"),
    ("project", "step_size"),
    ("contains", "grad"),
    ("contains", "step_size"),
}


def _run_case(entry, arg, value, counts):
    call, _ = ENTRIES[entry]
    counts[entry] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning (e.g. a discarded imaginary part) fails
            out = call(**{arg: value})
    except (ValueError, TypeError) as err:
        msg = str(err)
        names = ALIASES.get(arg, (arg,))
        assert any(n in msg for n in names), f"{entry}({arg}={value!r}): {msg!r} names no {names}"
        return
    except mm.NonFiniteError:
        msg = f"{entry}({arg}={value!r}): NonFiniteError, not a usage error"
        raise AssertionError(msg) from None
    assert _finite(out), f"{entry}({arg}={value!r}) returned a non-finite result {out!r}"


def _runner(entry, usable, counts):
    @settings(
        max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(arg=st.sampled_from(usable), data=st.data())
    def run(arg, data):
        pool = POOLS.get(arg) or (TENSORS if arg in TENSOR_ARGS else SCALARS + TENSORS[:3])
        value = data.draw(st.sampled_from(pool), label=arg)
        _run_case(entry, arg, value, counts)

    return run


def test_every_public_entry_refuses_bad_inputs_by_name():
    counts: Counter[str] = Counter()
    for entry, (_, args) in ENTRIES.items():
        method = entry.split(".")[-1]
        _runner(entry, [a for a in args if (method, a) not in IGNORED], counts)()
    total = sum(counts.values())
    print(f"\nbad-input cases tried: {total} over {len(counts)} public entries")
    for entry, n in sorted(counts.items()):
        print(f"  {entry:28s} {n}")
    assert len(counts) == len(ENTRIES)
    assert total >= 450


def test_each_reported_case_refused_by_name():
    """The cases issue 21 lists, one by one (the hypothesis run above draws among them)."""
    import pytest

    one_logit = _model("one-logit")
    with pytest.raises(ValueError, match=r"1 logits per example .* labels y go up to 3"):
        mm.evaluate(one_logit, (X, Y), eps=0.1, attacks=["pgd"], steps=1)
    with pytest.raises(ValueError, match="logits"):
        mm.attack(one_logit, X, Y, eps=0.1, attack="pgd", steps=1)
    with pytest.raises(ValueError, match="labels y go up to 9"):
        mm.attack(_classifier(), X, torch.tensor([1, 9]), eps=0.1, attack="pgd", steps=1)
    with pytest.raises(TypeError, match=r"y must hold integer class labels.*y\.long\(\)"):
        mm.attack(_classifier(), X, Y.double(), eps=0.1, attack="pgd", steps=1)
    with pytest.raises(TypeError, match="seed"):
        mm.attack(_classifier(), X, Y, eps=0.1, seed="a")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            mm.evaluate(_classifier(), (X, Y), eps=0.1, device="cuda")
    with pytest.raises(ValueError, match=r"lower = 1 > upper = 0"):
        mm.attack(_classifier(), X, Y, eps=0.1, lower=1, upper=0)
    problem = mm.ModuleProblem(_classifier(), perturbation=mm.LinfBall(0.1, lower=0, upper=1))
    assert _finite(mm.backward(problem, (X, Y), mm.PGD(1, 0.05), "ddi"))
    with pytest.raises(ValueError, match="unknown rule"):
        mm.backward(problem, (X, Y), mm.PGD(1, 0.05), "dd")
    nan_weights = torch.tensor([[NAN, 0.5], [0.5, 0.5]], dtype=F64)
    with pytest.raises(ValueError, match="weights contain NaN"):
        _weighted_gradient(nan_weights)
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size\)"):
        mm.distributed.shard_bounds(10, 3, 3)
    with pytest.raises(ValueError, match="world_size"):
        mm.distributed.split_sizes(5, 0)


def test_bad_inputs_have_clear_errors(logistic, elu_network):
    lin, loss, (x, y) = logistic()
    problem = mm.ModuleProblem(lin, loss, mm.LinfBall(0.1))
    params = problem.parameters()
    with pytest.raises(ValueError, match="eps must be"):
        mm.LinfBall(-0.1)
    with pytest.raises(ValueError, match="delta has shape"):
        mm.extend.engine_of(problem).values(
            params, torch.zeros(2, 16, 4, dtype=torch.float64), (x, y)
        )
    with pytest.raises(ValueError, match="empty"):
        mm.PGD(2, 0.1)(problem, params, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="examples but y"):
        mm.PGD(2, 0.1)(problem, params, (x, y[:3]))
    with pytest.raises(TypeError, match="dtype"):
        mm.PGD(2, 0.1)(problem, params, (x.float(), y))
    with pytest.raises(ValueError, match="model is on"):
        mm.PGD(2, 0.1)(problem, params, (x.to("meta"), y.to("meta")))
    with pytest.raises(ValueError, match="reduction='none'"):
        bad = mm.ModuleProblem(lin, lambda o, t: loss(o, t).mean(), mm.LinfBall(0.1))
        mm.PGD(2, 0.1)(bad, bad.parameters(), (x, y))
    with pytest.raises(ValueError, match="restarts"):
        mm.PGD(2, 0.1, restarts=0)
    with pytest.raises(ValueError, match="tolerance"):
        mm.DDi(tolerance=-1.0)
    with pytest.raises(TypeError, match="perturbation"):
        mm.ModuleProblem(lin, loss, None)
    with pytest.raises(ValueError, match="not in the optimizer"):
        mm.MinMaxOptimizer(
            problem,
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1),
            mm.PGD(1, 0.1),
            mm.DDi(),
        )
    with pytest.raises(MemoryError, match="per_example=False"):
        toy = elu_network(n=8)
        mm.descent_direction(
            toy.problem,
            None,
            toy.batch,
            mm.PGD(1, 0.1, restarts=2),
            mm.DDi(per_example=True),
            engine=mm.Engine(toy.problem, memory_budget=10, gramian="materialized"),
        )
    with pytest.raises(ValueError, match="per-example values"):
        fp = mm.FunctionProblem(
            lambda p, d, b: (p["t"] * d).sum(),
            {"t": torch.ones(1)},
            mm.Box(-1.0, 1.0),
            event_shape=(1,),
        )
        mm.PGD(1, 0.1)(fp, fp.parameters(), torch.zeros(3))
