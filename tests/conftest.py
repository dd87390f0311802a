"""Shared test configuration: a bounded, deadline-free hypothesis profile, one torch thread."""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "minimax",
    deadline=None,
    max_examples=int(os.environ.get("MINIMAX_MAX_EXAMPLES", "40")),
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("minimax")
torch.set_num_threads(1)
# the CLI's --threads default keeps torch's count when OMP_NUM_THREADS is set (also in the
# subprocesses the tests start): one thread each, as above
os.environ.setdefault("OMP_NUM_THREADS", "1")
