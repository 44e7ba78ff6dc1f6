"""Early stopping on a validation value, with a real copy of the best weights.

The best weights are `copy.deepcopy(model.state_dict())`: a state dict's tensors share storage
with the live parameters, so keeping the dict itself (a "shallow copy") would "restore" whatever
the last epoch left behind.
"""
from __future__ import annotations

import copy
import math

import torch


class EarlyStopping:
    """Tracks the best value; `should_stop` after `patience` epochs without an improvement of more
    than `min_delta` (patience 0: never stop, still track and restore the best)."""

    def __init__(self, patience: int = 10, min_delta: float = 0.0, mode: str = "min",
                 restore_best_weights: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.stopped = False
        self.best_state: dict[str, torch.Tensor] | None = None

    def improves(self, value: float) -> bool:
        if self.best is None:
            return math.isfinite(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record one epoch's value; True when it is the new best (its weights are copied)."""
        if self.improves(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self.best_state = copy.deepcopy(model.state_dict())
            return True
        self.wait += 1
        if self.patience and self.wait >= self.patience:
            self.stopped = True
        return False

    @property
    def should_stop(self) -> bool:
        return self.stopped

    def restore(self, model: torch.nn.Module) -> bool:
        """Load the best weights into `model` (when kept); True when it did."""
        if not self.restore_best_weights or self.best_state is None:
            return False
        model.load_state_dict(self.best_state)
        return True

    def state_dict(self) -> dict:
        """The counters (the best weights themselves live in the best checkpoint)."""
        return {"patience": self.patience, "min_delta": self.min_delta, "mode": self.mode,
                "restore_best_weights": self.restore_best_weights, "best": self.best,
                "best_epoch": self.best_epoch, "wait": self.wait, "stopped": self.stopped}

    def load_state_dict(self, state: dict, best_weights: dict[str, torch.Tensor] | None = None) -> None:
        for name in ("best", "best_epoch", "wait", "stopped"):
            setattr(self, name, state[name])
        if best_weights is not None:
            self.best_state = copy.deepcopy(best_weights)
