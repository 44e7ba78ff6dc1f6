"""Training settings: their defaults, the JSON config file, and which value wins.

Precedence, lowest first: the defaults below, the config file's "training" section, its
"models" section for one network, and the command line (a flag given there always wins).

The config file has the older guides' structure::

    {
      "training": {"epochs": 50, "batch_size": 64, "learning_rate": 0.001, ...},
      "models":   {"emotion": {"learning_rate": 0.0005}, "HarmonyPredictor": {"epochs": 80}},
      "datasets": {"deam": "datasets/deam", "maestro": "datasets/maestro", ...}
    }

Batch size and learning rate have per-network defaults (`NETWORK_DEFAULTS`, below the general
defaults and above everything else): the dense networks train at large batches with the learning
rate scaled up with the batch, which the held-out loss per wall-second measured here favours
(bench/train_throughput.py, bench/batch_quality.py).

Networks are named by cache key ("emotion"), class name ("EmotionRecognizer") or its snake case
("emotion_recognizer"). An unknown key or a value of the wrong type is a KellyError naming the
file and the key.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import KellyError
from preprocess.features.spec import NETWORKS, SOURCES, TRAINED_NETWORKS

#: cache key -> plugin class name (train.models.NETWORKS holds the classes; this needs no torch import)
NETWORK_NAMES = {key: network.class_name for key, network in NETWORKS.items()}
#: every network `kelly train` trains: the plugin's five, then the EmotionLabeller (spec.LABELLER_KEY),
#: which the plugin does not run
TRAINED_NAMES = {key: network.class_name for key, network in TRAINED_NETWORKS.items()}
LR_SCHEDULES = ("none", "cosine", "plateau")
DEVICES = ("auto", "cpu", "cuda", "mps")
#: auto: bf16 on a CUDA device that supports it, else fp16 with a gradient scaler; off elsewhere
MIXED_PRECISION = ("auto", "off", "bf16", "fp16")


@dataclass
class NetworkConfig:
    """Everything that decides how one network trains (stored in its checkpoints)."""

    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    validation_split: float = 0.2        # used only for a cache without validation rows; split by item
    early_stopping_patience: int = 10    # epochs without improvement; 0 turns early stopping off
    early_stopping_min_delta: float = 0.0
    early_stopping_mode: str = "min"     # on validation loss
    restore_best_weights: bool = True
    grad_clip: float = 1.0               # max gradient norm; 0 turns clipping off
    lr_schedule: str = "none"            # none | cosine (over `epochs`) | plateau (x0.5 after patience/2 flat epochs)
    sequence_length: int = 16            # windows per training sequence (LSTM networks)
    seed: int = 0
    device: str = "auto"
    memory_budget_mb: float = 2048.0     # a network's cache rows above this are streamed block by block
    carry_state: bool = True             # LSTM networks: the state runs on from chunk to chunk within a piece
    mixed_precision: str = "auto"        # auto | off | bf16 | fp16 (autocast on CUDA; auto is off on the CPU)
    threads: int = 1                     # torch's CPU threads per process (why 1: the note on threads below)

    def validate(self, where: str = "training settings") -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0.0 <= self.validation_split < 1.0, "validation_split must be in [0, 1)"),
            (self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0"),
            (self.early_stopping_min_delta >= 0, "early_stopping_min_delta must be >= 0"),
            (self.early_stopping_mode in ("min", "max"), "early_stopping_mode must be 'min' or 'max'"),
            (self.grad_clip >= 0, "grad_clip must be >= 0"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}"),
            (self.sequence_length >= 1, "sequence_length must be >= 1"),
            (self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}"),
            (self.memory_budget_mb > 0, "memory_budget_mb must be > 0"),
            (self.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}"),
            (self.threads >= 1, "threads must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise KellyError(f"{where}: {message}")


#: threads: why one by default: these networks are small, and when other work shares the cores, torch's
#: intra-op threads wait for each other's core. Measured (bench/train_throughput.py, DynamicsEngine at
#: batch 256 on 2 cores with a load average near 10): 1 thread 13.8k rows/s, 2 threads 0.49k rows/s.
#: On a machine of one's own, --threads N (N up to the physical cores) can be faster for large batches.
#: per-network defaults over NetworkConfig's: batch size, learning rate (and for harmony weight
#: decay) chosen together, by the held-out loss reached per CPU-second (bench/batch_quality.py), on
#: the sample cache and on one of ten times its MIDI (`--make-large`: 2,000 Lakh-like songs, 1,000
#: MAESTRO-like pieces; 75k harmony rows, 22k dynamics rows), against batch 64 at lr 1e-3. Best
#: validation loss within 1/8, 1/4, 1/2 and all of the CPU budget (60 s large, 20 s sample):
#:   harmony, large   64/1e-3        1.4765 1.3668 1.3668 1.3668
#:                    1024/2e-3      1.3955 1.3626 1.3626 1.3626
#:                    1024/2e-3/wd   1.4373 1.3788 1.3532 1.3455   (weight decay 1e-3: chosen)
#:                    1024/8e-3      1.4132 at every mark (a rate scaled up with the batch overfits sooner)
#:   harmony, sample  64/1e-3 2.0526, 1024/2e-3 2.0685, 1024/2e-3/wd 2.0499 (each from the first mark:
#:                    the sample's 9.8k rows are seen again every 0.1 s)
#:   dynamics  64/1e-3 0.01556, 1024/2e-3 0.01545 (large); 0.01418, 0.01388 (sample)
#:   groove    64/1e-3 0.07235, 1024/4e-3 0.07236 (large); 0.08913, 0.08665 (sample)
#: Full-scale epochs are 3x or more faster at 1024 (bench/train_throughput.py). The LSTM networks
#: keep 64: on the CPU their speed is flat in the batch size.
NETWORK_DEFAULTS: dict[str, dict[str, Any]] = {
    "harmony": {"batch_size": 1024, "learning_rate": 2e-3, "weight_decay": 1e-3},
    "dynamics": {"batch_size": 1024, "learning_rate": 2e-3},
    "groove": {"batch_size": 1024, "learning_rate": 4e-3},
    # the labeller trains on ~600 whole clips (one sample each), not on windows by the thousand
    # (train.labeller_fit's settings)
    "labeller": {"epochs": 40, "batch_size": 32, "learning_rate": 3e-3, "weight_decay": 1e-4,
                 "early_stopping_patience": 8},
}

TRAINING_KEYS = {f.name: f.type for f in dataclasses.fields(NetworkConfig)}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass
class TrainOptions:
    """One `kelly train` run. Training settings left None fall back to the config file, then the defaults."""

    cache_dir: Path = Path("cache")
    output: Path = Path(".")
    models: list[str] | None = None          # keys or class names; None = all five
    resume: str | None = None                # a network name, or "all"
    config_file: Path | None = None
    write_history: bool = True
    write_plots: bool = True
    progress: bool = True
    max_steps: int | None = None             # stop each network after this many optimizer steps (smoke runs, timing)
    overrides: dict[str, Any] = field(default_factory=dict)   # NetworkConfig fields given on the command line


@dataclass
class FileConfig:
    """A parsed config file: training defaults, per-network overrides, dataset paths."""

    path: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)   # keyed by cache key
    datasets: dict[str, str] = field(default_factory=dict)


def network_key(name: str) -> str:
    """"emotion", "EmotionRecognizer" or "emotion_recognizer" -> "emotion" (the labeller too:
    "labeller", "EmotionLabeller"); ValueError when unknown."""
    for key, class_name in TRAINED_NAMES.items():
        if name in (key, class_name, _snake(class_name)) or name.lower() in (key, class_name.lower()):
            return key
    known = ", ".join(f"{k} ({c})" for k, c in TRAINED_NAMES.items())
    raise ValueError(f"unknown network {name!r}; known: {known}")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def check_value(key: str, value: Any, where: str) -> Any:
    """The value of training setting `key`, type-checked (an int is accepted for a float)."""
    if key not in TRAINING_KEYS:
        raise KellyError(f"{where}: unknown key {key!r}; known: {', '.join(TRAINING_KEYS)}")
    expected = _TYPES[TRAINING_KEYS[key]]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise KellyError(f"{where}: key {key!r} must be {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def load_config_file(path: str | Path) -> FileConfig:
    """Read and check a JSON config file (see the module docstring for its structure)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KellyError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KellyError(f"{path}: cannot read config file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise KellyError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(raw, dict):
        raise KellyError(f"{path}: the top level must be an object with 'training', 'models', 'datasets'")
    unknown = set(raw) - {"training", "models", "datasets"}
    if unknown:
        raise KellyError(f"{path}: unknown key {sorted(unknown)[0]!r}; known: training, models, datasets")
    config = FileConfig(path=path)
    training = _section(raw, "training", path)
    config.training = {k: check_value(k, v, f"{path}: training") for k, v in training.items()}
    for name, overrides in _section(raw, "models", path).items():
        try:
            key = network_key(name)
        except ValueError as exc:
            raise KellyError(f"{path}: models: {exc}") from None
        if not isinstance(overrides, dict):
            raise KellyError(f"{path}: models: key {name!r} must be an object of training settings")
        config.models[key] = {k: check_value(k, v, f"{path}: models.{name}") for k, v in overrides.items()}
    for source, folder in _section(raw, "datasets", path).items():
        if source not in SOURCES:
            raise KellyError(f"{path}: datasets: unknown key {source!r}; known: {', '.join(SOURCES)}")
        if not isinstance(folder, str):
            raise KellyError(f"{path}: datasets: key {source!r} must be a path (string), got {type(folder).__name__}")
        config.datasets[source] = folder
    for key, overrides in [("training", config.training), *config.models.items()]:
        resolved = NetworkConfig(**{**config.training, **overrides})
        resolved.validate(f"{path}: {key}")
    return config


def _section(raw: dict, name: str, path: Path) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise KellyError(f"{path}: key {name!r} must be an object, got {type(value).__name__}")
    return value


def resolve(key: str, file_config: FileConfig | None, overrides: dict[str, Any]) -> NetworkConfig:
    """The settings for network `key`: defaults < the network's own defaults (NETWORK_DEFAULTS) <
    file "training" < file "models"[key] < command line."""
    file_config = file_config or FileConfig()
    given = {k: check_value(k, v, "command line") for k, v in overrides.items() if v is not None}
    config = NetworkConfig(**{**NETWORK_DEFAULTS.get(key, {}), **file_config.training,
                              **file_config.models.get(key, {}), **given})
    config.validate(f"{TRAINED_NAMES[key]} settings")
    return config
