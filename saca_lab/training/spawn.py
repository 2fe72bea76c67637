"""``ddp_spawn`` whose ranks leave the process group before they exit.

Lightning's spawn launcher returns from each rank's function and lets the process end with the
process group still up. Gloo's pair threads are then destroyed at interpreter exit, and now and
then (seen in CI, under load) a rank dies with ``terminate called without an active exception``
(SIGABRT) after a fit that succeeded. Each rank here waits for the others at a barrier, once the
results are handed back, and destroys the group itself.
"""

from __future__ import annotations

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher


def leave_process_group() -> None:
    """Barrier, then destroy the default process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class _LeavingLauncher(_MultiProcessingLauncher):
    # a module-level class: the spawn start method pickles the bound method it runs per rank
    def _wrapping_function(self, *args, **kwargs) -> None:
        super()._wrapping_function(*args, **kwargs)
        leave_process_group()


class SpawnDDPStrategy(DDPStrategy):
    """``DDPStrategy(start_method="spawn")`` with ranks that leave the group cleanly."""

    def __init__(self, **kwargs) -> None:
        super().__init__(start_method="spawn", **kwargs)

    def _configure_launcher(self) -> None:
        self._launcher = _LeavingLauncher(self, start_method=self._start_method)


def trainer_strategy(name: str):
    """What ``pl.Trainer(strategy=...)`` gets for a resolved ``train.strategy`` name."""
    return SpawnDDPStrategy() if name == "ddp_spawn" else name
