"""The non-finite policy (docs/reliability.md): a NaN or Inf in the direction, the robust loss or
the objective values raises `minimax.NonFiniteError` and changes nothing, or (``nonfinite="skip"``)
skips the step and counts it."""

import copy

import pytest
import torch
from torch import nn

import minimax as mm


class Switch(nn.Module):
    """A small classifier whose loss can be made to overflow by setting ``blow = True``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3))
        self.blow = False

    def forward(self, x):
        out = self.net(x)
        return out * torch.inf if self.blow else out


def _setup(rule, nonfinite="raise"):
    model = Switch().train()
    problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(0.1))
    opt = torch.optim.SGD(problem.parameters().values(), lr=0.1, momentum=0.9)
    mmo = mm.MinMaxOptimizer(problem, opt, mm.PGD(2, 0.05, restarts=2), rule, nonfinite=nonfinite)
    gen = torch.Generator().manual_seed(1)
    batch = (torch.randn(8, 3, generator=gen), torch.randint(0, 3, (8,), generator=gen))
    return model, problem, opt, mmo, batch


def _snapshot(model, opt, mmo):
    return (
        copy.deepcopy(model.state_dict()),
        copy.deepcopy(opt.state_dict()),
        mmo.steps,
        mmo.skipped_steps,
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
    )


def _assert_same(a, b):
    sa, oa, steps_a, skip_a, grads_a = a
    sb, ob, steps_b, skip_b, grads_b = b
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k  # parameters and running statistics, bitwise
    assert steps_a == steps_b and skip_a == skip_b
    assert repr(oa) == repr(ob)  # momentum buffers and step counts (tensors print bitwise here)
    for ga, gb in zip(grads_a, grads_b):
        assert (ga is None and gb is None) or torch.equal(ga, gb)


@pytest.mark.parametrize("rule", [mm.Danskin(), mm.MaxLoss(), mm.DDi()], ids=repr)
def test_raise_leaves_parameters_and_optimizer_state_bitwise_unchanged(rule):
    model, _problem, opt, mmo, batch = _setup(rule)
    mmo.step(batch)  # a good step first: momentum buffers exist
    before = _snapshot(model, opt, mmo)
    model.blow = True
    with pytest.raises(mm.NonFiniteError, match="not finite") as info:
        mmo.step(batch)
    assert isinstance(info.value, FloatingPointError)
    assert info.value.what in {"objective values", "direction", "gradients", "robust loss"}
    _assert_same(before, _snapshot(model, opt, mmo))
    model.blow = False
    mmo.step(batch)  # and it goes on from there
    assert mmo.steps == 2


def test_skip_counts_and_changes_nothing():
    model, _problem, opt, mmo, batch = _setup(mm.DDi(), nonfinite="skip")
    mmo.step(batch)
    before = _snapshot(model, opt, mmo)
    model.blow = True
    report = mmo.step(batch)
    report2 = mmo.step(batch)
    assert report.skipped and report2.skipped and mmo.skipped_steps == 2
    after = _snapshot(model, opt, mmo)
    _assert_same((*before[:3], 2, *before[4:]), after)
    state = mmo.state_dict()
    assert state["skipped_steps"] == 2
    fresh = _setup(mm.DDi(), nonfinite="skip")[3]
    fresh.load_state_dict(state)
    assert fresh.skipped_steps == 2


def test_nonfinite_option_is_checked():
    with pytest.raises(ValueError, match="nonfinite"):
        _setup(mm.DDi(), nonfinite="ignore")


def test_direction_check_names_the_parameter():
    vector = {"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])}
    with pytest.raises(mm.NonFiniteError, match=r"\['b'\]") as info:
        mm.nonfinite.check_direction(vector, torch.zeros(1, 2))
    assert info.value.where == ("b",) and info.value.what == "direction"
    with pytest.raises(mm.NonFiniteError, match="robust loss"):
        mm.nonfinite.check_direction({"a": torch.ones(2)}, torch.tensor([[float("inf")]]))
    mm.nonfinite.check_direction({"a": torch.ones(2)}, torch.zeros(2, 3))  # finite: no error


def test_backward_raises_the_same_error():
    model, problem, _, _, batch = _setup(mm.Danskin())
    model.blow = True
    with pytest.raises(mm.NonFiniteError):
        mm.backward(problem, batch, mm.PGD(1, 0.05), mm.Danskin())
    assert all(p.grad is None for p in model.parameters())


def _nan_problem(S, event=(1,)):
    def g(p, d, batch):
        return (p["w"] * d.reshape(d.shape[0], -1)).sum(-1) * torch.nan

    return mm.FunctionProblem(
        g, {"w": torch.ones(event[0], dtype=torch.float64)}, S, event_shape=event
    )


@pytest.mark.parametrize(
    "solver",
    [mm.PGD(3, 0.1), mm.FGSM(), mm.APGD(3), mm.Grid(points=5), mm.PGD(3, 0.1, select="best")],
    ids=repr,
)
def test_inner_solvers_refuse_non_finite_values(solver):
    problem = _nan_problem(mm.LinfBall(0.5))
    with pytest.raises(mm.NonFiniteError, match="not finite"):
        solver(problem, problem.parameters(), torch.zeros(2, 1, dtype=torch.float64))


def test_square_and_enumerate_refuse_non_finite_values():
    problem = _nan_problem(mm.LinfBall(0.5))
    with pytest.raises(mm.NonFiniteError):
        mm.Square(20, loss="objective")(
            problem, problem.parameters(), torch.zeros(2, 1, dtype=torch.float64)
        )
    simplex = _nan_problem(mm.Simplex(3), event=(3,))
    with pytest.raises(mm.NonFiniteError):
        mm.Enumerate()(simplex, simplex.parameters(), torch.zeros(2, 3, dtype=torch.float64))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: s["optimizer"]["state"][0]["momentum_buffer"].fill_(float("nan")),
        lambda s: s["optimizer"]["state"][1]["momentum_buffer"].view(-1)[0].fill_(float("inf")),
        lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", float("nan")),
        lambda s: s.__setitem__("steps", -1),
        lambda s: s.__setitem__("steps", 2.5),
        lambda s: s.__setitem__("generator", torch.zeros(3)),
    ],
    ids=["nan-momentum", "inf-momentum", "nan-lr", "negative-steps", "float-steps", "generator"],
)
def test_load_state_dict_refuses_bad_state_and_changes_nothing(corrupt):
    """Issue 21: a NaN momentum buffer was loaded and the next step made every weight NaN."""
    _model, _problem, _opt, mmo, batch = _setup(mm.DDi())
    mmo.step(batch)
    state = copy.deepcopy(mmo.state_dict())
    corrupt(state)
    fresh_model, _, fresh_opt, fresh, _ = _setup(mm.DDi())
    fresh.step(batch)
    before = _snapshot(fresh_model, fresh_opt, fresh)
    gen_before = fresh.generator.get_state()
    with pytest.raises(ValueError, match=r"NaN or Inf|steps|generator"):
        fresh.load_state_dict(state)
    _assert_same(before, _snapshot(fresh_model, fresh_opt, fresh))
    assert torch.equal(gen_before, fresh.generator.get_state())


def test_group_dro_load_state_dict_refuses_non_finite_q():
    rule = mm.GroupDRO(0.5)
    for q in ([float("nan"), 1.0], [float("inf"), 0.0]):
        with pytest.raises(ValueError, match="NaN or Inf"):
            rule.load_state_dict({"q": torch.tensor(q, dtype=torch.float64), "step_size": 0.5})
        assert rule.q is None
    with pytest.raises(ValueError, match="NaN or Inf"):
        rule.load_state_dict({"q": None, "step_size": float("nan")})
