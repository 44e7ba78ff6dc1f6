"""The training loop for one network: Adam, clipped gradients, an optional LR schedule, early
stopping, a checkpoint per epoch, exact resume. `train_network` reads top to bottom.

The LSTM networks train with their state carried from chunk to chunk within a piece (truncated
back-propagation through time, `NetworkConfig.carry_state`; lanes: `train.samples`), detached at
each chunk's edge, and validate the same way: over whole pieces, as the plugin runs them. Each
step's loss is the batch's sum over its real samples or steps divided by their count over every
rank (`Step.count`), times the number of ranks, whose gradients DistributedDataParallel averages
(`train.distributed`); alone, that is the batch mean. Mixed precision: `train.precision`.
torch runs `NetworkConfig.threads` CPU threads.

Exact resume: weights are initialised from `torch.manual_seed(seed)`; batches are drawn from a
dedicated `torch.Generator` seeded with `seed`; every random state, the optimizer, the scheduler
and the early-stopping counters are in each checkpoint. A run resumed from `<classname>_latest.pt`
(`train.outputs`) therefore ends with the same weights, bit for bit on the CPU, as one that was
never interrupted.

A NaN or infinite loss stops the network with `TrainingDiverged`; its checkpoints on disk are
those of the last good epoch.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.errors import KellyError
from preprocess.features.spec import FEATURE_VERSION
from train import checkpoints
from train.config import NetworkConfig
from train.data import TRAIN, VALIDATION, NetworkData
from train.distributed import World, all_sum, lost_peer, wrap
from train.early_stopping import EarlyStopping
from train.metrics import LOSS, METRIC, MetricSum, add_constant, constant_loss, loss_sum
from train.models import KellyNetwork, build
from train.precision import Precision, allow_tf32

CHECK_EVERY = 16            # batches between checks of the running loss for NaN/Inf
VALIDATION_ROWS = 8192      # rows per validation batch


class TrainingDiverged(KellyError):
    """The loss became NaN or infinite."""


@dataclass
class NetworkResult:
    key: str
    name: str
    best_epoch: int
    best_val_loss: float
    best_val_metric: float
    metric: str
    baseline: dict                 # {"loss": ..., "metric": ...} of the constant prediction on validation
    epochs_run: int                # epochs trained in this call
    seconds: float
    stopped_early: bool
    history: list[dict]
    steps: int = 0
    samples: int = 0               # training samples seen in this call
    train_seconds: float = 0.0     # time spent in training batches (no validation, checkpoints, history)
    train_cpu_seconds: float = 0.0   # this process's CPU time in the same (time.process_time)
    first_batch_at: float | None = None   # time.time() when the first optimizer step finished
    model: KellyNetwork | None = field(default=None, repr=False)


def train_network(key: str, data: NetworkData, config: NetworkConfig, *, output: str | Path = ".",
                  resume: bool = False, cache_identity: str = "", write_history: bool = True,
                  progress: bool = True, max_steps: int | None = None,
                  on_epoch_end: Callable[[dict], None] | None = None, world: World | None = None) -> NetworkResult:
    """Train network `key` on `data` with `config`; checkpoints and history go under `output`
    (by rank 0 alone when `world` holds several processes)."""
    started, device, world = time.perf_counter(), resolve_device(config.device), world or World()
    torch.set_num_threads(config.threads)
    allow_tf32(device)
    check_world(key, data, config, world)
    run = TrainingRun(key, data, config, Path(output), device, cache_identity, world)
    if resume:
        run.restore(checkpoints.checkpoint_path(output, key, "latest"))
    model, optimizer, stopper, metric_name = run.model, run.optimizer, run.stopper, METRIC[key][0]
    network, precision, carry = run.network, run.precision, config.carry_state and data.sequence_length is not None
    write_history, progress = write_history and world.is_main, progress and world.is_main
    after_step = getattr(model, "after_step", None)     # the labeller's weight average
    steps = samples = 0
    first_batch_at, train_seconds, train_cpu_seconds = None, 0.0, 0.0
    for epoch in range(run.epoch + 1, config.epochs + 1):
        if stopper.should_stop or (max_steps is not None and steps >= max_steps):
            break
        epoch_started, epoch_cpu = time.perf_counter(), time.process_time()
        model.train()
        loss_total, batches, metric = torch.zeros((), device=device), 0, MetricSum(key)
        bar = progress_bar(model.name, epoch, config.epochs, data.counts["train"], progress)
        state = None
        with run.faults(epoch):
            for x, y, mask, reset, count in data.steps(TRAIN, device, config.batch_size, run.shuffle,
                                                       carry_state=carry, rank=world.rank, world=world.size):
                with precision.autocast():
                    total, out, state = loss_sum(key, network, x, y, mask, carried(state, reset))
                loss = total * (world.size / count)
                optimizer.zero_grad(set_to_none=True)
                precision.backward(loss)
                if config.grad_clip > 0:
                    precision.unscale(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                precision.step(optimizer)
                if after_step is not None:
                    after_step()
                state = detached(state) if carry else None
                loss_total += total.detach() / count
                metric.add(out.detach().float(), y, mask)
                batches, steps, samples = batches + 1, steps + 1, samples + len(x)
                first_batch_at = first_batch_at or time.time()
                if batches % CHECK_EVERY == 0:
                    run.check_finite(loss_total.item(), epoch, batches)
                    bar.set_postfix(loss=f"{loss_total.item() * world.size / batches:.4g}", refresh=False)
                bar.update(len(x) * world.size)
                if max_steps is not None and steps >= max_steps:
                    break
            bar.close()
            train_loss = all_sum(loss_total.item(), world, device) / max(batches, 1)
        train_seconds += time.perf_counter() - epoch_started
        train_cpu_seconds += time.process_time() - epoch_cpu
        run.check_finite(train_loss, epoch, batches)
        val_loss, val_metric = validate(key, model, data, device, carry_state=carry)
        run.check_finite(val_loss, epoch, batches, "validation")
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "train_metric": metric.value(),
               "val_metric": val_metric, "lr": optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - epoch_started}
        run.history.append(row)
        run.step_scheduler(val_loss)
        improved = stopper.update(val_loss, epoch, model)
        run.epoch = epoch
        if world.is_main:
            run.save("latest")
            if improved:
                run.save("best")
        if write_history:
            run.write_history()
        if progress:
            bar.write(f"{model.name} epoch {epoch}/{config.epochs}: train {train_loss:.4g}, validation {val_loss:.4g}, "
                      f"{metric_name} {val_metric:.4g}" + (" (best)" if improved else ""))
        if on_epoch_end is not None:
            on_epoch_end(dict(row, improved=improved))
    stopper.restore(model)
    best = next((r for r in run.history if r["epoch"] == stopper.best_epoch), run.history[-1] if run.history else {})
    return NetworkResult(
        key=key, name=model.name, best_epoch=stopper.best_epoch, best_val_loss=best.get("val_loss", math.nan),
        best_val_metric=best.get("val_metric", math.nan), metric=metric_name, baseline=run.baseline,
        epochs_run=len(run.history) - run.resumed_epochs, seconds=time.perf_counter() - started,
        stopped_early=stopper.should_stop, history=list(run.history), steps=steps, samples=samples,
        train_seconds=train_seconds, train_cpu_seconds=train_cpu_seconds, first_batch_at=first_batch_at, model=model)


def carried(state: dict | None, reset: torch.Tensor | None) -> dict | None:
    """The LSTM state a step starts from: `state` (layer -> (h, c), each [1, B, H]) with the lanes
    where `reset` [B] is 1 set to zeros; None (zeros) when there is no state or nothing carried, or
    when the lanes changed (a new block: every lane starts a piece there)."""
    if not state or reset is None or next(iter(state.values()))[0].shape[1] != len(reset):
        return None
    keep = (1.0 - reset)[None, :, None]
    return {layer: (h * keep.to(h.dtype), c * keep.to(c.dtype)) for layer, (h, c) in state.items()}


def detached(state: dict) -> dict:
    """The state cut from the graph of the chunk that made it (truncated back-propagation)."""
    return {layer: (h.detach(), c.detach()) for layer, (h, c) in state.items()}


def check_world(key: str, data: NetworkData, config: NetworkConfig, world: World) -> None:
    """Several processes need at least one training sample and one batch row each."""
    if world.size == 1:
        return
    unit = "sequences" if data.sequence_length else "samples"
    if data.counts["train"] < world.size:
        raise KellyError(f"{key}: {world.size} processes but only {data.counts['train']} training {unit}; "
                         f"use at most {data.counts['train']} processes")
    if config.batch_size < world.size:
        raise KellyError(f"{key}: --batch-size {config.batch_size} is smaller than the {world.size} processes "
                         "sharing each batch")


class TrainingRun:
    """The state `train_network` carries from epoch to epoch, and how it is saved and restored."""

    def __init__(self, key: str, data: NetworkData, config: NetworkConfig, output: Path, device: torch.device,
                 cache_identity: str, world: World | None = None):
        self.key, self.data, self.config, self.output, self.cache_identity = key, data, config, output, cache_identity
        self.device, self.world = device, world or World()
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        self.model = build(key)
        self.model.set_input_normalisation(data.input_mean, data.input_std)
        self.model.init_output_prior(data.target_mean)
        self.model.to(device)
        self.precision = Precision(config.mixed_precision, device)
        self.network = wrap(self.model, self.world, device)          # what the training steps call
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.stopper = EarlyStopping(config.early_stopping_patience, config.early_stopping_min_delta,
                                     config.early_stopping_mode, config.restore_best_weights)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.history: list[dict] = []
        self.epoch = self.resumed_epochs = 0
        self.baseline = baseline(key, data, device)

    def restore(self, path: Path) -> None:
        """Continue from a latest checkpoint: weights, optimizer, scheduler, counters, RNG states."""
        state = checkpoints.load_checkpoint(path)
        if state["network"] != self.key:
            raise KellyError(f"{path}: a checkpoint of {state['network_name']}, not of {self.model.name}")
        checkpoints.check_feature_version(state, path)
        if self.cache_identity and state.get("cache_identity") not in (None, "", self.cache_identity):
            raise KellyError(f"{path}: trained on another cache ({state['cache_identity']}, now "
                             f"{self.cache_identity}); resume needs the same cache, or train again without --resume")
        checkpoints.load_weights(self.model, state["model_state"], path)
        self.optimizer.load_state_dict(state["optimizer_state"])
        if self.scheduler is not None and state.get("scheduler_state"):
            self.scheduler.load_state_dict(state["scheduler_state"])
        best_path = checkpoints.checkpoint_path(self.output, self.key, "best")
        best_weights = None
        if self.stopper.restore_best_weights and state["early_stopping"]["best_epoch"]:
            best_weights = checkpoints.load_checkpoint(best_path)["model_state"]
        self.stopper.load_state_dict(state["early_stopping"], best_weights)
        self.precision.load_state_dict(state.get("grad_scaler_state"))
        checkpoints.restore_rng_state(state["rng_state"], self.shuffle)
        self.history = list(state["history"])
        self.epoch = self.resumed_epochs = int(state["epoch"])

    def step_scheduler(self, val_loss: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss)
        elif self.scheduler is not None:
            self.scheduler.step()

    def checkpoint(self) -> dict:
        best = self.stopper.best
        extra = self.model.checkpoint_extra() if hasattr(self.model, "checkpoint_extra") else {}
        return extra | {
            "format": checkpoints.FORMAT, "network": self.key, "network_name": self.model.name,
            "model_state": checkpoints.cpu_state(self.model.state_dict()),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.epoch, "history": list(self.history),
            "rng_state": checkpoints.rng_state(self.shuffle),
            "grad_scaler_state": self.precision.state_dict(), "processes": self.world.size,
            "early_stopping": self.stopper.state_dict(),
            "feature_version": FEATURE_VERSION, "cache_identity": self.cache_identity,
            "config": asdict(self.config), "best_val_loss": best,
            "metrics": {"loss": LOSS[self.key], "metric": METRIC[self.key][0], "last": self.history[-1],
                        "best_epoch": self.stopper.best_epoch, "baseline": self.baseline,
                        "data": dict(self.data.counts)},
        }

    def save(self, kind: str) -> Path:
        return checkpoints.save_checkpoint(checkpoints.checkpoint_path(self.output, self.key, kind), self.checkpoint())

    def write_history(self) -> None:
        from train.history import write_history

        write_history(self.output, self.key, self.history, network_name=self.model.name, loss=LOSS[self.key],
                      metric=METRIC[self.key][0], baseline=self.baseline,
                      settings=dict(asdict(self.config), processes=self.world.size, precision=self.precision.name))

    @contextmanager
    def faults(self, epoch: int):
        """Training steps' failures as one line: a batch that does not fit in memory, a lost peer."""
        try:
            yield
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise self.out_of_memory(epoch, exc) from None
        except RuntimeError as exc:
            text = str(exc).lower()
            if any(sign in text for sign in ("out of memory", "can't allocate", "not enough memory")):
                raise self.out_of_memory(epoch, exc) from None
            if self.world.size > 1:
                raise lost_peer(exc, self.world, self.model.name) from None
            raise

    def out_of_memory(self, epoch: int, exc: BaseException) -> KellyError:
        kept = (f"the last good checkpoint is {checkpoints.checkpoint_path(self.output, self.key, 'latest')} "
                f"(epoch {self.epoch})" if self.epoch else "no checkpoint was written")
        return KellyError(f"{self.model.name}: a batch of {self.config.batch_size} does not fit in the memory of "
                          f"{self.device} in epoch {epoch} ({str(exc).splitlines()[0][:120]}); {kept}; "
                          "lower --batch-size (or --memory-budget-mb)")

    def check_finite(self, value: float, epoch: int, batches: int, what: str = "training") -> None:
        if math.isfinite(value):
            return
        latest = checkpoints.checkpoint_path(self.output, self.key, "latest")
        kept = (f"the last good checkpoint is {latest} (epoch {self.epoch})" if self.epoch
                else "no checkpoint was written")
        raise TrainingDiverged(f"{self.model.name}: the {what} loss became {value} in epoch {epoch} "
                               f"(after {batches} batches); training of this network stopped; {kept}. "
                               f"Try a lower learning rate or check the cache for extreme values.")


def validate(key: str, model: KellyNetwork, data: NetworkData, device, *, carry_state: bool = False
             ) -> tuple[float, float]:
    """(mean loss per real step, metric) over the validation split; with `carry_state` the LSTM
    state runs on through each whole piece (as the plugin runs it), else it starts from zeros at
    every sequence."""
    model.eval()
    total = weight = 0.0
    metric = MetricSum(key)
    batch = max(1, VALIDATION_ROWS // (data.sequence_length or 1))
    state = None
    with torch.no_grad():
        for x, y, mask, reset, count in data.steps(VALIDATION, device, batch, carry_state=carry_state):
            loss, out, state = loss_sum(key, model, x, y, mask, carried(state, reset))
            total, weight = total + loss.item(), weight + count
            metric.add(out, y, mask)
    return total / weight, metric.value()


def baseline(key: str, data: NetworkData, device) -> dict:
    """Loss and metric on validation of the constant prediction: the training mean (harmony: the prior).

    Both are accumulated batch by batch, so memory stays at one batch whatever the validation size."""
    prediction = torch.as_tensor(data.target_mean, device=device)
    total = weight = 0.0
    metric = MetricSum(key)
    for x, y, mask in data.batches(VALIDATION, device, max(1, VALIDATION_ROWS // (data.sequence_length or 1))):
        n = mask.sum().item() if mask is not None else len(x)
        total, weight = total + constant_loss(key, prediction, y, mask).item() * n, weight + n
        add_constant(metric, prediction, y, mask)
    return {"loss": total / weight, "metric": metric.value()}


def make_scheduler(optimizer: torch.optim.Optimizer, config: NetworkConfig):
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "plateau":
        patience = max(1, config.early_stopping_patience // 2)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=patience)
    return None


def resolve_device(name: str) -> torch.device:
    """"auto" picks cuda, then mps, then cpu; a named device that is not there is a KellyError."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise KellyError(f"--device {name}: not available on this machine (use cpu or auto)")
    return torch.device(name)


def progress_bar(name: str, epoch: int, epochs: int, total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name} {epoch}/{epochs}", unit="sample", leave=False, disable=not enabled,
                dynamic_ncols=True)
