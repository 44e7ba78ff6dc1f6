"""The EmotionLabeller as the training loop (train.loop) and `kelly label` handle it.

`LabellerNetwork` is `train.labeller_model.EmotionLabeller` with what the loop asks of every
network (key, name, output size, input normalisation, an output prior) and what its checkpoint
must carry beyond the weights: the version of the frames it reads (spec.LABELLER_VERSION) and the
model's own settings (hidden size, dropout), so that it is rebuilt exactly and refuses frames of
another version. Batches for it are (frames [B, T, D], signs [B, 2], mask [B, T]); the mask says
which frames exist, and gives each clip's length.

    loss, out = batch_loss(model, frames, signs, mask)     # the loop's train.metrics.batch_loss

Loading a labeller checkpoint: `train.labeller_checkpoint`.
"""
from __future__ import annotations

import numpy as np
import torch

from preprocess.features import spec
from train.labeller_fit import CHOSEN
from train.labeller_model import EmotionLabeller, labeller_loss

KEY = spec.LABELLER_KEY
#: the labeller's outputs: the tanh of its logits, kept this far inside (-1, 1) where a prior or a
#: constant prediction is turned back into logits
ATANH_LIMIT = 0.999


#: the network `kelly train --models labeller` trains: train.labeller_fit.CHOSEN's (the GRU over the
#: frames with the frames' mean beside its pooled state, the clip's cues, and the two-term rule's
#: arousal as its prior; the comparison is in train.labeller_model's docstring)
MODEL_SETTINGS = {name: getattr(CHOSEN[0], name)
                  for name in ("hidden", "dropout", "summary", "sequence", "cues", "prior", "correct_arousal")}
#: the decay per optimizer step of the weights' moving average (train.labeller_fit's choice: one
#: epoch's noise in the validation score is large on a few hundred clips, the average's smaller)
AVERAGE_DECAY = 0.98


def _average_name(parameter: str) -> str:
    return "average__" + parameter.replace(".", "__")


class LabellerNetwork(EmotionLabeller):
    """EmotionLabeller with the loop's interface. Its frames are bounded by construction ([0, 1] or
    [-1, 1], preprocess.features.labeller_input), so no input standardisation is folded in.

    Weight averaging: beside each parameter a buffer holds its moving average over the optimizer
    steps (`after_step`, which the loop calls after each step: average += (1 - AVERAGE_DECAY) *
    (weight - average)). In training mode the network runs on its weights; in eval mode (validation,
    early stopping's choice, labelling) on their averages. The averages are buffers, so they are in
    every checkpoint and a resumed run continues them exactly."""

    key = KEY
    name = spec.LABELLER_NETWORK.class_name
    is_recurrent = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parameter_names = [name for name, _ in self.named_parameters()]
        for name, value in self.named_parameters():
            self.register_buffer(_average_name(name), value.detach().clone())

    @torch.no_grad()
    def after_step(self) -> None:
        """Move each average towards its weight by (1 - AVERAGE_DECAY)."""
        for name, value in self.named_parameters():
            getattr(self, _average_name(name)).lerp_(value, 1.0 - AVERAGE_DECAY)

    @torch.no_grad()
    def reset_average(self) -> None:
        """Every average set to its weight (after the weights are set other than by a step)."""
        for name, value in self.named_parameters():
            getattr(self, _average_name(name)).copy_(value)

    def logits(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """As EmotionLabeller.logits; in eval mode with the averaged weights (swapped in for the call)."""
        if self.training:
            return super().logits(frames, lengths)
        parameters = [value for _, value in self.named_parameters()]
        kept = [value.data for value in parameters]
        try:
            for name, value in zip(self._parameter_names, parameters):
                value.data = getattr(self, _average_name(name))
            return super().logits(frames, lengths)
        finally:
            for value, data in zip(parameters, kept):
                value.data = data

    @property
    def output_size(self) -> int:
        return spec.LABELLER_NETWORK.outputs

    @property
    def input_size(self) -> int:
        return self.config["inputs"]

    def set_input_normalisation(self, mean, std) -> None:
        """Nothing to fold in: the frames are bounded (see the class docstring)."""

    def init_output_prior(self, target_mean, weight_scale: float = 0.1) -> None:
        """Start the output at the training mean of the signs: the head's bias set to atanh(mean)."""
        mean = np.clip(np.asarray(target_mean, dtype=np.float64), -ATANH_LIMIT, ATANH_LIMIT)
        with torch.no_grad():
            self.head[-1].bias.copy_(torch.as_tensor(np.arctanh(mean), dtype=self.head[-1].bias.dtype))
        self.reset_average()

    def checkpoint_extra(self) -> dict:
        """What a labeller checkpoint holds besides the loop's keys."""
        return {"labeller_version": spec.LABELLER_VERSION, "model_config": dict(self.config)}


def lengths_of(mask: torch.Tensor | None, frames: torch.Tensor) -> torch.Tensor:
    """Frames per clip, int64 [B]: the mask's row sums (every frame when None)."""
    if mask is None:
        return torch.full((frames.shape[0],), frames.shape[1], dtype=torch.long)
    return mask.sum(1).to(torch.long)


def batch_loss(model: LabellerNetwork, frames: torch.Tensor, signs: torch.Tensor, mask: torch.Tensor | None):
    """(mean labeller loss over the batch's clips, the outputs tanh(z) [B, 2] the metric reads)."""
    logits = model.logits(frames, lengths_of(mask, frames))
    return labeller_loss(logits, signs), torch.tanh(logits)


def constant_loss(prediction: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """The labeller loss of predicting the same outputs `prediction` [2] for every clip."""
    logits = torch.atanh(prediction.clamp(-ATANH_LIMIT, ATANH_LIMIT)).expand_as(signs)
    return labeller_loss(logits, signs)


def quadrant_hits(out: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Clips whose predicted quadrant (both signs; 0 counts as +) is the annotated one: a count."""
    return ((out >= 0) == (signs > 0)).all(-1).sum()


class single_thread:
    """Run the block with one intra-op thread (torch.set_num_threads(1)), the previous count restored
    after. The labeller is small (a 64-unit GRU): on 2 shared cores, measured over 10 training
    batches of 32 clips, one thread took 3.0 s of CPU (8.1 s wall) and two 27.0 s (67.2 s wall),
    the threads waiting on each other."""

    def __enter__(self):
        self.previous = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)
