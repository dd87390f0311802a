"""A reusable, resumable adversarial-training loop over any in-memory image data set.

Public API (shapes: N examples, B batch; images [N, ...] float in [0, 1] or uint8 in [0, 255],
labels int64 [N])::

    TrainConfig(...)                                   the recipe (rule, m, schedule, attack, ...)
    train(model, train_set, val_set, config, out_dir, *, resume=False, progress=True,
          augment_fn=None, max_steps=None, meta=None, overwrite=False, callback=None)
        -> RunHistory
    load_history(run_dir) -> RunHistory
    load_checkpoint(path, *, finite=True) -> dict     (NonFiniteStateError on NaN / Inf)
    NonFiniteStateError, first_non_finite(obj)
    RunHistory(config, epochs, out_dir, status, meta).steps() -> list[dict]   (per-step records)
    RULES, build_rule(name, **options)                 the outer rules by name
    SCHEDULES, BATCHNORM, TIME_FIELDS

Modules: `config` (the recipe), `rules` (the rule registry), `setup` (the pieces and `Run`),
`loop` (the phases: epoch, step, validation), `epoch_stats` (an epoch's running sums and
record), `signals` (SIGINT / SIGTERM), `divergence` (what stops a diverging run),
`checkpoint` (run directory, checkpoint I/O), `history` (records and metrics.jsonl).
"""

from .checkpoint import NonFiniteStateError, first_non_finite, load_checkpoint
from .config import BATCHNORM, SCHEDULES, TIME_FIELDS, TrainConfig
from .history import RunHistory, load_history
from .loop import train
from .rules import RULES, build_rule
from .setup import weights_entropy

__all__ = [
    "BATCHNORM",
    "RULES",
    "SCHEDULES",
    "TIME_FIELDS",
    "NonFiniteStateError",
    "RunHistory",
    "TrainConfig",
    "build_rule",
    "first_non_finite",
    "load_checkpoint",
    "load_history",
    "train",
    "weights_entropy",
]
