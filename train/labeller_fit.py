"""Training the EmotionLabeller on annotated clips, with early stopping on held-out clips.

    model, history = fit_labeller(train_clips, train_signs, stop_clips, stop_signs, seed=0)
    ensemble, histories = fit_ensemble(train_clips, train_signs, stop_clips, stop_signs)   # the chosen labeller

clips: lists of `labeller_frames` arrays (float32 [T_i, spec.LABELLER_INPUTS]); signs: float32
[N, 2] quadrant sides in {-1, +1} (`train.labeller_model.quadrant_signs`). The stopping clips must
be held out BY SONG (clips cut from one recording are near copies of each other: a stopping split
that shares songs with the training clips stops late and picks an over-fitted model).

Each epoch shuffles the training clips, takes one augmented view of each
(`train.labeller_model.augment_frames`: a random window-long crop, velocities dropped or rescaled)
and steps AdamW on `labeller_loss`. After each epoch the stopping clips are labelled as a piece is
(`label_piece`: windows averaged) and scored by the binary cross-entropy of P(side +) =
(y + 1) / 2 against their sides. What is evaluated and kept is the moving average of the weights
over the steps (decay LabellerConfig.average: one epoch's noise in the stopping score is large
on a few hundred clips, the average's is smaller); the best epoch's (a deep copy) is returned,
and training stops `patience` epochs after it. `LabellerConfig` holds every setting; CHOSEN is the
configuration chosen in bench/labeller_models.py.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch

from train.labeller_model import (EmotionLabeller, LabellerEnsemble, augment_frames, label_piece, labeller_loss,
                                  pad_batch)


@dataclass(frozen=True)
class LabellerConfig:
    """Every setting of a labeller's training (defaults: the plain GRU + summary; CHOSEN: the chosen one)."""

    hidden: int = 64
    dropout: float = 0.2
    summary: bool = True
    sequence: bool = True          # False: the counts alone (EmotionLabeller(sequence=False))
    cues: bool = False             # the clip's cues (train.labeller_cues) beside the head
    prior: bool = False            # start from the hand rule (train.labeller_cues.rule_of_cues), learn a correction
    correct_arousal: bool = True   # False (with prior): the arousal is the rule's, only its gain learnt
    epochs: int = 30               # at most
    patience: int = 6              # epochs without a better stopping loss before stopping
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    smoothing: float = 0.1
    drop_velocity: float = 0.3
    velocity_scale: float = 0.2
    shortest_crop: float = 1.0     # training crops last between this fraction of a window and a window
    average: float = 0.98          # weights evaluated and kept: their moving average, this decay per step (0: off)

    def as_dict(self) -> dict:
        return asdict(self)


def stopping_loss(model: EmotionLabeller, clips: list[np.ndarray], signs: np.ndarray) -> float:
    """Mean BCE of (label_piece + 1) / 2 against the clips' sides (signs [N, 2] in {-1, +1})."""
    values = np.stack([label_piece(model, c) for c in clips])
    p = np.clip((values + 1.0) / 2.0, 1e-6, 1.0 - 1e-6)
    target = (np.asarray(signs) + 1.0) / 2.0
    return float(-np.mean(target * np.log(p) + (1.0 - target) * np.log(1.0 - p)))


def fit_labeller(train_clips: list[np.ndarray], train_signs: np.ndarray, stop_clips: list[np.ndarray],
                 stop_signs: np.ndarray, config: LabellerConfig = LabellerConfig(), seed: int = 0,
                 log=None, on_epoch=None) -> tuple[EmotionLabeller, list[dict]]:
    """Train a labeller (module docstring). Returns (the best epoch's model in eval mode, history:
    one dict per epoch with epoch, train_loss, stop_loss). `log`: called with each history row;
    `on_epoch`: called with (row, the model as evaluated) after each epoch."""
    if not train_clips or not stop_clips:
        raise ValueError("a labeller needs training clips and held-out stopping clips")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = EmotionLabeller(hidden=config.hidden, dropout=config.dropout, summary=config.summary,
                            sequence=config.sequence, cues=config.cues, prior=config.prior,
                            correct_arousal=config.correct_arousal)
    averaged = copy.deepcopy(model).eval() if config.average > 0 else model
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    signs = torch.as_tensor(np.asarray(train_signs, dtype=np.float32))
    best, best_state, since, history = float("inf"), None, 0, []
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(len(train_clips))
        total = 0.0
        for first in range(0, order.size, config.batch_size):
            rows = order[first:first + config.batch_size]
            views = [augment_frames(train_clips[i], rng, drop_velocity=config.drop_velocity,
                                    velocity_scale=config.velocity_scale, shortest=config.shortest_crop)
                     for i in rows]
            frames, lengths = pad_batch(views)
            loss = labeller_loss(model.logits(frames, lengths), signs[rows], config.smoothing)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if averaged is not model:
                with torch.no_grad():
                    for mean, value in zip(averaged.parameters(), model.parameters()):
                        mean.lerp_(value, 1.0 - config.average)
            total += float(loss.detach()) * rows.size
        averaged.eval()
        stop = stopping_loss(averaged, stop_clips, stop_signs)
        row = {"epoch": epoch, "train_loss": total / order.size, "stop_loss": stop}
        history.append(row)
        if log is not None:
            log(row)
        if on_epoch is not None:
            on_epoch(row, averaged)
        if stop < best:
            best, best_state, since = stop, copy.deepcopy(averaged.state_dict()), 0
        else:
            since += 1
            if since >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, history


#: the counts member of the chosen ensemble: EmotionLabeller(sequence=False), trained alike
COUNTS = LabellerConfig(sequence=False, dropout=0.1, learning_rate=1e-2, epochs=80, patience=10)
#: the chosen labeller: for each seed a sequence model with the summary, the clip's cues and the
#: hand rule's arousal as its prior, kept uncorrected (chosen on the selection set; module docstring
#: of train.labeller_model); bench/labeller_models measured (GRU + COUNTS) per seed no better
CHOSEN = (LabellerConfig(cues=True, prior=True, correct_arousal=False),)
SEEDS = (0, 1, 2)


def fit_ensemble(train_clips: list[np.ndarray], train_signs: np.ndarray, stop_clips: list[np.ndarray],
                 stop_signs: np.ndarray, config=CHOSEN, seeds=SEEDS,
                 log=None) -> tuple[LabellerEnsemble, list[list[dict]]]:
    """For each seed, one labeller per config (`fit_labeller`, same clips), all averaged. config: a
    LabellerConfig or a sequence of them (default CHOSEN: the sequence model).
    Returns (the ensemble in eval mode, each member's history, seed by seed). `log`: called with
    (seed, history row)."""
    configs = (config,) if isinstance(config, LabellerConfig) else tuple(config)
    members, histories = [], []
    for seed in seeds:
        for each in configs:
            model, history = fit_labeller(train_clips, train_signs, stop_clips, stop_signs, each, seed=seed,
                                          log=None if log is None else (lambda row, s=seed: log(s, row)))
            members.append(model)
            histories.append(history)
    return LabellerEnsemble(members).eval(), histories
