"""Mixed precision on a GPU: autocast in bf16 where the device supports it, else fp16 with a
gradient scaler; full float32 elsewhere unless asked.

Settings (`NetworkConfig.mixed_precision`): "auto" is bf16 (or fp16) on CUDA and off on the CPU and
MPS, so the CPU path stays float32 and bit-exact on resume; "bf16" autocasts on the CPU too; "fp16"
needs CUDA. On CUDA, matrix products and cuDNN may also use TF32 (`allow_tf32`).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from common.errors import KellyError

__all__ = ["Precision", "autocast_dtype", "allow_tf32"]


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The dtype autocast runs in for `setting` on `device`; None for float32 throughout."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise KellyError("--mixed-precision bf16: this GPU has no bf16; use fp16 or auto")
        return torch.bfloat16
    if setting == "fp16":
        if device.type != "cuda":
            raise KellyError(f"--mixed-precision fp16 needs a CUDA device (this run is on {device.type}); "
                             "use bf16 or off")
        return torch.float16
    raise KellyError(f"mixed_precision must be auto, off, bf16 or fp16, got {setting!r}")


def allow_tf32(device: torch.device) -> None:
    """On CUDA, let float32 matrix products and convolutions use TF32 (no effect elsewhere)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


class Precision:
    """Autocast around the forward pass and loss, and the backward/step that goes with it (a
    gradient scaler for fp16). Disabled, it is plain `loss.backward()` and `optimizer.step()`."""

    def __init__(self, setting: str, device: torch.device):
        self.dtype = autocast_dtype(setting, device)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    @property
    def name(self) -> str:
        return {None: "float32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        return nullcontext() if self.dtype is None else torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Before gradient clipping: the gradients at their true scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
