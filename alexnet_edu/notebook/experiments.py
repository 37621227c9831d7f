"""The paper's design choices, tested small: one change at a time, the same budget for each.

ReLU over tanh (§3.1, Figure 1: `run_speed` on `SmallCNN`); LRN (§3.3), overlapping pooling
(§3.4) and dropout (§4.2): `run_ablations`, one AlexNet per variant, one config, one fixed rate,
judged at the last epoch by `claims_table`. A run that blew up (`diverged`) is not evidence.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.stats import binomtest
from scipy.stats import t as student_t
from torch import nn

from ..device import pick_device
from ..evaluation import evaluate
from ..model import feature_map_size
from ..train import build_model, fit
from ..transforms import BatchTransform
from .viz import subplots

__all__ = ["Ablation", "PAPER_ABLATIONS", "RELU_VS_TANH", "SmallCNN", "variants",
           "run_ablations", "run_speed", "speed_rows", "epochs_to_error", "overfitting_gap",
           "val_error", "diverged", "mcnemar", "check_pooling_fair",
           "run_folder_name", "claims_table", "claims_markdown", "plot_ablation", "plot_speed",
           "fixed_schedule", "run_seeds", "seeds_table", "seeds_markdown"]

History = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Ablation:
    """One claim of the paper: the paper's setting against one alternative, judged by `measure`:
    "speed" (epochs to `target_error` training error), "val_error" or "gap" (last epoch)."""

    name: str
    claim: str
    paper: tuple[str, dict] = ("paper", {})
    alternative: tuple[str, dict] = ("alternative", {})
    measure: str = "val_error"
    target_error: float = 0.25
    section: str = ""
    effect: str = ""            # the size of the effect the paper reports, in its words

    def __post_init__(self):
        if self.measure not in ("speed", "val_error", "gap"):
            raise ValueError(f"measure must be 'speed', 'val_error' or 'gap', got {self.measure!r}")


# Figure 1's claim, measured with `run_speed` on `SmallCNN` (not on AlexNet: see the module doc)
RELU_VS_TANH = Ablation(
    "activation", "ReLU reaches 25 % training error ~6x sooner than tanh",
    ("ReLU", {"activation": "relu"}), ("tanh", {"activation": "tanh"}), measure="speed",
    section="§3.1, Figure 1",
    effect="6x fewer epochs to 25 % training error (CIFAR-10, a four-layer CNN, lr per arm)")

# the claims measured on AlexNet itself, with `run_ablations`
PAPER_ABLATIONS: tuple[Ablation, ...] = (
    Ablation("lrn", "LRN lowers the top-1 error (by 1.4 points on ImageNet)",
             ("LRN", {"lrn": True}), ("no LRN", {"lrn": False}), section="§3.3",
             effect="+1.4 points of top-1 error (ImageNet test set)"),
    Ablation("pooling", "Overlapping pooling (3/2) lowers the top-1 error (by 0.4 points) vs 2/2",
             ("overlapping 3/2", {"overlapping_pool": True}),
             ("non-overlapping 2/2", {"overlapping_pool": False}), section="§3.4",
             effect="+0.4 points of top-1 error (ImageNet test set)"),
    Ablation("dropout", "Without dropout the network overfits more (larger train-val gap)",
             ("dropout 0.5", {"dropout": 0.5}), ("no dropout", {"dropout": 0.0}),
             measure="gap", section="§4.2", effect="\"substantial overfitting\" without it"),
)


class SmallCNN(nn.Sequential):
    """Figure 1's "four-layer convolutional neural network" (§3.1), cuda-convnet's CIFAR-10
    layers-80sec.cfg: 3 x (5x5 conv, activation, 3x3/2 pool), a linear layer, no regularization."""

    def __init__(self, activation: str = "relu", num_classes: int = 10, in_channels: int = 1,
                 image_size: int = 28) -> None:
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        side = (image_size - 7) // 8   # (s - 3) // 2 + 1 thrice: the 3x3/2 poolings; convs keep s
        if side < 1:
            raise ValueError(f"SmallCNN needs inputs of at least 15 px, got {image_size}")
        layers = [layer for c_in, c_out in ((in_channels, 32), (32, 32), (32, 64)) for layer in
                  (nn.Conv2d(c_in, c_out, 5, padding=2), acts[activation](), nn.MaxPool2d(3, 2))]
        super().__init__(*layers, nn.Flatten(), nn.Linear(64 * side * side, num_classes))
        # what train.fit reads (input size, channels, classes), as AlexNet.config
        self.config = {"num_classes": num_classes, "in_channels": in_channels,
                       "image_size": image_size, "activation": activation}


def fixed_schedule(config):
    """`config` with one learning rate for the whole run (a patience as long as the run): the
    plateau rule (§5) would cut each arm's rate at another epoch."""
    return (dataclasses.replace(config, patience=config.epochs) if config.schedule == "plateau"
            else config)


def variants(ablations: Sequence[Ablation] = PAPER_ABLATIONS) -> dict[str, dict]:
    """{label: model overrides} for every distinct run the ablations need; the paper's settings
    all share one run, "paper"."""
    runs: dict[str, dict] = {"paper": {}}
    for ab in ablations:
        for label, overrides in (ab.paper, ab.alternative):
            runs.setdefault(_run_key(label, overrides), dict(overrides))
    return runs


# the "paper" run: the paper's layers with train.build_model's kaiming initialization
_PAPER_RUN = {"activation": "relu", "lrn": True, "overlapping_pool": True, "dropout": 0.5,
              "init": "kaiming"}


def _run_key(label: str, overrides: Mapping[str, Any]) -> str:
    return "paper" if all(_PAPER_RUN.get(k) == v for k, v in overrides.items()) else label


def _histories_of(ab: Ablation, histories: Mapping[str, History]) -> tuple[History, History]:
    if ab.measure == "speed":   # a ratio over seeds of SmallCNN runs, not two AlexNet runs
        raise ValueError(f"{ab.name!r} is a speed claim: measure it with run_speed, speed_rows "
                         "and plot_speed")
    found = []
    for label, overrides in (ab.paper, ab.alternative):
        key = _run_key(label, overrides)
        if key not in histories:
            raise KeyError(f"no run {key!r} for the {ab.name!r} ablation ({label}: {overrides}); "
                           f"the runs are {', '.join(map(repr, histories))}: train it with "
                           f"run_ablations(..., runs={{{key!r}: {overrides}}}) and add its "
                           f"history to the dict")
        found.append(histories[key])
    return found[0], found[1]


def run_folder_name(label: str) -> str:
    """A label as a portable folder name: "N(0, 0.01)" -> "N-0-0.01"."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-.") or "run"


def _train_one(model: nn.Module, splits, config, folder: Path, device, resume: bool,
               probe, keep_checkpoints: bool) -> list[dict]:
    """`fit` one arm into `folder`; with a `probe` (training images) also record the eval-mode
    accuracy on it, and at the last epoch which probe and validation images were right."""
    plain = BatchTransform(model.config["image_size"], tuple(splits.mean), tuple(splits.std),
                           train=False, out_channels=model.config["in_channels"])
    device = torch.device(device) if device is not None else pick_device(verbose=False)
    # the untrained model's loss: a first epoch far above it blew up (see `diverged`)
    initial_loss = evaluate(model.to(device), splits.val, plain, device)["loss"]

    def right(images) -> list[int]:   # 1 for each image classified right, 0 if wrong, in order
        result = evaluate(model, images, plain, device)
        return (result["predictions"] == result["targets"]).int().tolist()

    def train_probe(history: list[dict]) -> None:
        if "train_acc_eval" not in history[-1]:
            history[-1]["train_acc_eval"] = evaluate(model, probe, plain, device)["top1"]

    try:
        history = fit(model, splits, config, run_dir=folder, device=device, resume=resume,
                      on_epoch_end=train_probe if probe is not None else None)
    except FloatingPointError as err:   # a non-finite loss: the run diverged
        history = [{"epoch": 1, "train_loss": math.nan, "train_acc": 0.0, "val_loss": math.nan,
                    "val_acc": 0.0, "diverged": str(err)}]
    else:
        if history:
            history[0].setdefault("initial_loss", initial_loss)
        if history and probe is not None and len(history) >= config.epochs:
            train_probe(history)
            history[-1].update(train_correct=right(probe), val_correct=right(splits.val))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.json").write_text(json.dumps(history, indent=1))   # + what fit lacks
    for checkpoint in () if keep_checkpoints else folder.glob("*.pt"):
        checkpoint.unlink()
    return history


def run_ablations(splits, config, image_size: int, run_root: str | Path,
                  runs: Mapping[str, dict] | None = None, device: str | torch.device | None = None,
                  base: Mapping[str, Any] | None = None, resume: bool = False,
                  keep_checkpoints: bool = True) -> dict[str, list[dict]]:
    """Train one AlexNet per `runs` entry ({label: overrides}, default `variants()`; `base` for
    all) into ``run_root/<label>``: same `fixed_schedule(config)`, data and initial weights;
    `resume` continues after Ctrl-C. Returns {label: history}, each epoch with ``train_acc_eval``
    (eval mode, on a training subset the size of val), the last with ``val_correct`` and
    ``train_correct``; a run that went NaN is one ``diverged`` row."""
    runs = variants() if runs is None else runs
    config = fixed_schedule(config)
    if any("overlapping_pool" in overrides for overrides in runs.values()):
        check_pooling_fair(image_size, (base or {}).get("variant", "paper"))
    probe = splits.train.subset(torch.arange(min(len(splits.train), len(splits.val))))
    histories: dict[str, list[dict]] = {}
    for label, overrides in runs.items():
        # the same initial weights wherever the layers agree
        model = build_model(splits, image_size=image_size, seed=config.seed,
                            **{**dict(base or {}), **overrides})
        print(f"--- {label}: {', '.join(f'{k}={v!r}' for k, v in overrides.items()) or 'paper'}")
        histories[label] = _train_one(model, splits, config, Path(run_root, run_folder_name(label)),
                                      device, resume, probe, keep_checkpoints)
    return histories


def run_seeds(splits, config, image_size: int, run_root: str | Path, seeds: int,
              **kwargs: Any) -> list[dict[str, list[dict]]]:
    """`run_ablations` once per seed 0 .. seeds-1, into ``run_root/seed-<s>``: the spread
    between seeds is the noise one run cannot show."""
    return [run_ablations(splits, dataclasses.replace(config, seed=seed), image_size,
                          Path(run_root) / f"seed-{seed}", **kwargs) for seed in range(seeds)]


def run_speed(splits, config, run_root: str | Path, lrs: Sequence[float], seeds: int,
              device: str | torch.device | None = None, ablation: Ablation = RELU_VS_TANH,
              keep_checkpoints: bool = False) -> dict[str, Any]:
    """Figure 1's experiment (§3.1), small: a `SmallCNN` per arm, no weight decay or
    augmentation, each arm's rate "chosen independently" (seed 0 tries every rate in `lrs`; the
    fewest epochs to the target wins), then repeated for seeds 1 .. seeds-1. Returns
    {"lr": {label: rate}, "tuning": {label: {rate: history}}, "per_seed": [{label: history}]}."""
    config = fixed_schedule(dataclasses.replace(config, weight_decay=0.0, augment=False))
    tuning, chosen = {}, {}   # {label: {rate: history}}, {label: rate}
    per_seed: list[dict[str, list[dict]]] = [{} for _ in range(seeds)]

    def train_arm(label: str, overrides: dict, lr: float, seed: int) -> list[dict]:
        torch.manual_seed(seed)   # the same initial weights in both arms
        model = SmallCNN(num_classes=len(splits.classes), in_channels=splits.in_channels,
                         image_size=int(splits.image_size), **overrides)   # native: 28 px
        print(f"--- {label}, lr {lr:g}, seed {seed}")
        folder = Path(run_root) / f"seed-{seed}" / run_folder_name(f"{label}-lr-{lr:g}")
        return _train_one(model, splits, dataclasses.replace(config, lr=lr, seed=seed), folder,
                          device, False, None, keep_checkpoints)

    for label, overrides in (ablation.paper, ablation.alternative):
        tuning[label] = {lr: train_arm(label, overrides, lr, 0) for lr in lrs}
        chosen[label] = min(lrs, key=lambda r: _speed_key(tuning[label][r], ablation.target_error))
        per_seed[0][label] = tuning[label][chosen[label]]
        for seed in range(1, seeds):
            per_seed[seed][label] = train_arm(label, overrides, chosen[label], seed)
    return {"lr": chosen, "tuning": tuning, "per_seed": per_seed}


def _speed_key(history: History, target: float) -> tuple[float, float]:
    reached = epochs_to_error(history, target) if not diverged(history) else None
    last = 1.0 - float(history[-1]["train_acc"]) if history else 1.0
    return (math.inf if reached is None else reached, last if math.isfinite(last) else 1.0)


def speed_rows(result: Mapping[str, Any], ablation: Ablation = RELU_VS_TANH,
               num_classes: int = 10) -> list[dict]:
    """The speed claim's row from `run_speed`'s result: the epochs to the target per seed, and
    the ratio alternative / paper with a 95 % interval (Student's t over seeds of the log of
    each seed's ratio bounds: a crossing at whole epoch T lies in (T-1, T])."""
    a_label, b_label = ablation.paper[0], ablation.alternative[0]
    pairs, notes = [], []   # (paper's epochs to the target, alternative's) per seed kept
    for seed, runs in enumerate(result["per_seed"]):
        if bad := [label for label in (a_label, b_label) if diverged(runs[label], num_classes)]:
            notes.append(f"seed {seed}: {', '.join(bad)} diverged")
        else:
            pairs.append(tuple(epochs_to_error(runs[label], ablation.target_error)
                               for label in (a_label, b_label)))
    epochs = len(result["per_seed"][0][a_label])
    shown = [", ".join("–" if t is None else str(t) for t in arm)
             for arm in zip(*pairs)] or ["", ""]
    lrs = ", ".join(f"{label} {lr:g}" for label, lr in result["lr"].items())
    row = _row(ablation, f"epochs to {ablation.target_error:.0%} training error (lr per arm: "
               f"{lrs})", f"{a_label}: {shown[0]}", f"{b_label}: {shown[1]}", epochs)
    return [{**row, "ratio": None, "interval": None,
             **_speed_verdict(pairs, notes, ablation.target_error, epochs)}]


def _speed_verdict(pairs: list[tuple], notes: list[str], target: float, epochs: int) -> dict:
    missing = [i for i, (ta, tb) in enumerate(pairs) if ta is None or tb is None]
    if not pairs:
        return {"verdict": "diverged", "why": "; ".join(notes) + ": not evidence"}
    if missing:
        return {"verdict": "undecided", "why": f"not every run reached {target:.0%} in {epochs} "
                f"epochs (– in seeds {', '.join(map(str, missing))}): train longer"}
    ratio = math.exp(sum(math.log(tb / ta) for ta, tb in pairs) / len(pairs))
    low = [(tb - 1) / ta for ta, tb in pairs]
    high = [tb / (ta - 1) if ta > 1 else math.inf for ta, tb in pairs]
    if len(pairs) < 2:
        return {"ratio": ratio, "verdict": "one seed", "why": f"{ratio:.1f}x in one seed (between "
                f"{low[0]:.1f}x and {high[0]:.1f}x from whole epochs): no spread over seeds"}
    lo, hi = _log_interval(low, "low"), _log_interval(high, "high")
    why = (f"{ratio:.1f}x sooner (geometric mean of {len(pairs)} seeds; 95 % interval {lo:.2f}x "
           f"to {hi:.2f}x, whole epochs included)" + "".join(f"; {note}" for note in notes))
    return {"ratio": ratio, "interval": (lo, hi), "why": why,
            "verdict": "held" if lo > 1 else "did not hold" if hi < 1 else "undecided"}


def _t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample sd and the half width of Student's t 95 % interval of the mean."""
    k, mean, sd = len(values), statistics.fmean(values), statistics.stdev(values)
    return mean, sd, float(student_t.ppf(0.975, k - 1)) * sd / math.sqrt(k)


def _log_interval(ratios: Sequence[float], end: str) -> float:
    """One end of the t interval of the mean of log(ratios) (over seeds), as a ratio."""
    if any(math.isinf(r) for r in ratios):
        return math.inf
    if any(r <= 0 for r in ratios):
        return 0.0
    mean, _, half = _t_interval([math.log(r) for r in ratios])
    return math.exp(mean - half if end == "low" else mean + half)


def diverged(history: History, num_classes: int = 10) -> str | None:
    """Why a run counts as diverged, or None: a NaN or infinite loss, or a first-epoch training
    loss above both ln(num_classes) and the untrained ``initial_loss`` by a tenth of ln(classes)."""
    if not history:
        return None
    if "diverged" in history[-1]:
        return str(history[-1]["diverged"])
    losses = [float(r[k]) for r in history for k in ("train_loss", "val_loss") if k in r]
    if any(not math.isfinite(x) for x in losses):
        return "its loss became NaN or infinite"
    first, start = (float(history[0].get(k, 0.0)) for k in ("train_loss", "initial_loss"))
    chance = math.log(num_classes)
    # a slow learner can average a little above its start in epoch 1; a blow-up climbs far
    margin = 0.1 * chance
    if first > max(chance, start) + margin:
        return (f"its first-epoch training loss {first:.2f} is above ln {num_classes} = "
                f"{chance:.2f}, a uniform guess's"
                + (f", and above its loss before training, {start:.2f}" if start else "")
                + f", by more than {margin:.2f} (a tenth of ln {num_classes}): it blew up")
    return None


def _effect(ab: Ablation, histories: Mapping[str, History], num_classes: int) -> float | None:
    """How many points better the paper's setting did in one seed; None when a run diverged."""
    a, b = _histories_of(ab, histories)
    if diverged(a, num_classes) or diverged(b, num_classes):
        return None
    measure = val_error if ab.measure == "val_error" else overfitting_gap
    return 100 * (measure(b) - measure(a))


def seeds_table(per_seed: Sequence[Mapping[str, History]],
                ablations: Sequence[Ablation] = PAPER_ABLATIONS,
                num_classes: int = 10) -> list[dict]:
    """One row per ablation over `run_seeds`' runs: the paper setting's advantage per seed
    (None where a run diverged), mean ± sd, and a verdict only when Student's t 95 % interval
    of the mean excludes zero ("one seed": no spread)."""
    rows = []
    for ab in ablations:
        effects = [_effect(ab, histories, num_classes) for histories in per_seed]
        kept = [e for e in effects if e is not None]
        row = {"ablation": ab.name, "claim": f"{ab.claim} ({ab.section})", "paper": ab.effect,
               "effects": effects, "mean": kept[0] if kept else None, "sd": None,
               "unit": "points", "verdict": "diverged" if not kept else "one seed"}
        if len(kept) > 1:
            row["mean"], row["sd"], half_width = _t_interval(kept)
            row["verdict"] = ("undecided" if abs(row["mean"]) <= half_width else
                              "held" if row["mean"] > 0 else "did not hold")
        rows.append(row)
    return rows


def seeds_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """`seeds_table` as Markdown; a seed whose run diverged shows "diverged", not a number."""
    def cells(r: Mapping[str, Any]) -> tuple[str, ...]:
        each = ", ".join("diverged" if e is None else f"{e:+.1f}" for e in r["effects"])
        spread = ("–" if r["mean"] is None else f"{r['mean']:+.1f}"
                  + (f" ± {r['sd']:.1f}" if r["sd"] is not None else ""))
        return r["claim"], r["paper"], f"{each} {r['unit']}", spread, f"**{r['verdict']}**"

    return _markdown(("claim", "the paper's effect", "ours, per seed (last epoch)", "mean ± sd",
                      "verdict"), map(cells, rows))


def _markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def epochs_to_error(history: History, target: float = 0.25) -> int | None:
    """The first epoch whose training error is at most `target`, or None (Figure 1's measure)."""
    return next((int(row.get("epoch", i + 1)) for i, row in enumerate(history)
                 if 1.0 - float(row["train_acc"]) <= target), None)


def overfitting_gap(history: History) -> float:
    """Training minus validation accuracy at the last epoch, both in eval mode: the running
    ``train_acc`` has dropout on, which would flatter dropout by construction."""
    if not history:
        raise ValueError("the history is empty: train at least one epoch")
    last = history[-1]
    if "train_acc_eval" not in last:
        raise ValueError("the history has no eval-mode training accuracy (train_acc_eval): "
                         "run it through run_ablations")
    return float(last["train_acc_eval"]) - float(last["val_acc"])


def check_pooling_fair(image_size: int, variant: str = "paper") -> None:
    """Raise a ValueError when 3/2 and 2/2 pooling give pool5 maps of different sides at
    `image_size` (fc6 would change too: two changes, not one)."""
    overlapping = feature_map_size(image_size, variant, 3)
    plain = feature_map_size(image_size, variant, 2)
    if overlapping != plain:
        fair = [s for s in range(63, 260) if _pool5_sides_agree(s, variant)]
        raise ValueError(f"at {image_size} px pool5 is {overlapping}x{overlapping} with "
                         f"overlapping pooling but {plain}x{plain} with 2/2 pooling, so fc6 "
                         f"would change too; use a size where they agree, e.g. "
                         f"{', '.join(map(str, fair[:12]))}, ...")


def _pool5_sides_agree(size: int, variant: str) -> bool:
    try:
        return feature_map_size(size, variant, 3) == feature_map_size(size, variant, 2)
    except ValueError:
        return False


def val_error(history: History) -> float:
    """1 - the validation accuracy at the last epoch: one fixed epoch for every arm."""
    if not history:
        raise ValueError("the history is empty: train at least one epoch")
    return 1.0 - float(history[-1]["val_acc"])


def _noise(error: float, n_val: int) -> float:
    """Two standard errors of the difference of two independent error rates on n_val images."""
    p = min(max(error, 1.0 / max(n_val, 1)), 1 - 1.0 / max(n_val, 1))
    return 2 * math.sqrt(2 * p * (1 - p) / max(n_val, 1))


def mcnemar(correct_a: Sequence[int], correct_b: Sequence[int]) -> dict[str, float]:
    """McNemar's exact test on the same images: ``p`` of the split ``only_a``:``only_b`` against
    50:50; ``diff``: b's error minus a's, ``half_width``: 1.96 paired SE."""
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError(f"mcnemar needs two equally long, non-empty lists of 0/1, got "
                         f"{len(correct_a)} and {len(correct_b)}")
    n = len(correct_a)
    only_a = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    only_b = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    discordant = only_a + only_b
    p = binomtest(min(only_a, only_b), discordant, 0.5).pvalue if discordant else 1.0
    se = math.sqrt(max(discordant - (only_a - only_b) ** 2 / n, 0.0)) / n
    return {"only_a": only_a, "only_b": only_b, "n": n, "p": float(p),
            "diff": (only_a - only_b) / n, "half_width": 1.96 * se}


def _paired_se(a: Sequence[int], b: Sequence[int]) -> float:
    """Standard error of mean(b) - mean(a) over the same images."""
    d = [y - x for x, y in zip(a, b)]
    return statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else 0.0


def _val_error_row(ab: Ablation, a: History, b: History, n_val: int) -> tuple[str, str]:
    a_label = ab.paper[0]
    ea, eb = val_error(a), val_error(b)
    if "val_correct" in a[-1] and "val_correct" in b[-1]:
        test = mcnemar(a[-1]["val_correct"], b[-1]["val_correct"])
        detail = (f"{100 * test['diff']:+.1f} ± {100 * test['half_width']:.1f} points (95 %, "
                  f"paired on {test['n']} images); right only with {a_label}: {test['only_a']}, "
                  f"only without: {test['only_b']}; McNemar p = {test['p']:.2g}")
        if test["p"] >= 0.05:
            return "undecided", f"{detail}: within noise"
        return ("held" if ea < eb else "did not hold"), detail
    noise, diff = 100 * _noise((ea + eb) / 2, n_val), 100 * (eb - ea)   # unpaired, in points
    if abs(diff) <= noise:
        return "undecided", f"error difference {diff:+.1f} points is within noise (±{noise:.1f})"
    if ea < eb:
        return "held", f"{diff:.1f} points lower with {a_label}"
    return "did not hold", f"{-diff:.1f} points higher with {a_label}"


def _gap_row(ab: Ablation, a: History, b: History, n_val: int) -> tuple[str, str]:
    diff = overfitting_gap(b) - overfitting_gap(a)
    if all(k in h[-1] for h in (a, b) for k in ("val_correct", "train_correct")):   # paired
        se = math.hypot(_paired_se(a[-1]["train_correct"], b[-1]["train_correct"]),
                        _paired_se(a[-1]["val_correct"], b[-1]["val_correct"]))
        n_train = len(a[-1]["train_correct"])
        how = f"paired on {n_train} training and {len(a[-1]['val_correct'])} validation images"
    else:   # the four accuracies as independent
        rates = [float(h[-1][k]) for h in (a, b) for k in ("train_acc_eval", "val_acc")]
        se = math.sqrt(sum(p * (1 - p) for p in rates) / max(n_val, 1))
        how = f"unpaired, {n_val} images each"
    band = 1.96 * se
    detail = f"gap difference {100 * diff:+.1f} ± {100 * band:.1f} points (95 %, {how})"
    if abs(diff) <= band:
        return "undecided", f"{detail}: within noise"
    return ("held" if diff > 0 else "did not hold"), (
        f"{detail}: {'smaller' if diff > 0 else 'larger'} with {ab.paper[0]}")


def _row(ab: Ablation, measure: str, paper: str, alternative: str, epochs: int) -> dict:
    return {"ablation": ab.name, "claim": f"{ab.claim} ({ab.section})", "measure": measure,
            "paper": paper, "alternative": alternative, "verdict": "", "why": "", "epochs": epochs}


def claims_table(histories: Mapping[str, History], n_val: int,
                 ablations: Sequence[Ablation] = PAPER_ABLATIONS,
                 num_classes: int = 10) -> list[dict]:
    """One row per ablation at the last epoch: the two values, the verdict ("held", "did not
    hold", "undecided" or "diverged") and why (McNemar for error rates, a paired band for the
    gap; unpaired for n_val images without per-image results)."""
    return [_claim_row(ab, *_histories_of(ab, histories), n_val, num_classes)
            for ab in ablations]


def _claim_row(ab: Ablation, a: History, b: History, n_val: int, num_classes: int) -> dict:
    labels = (ab.paper[0], ab.alternative[0])
    blown = {label: why for label, h in zip(labels, (a, b)) if (why := diverged(h, num_classes))}
    if ab.measure == "val_error":
        what = f"validation error at epoch {len(a)} (the last)"
        shown = [f"{val_error(h):.1%}" for h in (a, b)]
    else:  # gap
        what = f"train - val accuracy at epoch {len(a)} (the last; both eval mode)"
        shown = [f"{overfitting_gap(h):+.1%}" if "train_acc_eval" in h[-1] else "–"
                 for h in (a, b)]
    row = _row(ab, what, *(f"{label}: {value}" for label, value in zip(labels, shown)), len(a))
    why = "; ".join(f"{label}: {reason}" for label, reason in blown.items())
    test = _val_error_row if ab.measure == "val_error" else _gap_row
    row["verdict"], row["why"] = (("diverged", f"{why}: not evidence for or against the claim")
                                  if blown else test(ab, a, b, n_val))
    return row


def claims_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The claims table as Markdown (display it with IPython.display.Markdown)."""
    return _markdown(("claim", "measure", "paper's choice", "alternative", "verdict", "why"),
                     ((r["claim"], r["measure"], r["paper"], r["alternative"],
                       f"**{r['verdict']}**", r["why"]) for r in rows))


def _epochs(rows: History) -> list[int]:
    return [int(r.get("epoch", i + 1)) for i, r in enumerate(rows)]


def _error(rows: History, key: str) -> list[float]:
    """1 - accuracy `key` per epoch, in %."""
    return [100 * (1 - float(r.get(key, math.nan))) for r in rows]


def _epoch_axes(ax, title: str, ylabel: str, percent: bool = True, **legend: Any) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
    if percent:
        ax.set_ylim(0, 100)   # the whole error scale: small differences look small
    ax.set(xlabel="epoch", ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(**legend)


def plot_ablation(ablation: Ablation, histories: Mapping[str, History],
                  n_val: int | None = None) -> Figure:
    """What `ablation`'s verdict uses per epoch: the paper's setting (solid), the other (dashed)."""
    runs = zip((ablation.paper[0], ablation.alternative[0]), _histories_of(ablation, histories))
    fig, axes = subplots(1, 2, figsize=(10, 3.4))
    images = f" ({n_val} images)" if n_val else ""
    for (label, rows), style in zip(runs, ("-o", "--s")):
        x = _epochs(rows)
        if ablation.measure == "gap":
            tr, va = _error(rows, "train_acc_eval"), _error(rows, "val_acc")
            axes[0].plot(x, tr, style, ms=4, label=f"{label}: training (eval mode)")
            axes[0].plot(x, va, style, ms=4, alpha=0.5, label=f"{label}: validation")
            axes[1].plot(x, [v - t for t, v in zip(tr, va)], style, ms=4, label=label)
        else:
            for ax, key in zip(axes, ("train_acc", "val_acc")):
                ax.plot(x, _error(rows, key), style, ms=4, label=label)
    if ablation.measure == "gap":
        axes[1].axhline(0, color="grey", lw=1)
        titles = [(f"eval-mode error: training probe and validation{images}", "error (%)"),
                  ("gap = train - val accuracy (points)", "train - val accuracy (points)")]
    else:
        titles = [("running training error (dropout, augmentation on)", "training error (%)"),
                  (f"validation error{images}; compared at the last epoch", "validation error (%)")]
    for ax, (title, ylabel) in zip(axes, titles):
        _epoch_axes(ax, title, ylabel, percent=ylabel.endswith("(%)"), fontsize=8)
    # two lines: a claim's wording is long enough to leave a 12-inch figure
    fig.suptitle(f"{ablation.paper[0]} vs {ablation.alternative[0]}, AlexNet: measured per epoch\n"
                 f"({ablation.section} claims: {ablation.claim})", fontsize=10)
    return fig


def plot_speed(result: Mapping[str, Any], ablation: Ablation = RELU_VS_TANH,
               what: str = "") -> Figure:
    """`run_speed`'s training error per epoch: every seed at the chosen rates (left), seed 0's
    rate search (right)."""
    fig, axes = subplots(1, 2, figsize=(10, 3.4))
    colours = dict(zip((ablation.paper[0], ablation.alternative[0]), ("tab:blue", "tab:orange")))
    styles = {label: "-" if label == ablation.paper[0] else "--" for label in colours}
    for seed, runs in enumerate(result["per_seed"]):
        for label, rows in runs.items():
            axes[0].plot(_epochs(rows), _error(rows, "train_acc"), styles[label],
                         color=colours[label], alpha=0.8,
                         label=None if seed else f"{label}, lr {result['lr'][label]:g}")
    for label, by_lr in result["tuning"].items():
        for lr, rows in by_lr.items():
            axes[1].plot(_epochs(rows), _error(rows, "train_acc"), styles[label],
                         color=colours[label], alpha=0.35 + 0.65 * (lr == result["lr"][label]),
                         label=f"{label} {lr:g}")
    seeds = len(result["per_seed"])
    for ax, title in zip(axes, (f"chosen lr, {seeds} seed(s)", "seed 0, every lr tried")):
        ax.axhline(100 * ablation.target_error, color="grey", lw=1, ls=":")
        _epoch_axes(ax, title, "running training error (%)", fontsize=7, ncol=2)
    fig.suptitle(f"ReLU vs tanh, four-layer CNN{what}: training error per epoch, "
                 f"{ablation.target_error:.0%} target dotted ({ablation.section})", fontsize=10)
    return fig
