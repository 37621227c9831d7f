r"""The paper's design choices, tested small: one change at a time, the same budget for each.

Krizhevsky, Sutskever & Hinton (2012) justify four choices with a comparison:

- **ReLU** instead of tanh (§3.1, Figure 1): a four-layer CNN on CIFAR-10 "reaches a 25 %
  training error rate six times faster" with ReLUs.
- **Local Response Normalization** (§3.3): "reduces our top-1 and top-5 error rates by 1.4 % and
  1.2 %".
- **Overlapping pooling**, z = 3 > s = 2 (§3.4): "reduces the top-1 and top-5 error rates by
  0.4 % and 0.3 %" against z = s = 2, and "models with overlapping pooling find it slightly more
  difficult to overfit".
- **Dropout** 0.5 in fc6/fc7 (§4.2): "Without dropout, our network exhibits substantial
  overfitting."

`run_ablations` trains every variant with the same `TrainConfig` (epochs, batch, seed, data) via
`alexnet_edu.train.fit`; `claims_table` says, from the histories alone, which claims held. The
measures are small functions students can re-derive: `epochs_to_error`, `overfitting_gap`,
`best_val_error`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.stats import t as student_t

from .model import feature_map_size
from .train import build_model, evaluate, fit
from .transforms import BatchTransform
from .viz import subplots

__all__ = ["Ablation", "PAPER_ABLATIONS", "variants", "run_ablations", "epochs_to_error",
           "overfitting_gap", "best_val_error", "check_pooling_fair", "run_folder_name",
           "claims_table", "claims_markdown", "plot_ablation", "run_seeds", "seeds_table",
           "seeds_markdown"]

History = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Ablation:
    """One claim of the paper: the paper's setting against one alternative.

    `measure` says how the claim is judged: "speed" (epochs to reach `target_error` training
    error), "val_error" (best validation error) or "gap" (train minus validation accuracy)."""

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


PAPER_ABLATIONS: tuple[Ablation, ...] = (
    Ablation("activation", "ReLU reaches 25 % training error ~6x sooner than tanh",
             ("ReLU", {"activation": "relu"}), ("tanh", {"activation": "tanh"}),
             measure="speed", section="§3.1, Figure 1",
             effect="6x fewer epochs to 25 % training error (CIFAR-10, a four-layer CNN)"),
    Ablation("lrn", "LRN lowers the top-1 error (by 1.4 points on ImageNet)",
             ("LRN", {"lrn": True}), ("no LRN", {"lrn": False}), section="§3.3",
             effect="+1.4 points of top-1 error (ImageNet)"),
    Ablation("pooling", "Overlapping pooling (3/2) lowers the top-1 error (by 0.4 points) vs 2/2",
             ("overlapping 3/2", {"overlapping_pool": True}),
             ("non-overlapping 2/2", {"overlapping_pool": False}), section="§3.4",
             effect="+0.4 points of top-1 error (ImageNet)"),
    Ablation("dropout", "Without dropout the network overfits more (larger train-val gap)",
             ("dropout 0.5", {"dropout": 0.5}), ("no dropout", {"dropout": 0.0}),
             measure="gap", section="§4.2", effect="\"substantial overfitting\" without it"),
)


def variants(ablations: Sequence[Ablation] = PAPER_ABLATIONS) -> dict[str, dict]:
    """{label: model overrides} for every distinct run the ablations need. The paper's settings
    all coincide (ReLU, LRN, overlapping pooling, dropout 0.5), so they share one run: "paper"."""
    runs: dict[str, dict] = {"paper": {}}
    for ab in ablations:
        for label, overrides in (ab.paper, ab.alternative):
            if not _is_paper_setting(overrides) and label not in runs:
                runs[label] = dict(overrides)
    return runs


def _is_paper_setting(overrides: Mapping[str, Any]) -> bool:
    paper = {"activation": "relu", "lrn": True, "overlapping_pool": True, "dropout": 0.5}
    return all(paper.get(k) == v for k, v in overrides.items())


def _run_label(overrides: Mapping[str, Any], label: str) -> str:
    return "paper" if _is_paper_setting(overrides) else label


def run_folder_name(label: str) -> str:
    """A label as a portable folder name: "N(0, 0.01)" -> "N-0-0.01"."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-.") or "run"


def run_ablations(splits, config, image_size: int, run_root: str | Path,
                  runs: Mapping[str, dict] | None = None, device: str | torch.device | None = None,
                  base: Mapping[str, Any] | None = None, resume: bool = False,
                  keep_checkpoints: bool = True) -> dict[str, list[dict]]:
    """Train one model per entry of `runs` ({label: AlexNet overrides}; default: `variants()`),
    each with the same `config` (epochs, batch size, seed), data and initial random state, into
    ``run_root/<label>``. `base` holds overrides shared by all (e.g. ``{"variant": "paper"}``).
    ``resume=True`` continues or reuses finished runs (their ``last.pt``).
    ``keep_checkpoints=False`` deletes a *finished* run's ``.pt`` files (an AlexNet checkpoint
    with its optimizer state is hundreds of MB; an interrupted run keeps its ``last.pt``).
    Each run folder keeps ``history.json``. Returns {label: history}. A run interrupted by
    Ctrl-C stops them all (KeyboardInterrupt): the next runs would get another budget."""
    runs = variants() if runs is None else runs
    if any("overlapping_pool" in overrides for overrides in runs.values()):
        check_pooling_fair(image_size, (base or {}).get("variant", "paper"))
    # Training accuracy for the train - validation gap: measured the way validation accuracy is
    # (eval mode: no dropout, no augmentation) on a fixed training subset as large as the
    # validation split - the running accuracy, with dropout on, would lower it by construction.
    train_probe = splits.train.subset(torch.arange(min(len(splits.train), len(splits.val))))
    histories: dict[str, list[dict]] = {}
    for label, overrides in runs.items():
        # the same initial weights wherever the layers agree
        model = build_model(splits, image_size=image_size, seed=config.seed,
                            **{**dict(base or {}), **overrides})
        print(f"--- {label}: {', '.join(f'{k}={v!r}' for k, v in overrides.items()) or 'paper'}")
        folder = Path(run_root) / run_folder_name(label)
        history = fit(model, splits, config, run_dir=folder, device=device, resume=resume)
        if len(history) < config.epochs:   # fit returned early: Ctrl-C / "interrupt kernel"
            # the next runs would otherwise train on, and be compared with a shorter one
            print(f"Stopped at {label!r}, interrupted after {len(history)} of {config.epochs} "
                  "epoch(s): run again with resume=True to continue")
            raise KeyboardInterrupt
        if history and "train_acc_eval" not in history[-1]:
            plain = BatchTransform(image_size, tuple(splits.mean), tuple(splits.std),
                                   train=False, out_channels=model.config["in_channels"])
            history[-1]["train_acc_eval"] = evaluate(model, train_probe, plain, device)["top1"]
        (folder / "history.json").write_text(json.dumps(history, indent=1))   # + train_acc_eval
        if not keep_checkpoints and len(history) >= config.epochs:
            for checkpoint in folder.glob("*.pt"):
                checkpoint.unlink()
        histories[label] = history
    return histories


def run_seeds(splits, config, image_size: int, run_root: str | Path, seeds: int,
              **kwargs: Any) -> list[dict[str, list[dict]]]:
    """`run_ablations` once per seed 0 .. seeds-1 (``config.seed``: initial weights, batch order,
    augmentation), into ``run_root/seed-<s>``: the spread between seeds is the noise one run
    cannot show. Returns one {label: history} per seed."""
    return [run_ablations(splits, dataclasses.replace(config, seed=seed), image_size,
                          Path(run_root) / f"seed-{seed}", **kwargs) for seed in range(seeds)]


def _effect(ab: Ablation, histories: Mapping[str, History]) -> tuple[float, str]:
    """(advantage, bound): how much better the paper's setting did in one set of runs, in the
    measure's unit (positive: as the paper claims): points of validation error or of train-val
    gap saved, or epochs saved to the target. A run that never got there counts one epoch past
    its end, and the advantage is then only a bound: "≥" when the alternative never got there
    (it would have needed more), "≤" when the paper's setting never did, "?" when neither did
    (no bound at all); "" when the advantage is exact."""
    a = histories[_run_label(ab.paper[1], ab.paper[0])]
    b = histories[_run_label(ab.alternative[1], ab.alternative[0])]
    if ab.measure == "speed":
        ea, eb = (epochs_to_error(h, ab.target_error) for h in (a, b))
        bound = {(False, False): "", (False, True): "≥", (True, False): "≤",
                 (True, True): "?"}[(ea is None, eb is None)]
        return float((eb or len(b) + 1) - (ea or len(a) + 1)), bound
    if ab.measure == "val_error":
        return 100 * (best_val_error(b) - best_val_error(a)), ""
    return 100 * (overfitting_gap(b) - overfitting_gap(a)), ""


def seeds_table(per_seed: Sequence[Mapping[str, History]],
                ablations: Sequence[Ablation] = PAPER_ABLATIONS) -> list[dict]:
    """One row per ablation over several seeds' runs (`run_seeds`): the paper setting's
    advantage in each, their mean ± sample standard deviation, and a verdict only when the mean
    is outside the 95 % confidence interval of zero, t(0.975, k-1) sd / sqrt(k) for k seeds
    (Student's t: with 3 seeds the factor is 4.30, not 2). One seed gives no spread: its verdict
    is "one seed". An advantage that is only a bound (a run never reached the target) is marked
    in ``bound`` (see `_effect`)."""
    rows = []
    for ab in ablations:
        effects, bounds = zip(*(_effect(ab, histories) for histories in per_seed))
        k, mean = len(effects), sum(effects) / len(effects)
        unit = "epochs" if ab.measure == "speed" else "points"
        row = {"ablation": ab.name, "claim": f"{ab.claim} ({ab.section})", "paper": ab.effect,
               "effects": list(effects), "bound": list(bounds), "mean": mean, "sd": None,
               "unit": unit, "verdict": "one seed"}
        if k > 1:
            sd = math.sqrt(sum((e - mean) ** 2 for e in effects) / (k - 1))
            half_width = float(student_t.ppf(0.975, k - 1)) * sd / math.sqrt(k)
            row["sd"] = sd
            row["verdict"] = ("undecided" if abs(mean) <= half_width else
                              "held" if mean > 0 else "did not hold")
        rows.append(row)
    return rows


def seeds_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """`seeds_table` as Markdown."""
    head = ("| claim | the paper's advantage | ours, per seed (≥ or ≤: a bound, a run never got "
            "there; ?: neither did) | mean ± sd | verdict |\n|---|---|---|---|---|")
    lines = []
    for r in rows:
        each = ", ".join(f"{b}{e:+.1f}" for e, b in zip(r["effects"], r["bound"]))
        spread = f"{r['mean']:+.1f}" + (f" ± {r['sd']:.1f}" if r["sd"] is not None else "")
        lines.append(f"| {r['claim']} | {r['paper']} | {each} {r['unit']} | {spread} | "
                     f"**{r['verdict']}** |")
    return "\n".join([head, *lines])


def epochs_to_error(history: History, target: float = 0.25) -> int | None:
    """The first epoch whose *training* error (1 - train_acc) is at most `target`, or None if
    the run never got there (Figure 1's measure)."""
    for i, row in enumerate(history):
        if 1.0 - float(row["train_acc"]) <= target:
            return int(row.get("epoch", i + 1))
    return None


def overfitting_gap(history: History) -> float:
    """Training minus validation accuracy at the last epoch (positive = overfitting), both in
    eval mode: ``train_acc_eval`` is the final model's accuracy on training images without
    dropout or augmentation (`run_ablations` records it). The running ``train_acc`` of an epoch,
    measured with dropout on, would make dropout look like less overfitting by construction."""
    if not history:
        raise ValueError("the history is empty: train at least one epoch")
    last = history[-1]
    if "train_acc_eval" not in last:
        raise ValueError("the history has no eval-mode training accuracy (train_acc_eval): "
                         "run it through run_ablations")
    return float(last["train_acc_eval"]) - float(last["val_acc"])


def check_pooling_fair(image_size: int, variant: str = "paper") -> None:
    """Raise a ValueError when overlapping (3/2) and plain (2/2) pooling give pool5 maps of
    different sides at `image_size`: fc6 would then change size too, and the ablation would
    compare two changes, not one."""
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


def best_val_error(history: History) -> float:
    """1 - the best validation accuracy over the run."""
    if not history:
        raise ValueError("the history is empty: train at least one epoch")
    return 1.0 - max(float(r["val_acc"]) for r in history)


def _noise(error: float, n_val: int) -> float:
    """Two standard errors of the difference of two error rates measured on n_val images."""
    p = min(max(error, 1.0 / max(n_val, 1)), 1 - 1.0 / max(n_val, 1))
    return 2 * math.sqrt(2 * p * (1 - p) / max(n_val, 1))


def _lower_wins(a: float, b: float, noise: float, a_label: str, what: str) -> tuple[str, str]:
    """Verdict for "a is lower than b", honest about noise."""
    diff = 100 * (b - a)
    if abs(b - a) <= noise:
        return "undecided", f"{what} {diff:+.1f} points is within noise (±{100 * noise:.1f})"
    if a < b:
        return "held", f"{diff:.1f} points lower with {a_label}"
    return "did not hold", f"{-diff:.1f} points higher with {a_label}"


def claims_table(histories: Mapping[str, History], n_val: int,
                 ablations: Sequence[Ablation] = PAPER_ABLATIONS) -> list[dict]:
    """One row per ablation, computed from the histories: the two values, the verdict
    ("held", "did not hold" or "undecided") and why. A validation-error difference within two
    standard errors of the validation set (n_val images) is "undecided", not a win."""
    rows = []
    for ab in ablations:
        a_label, b_label = ab.paper[0], ab.alternative[0]
        a = histories[_run_label(ab.paper[1], a_label)]
        b = histories[_run_label(ab.alternative[1], b_label)]
        epochs = len(a)
        if ab.measure == "speed":
            ea, eb = epochs_to_error(a, ab.target_error), epochs_to_error(b, ab.target_error)
            what = f"epochs to {ab.target_error:.0%} training error"
            va = "not reached" if ea is None else str(ea)
            vb = "not reached" if eb is None else str(eb)
            if ea is None and eb is None:
                verdict, why = "undecided", f"neither reached it in {epochs} epochs"
            elif ea is not None and (eb is None or ea < eb):
                verdict = "held"
                why = (f"{b_label} did not reach it in {epochs} epochs" if eb is None
                       else f"{eb / ea:.1f}x sooner")
            elif ea == eb:
                verdict, why = "undecided", "both in the same epoch (measure per epoch)"
            else:
                verdict, why = "did not hold", f"{b_label} got there first"
        elif ab.measure == "val_error":
            ea, eb = best_val_error(a), best_val_error(b)
            what, va, vb = "best validation error", f"{ea:.1%}", f"{eb:.1%}"
            verdict, why = _lower_wins(ea, eb, _noise((ea + eb) / 2, n_val), a_label,
                                       "error difference")
        else:  # gap
            ga, gb = overfitting_gap(a), overfitting_gap(b)
            what, va, vb = "train - val accuracy (last epoch)", f"{ga:+.1%}", f"{gb:+.1%}"
            verdict, why = _lower_wins(ga, gb, _noise(1 - float(a[-1]["val_acc"]), n_val),
                                       a_label, "gap difference")
        rows.append({"ablation": ab.name, "claim": f"{ab.claim} ({ab.section})", "measure": what,
                     "paper": f"{a_label}: {va}", "alternative": f"{b_label}: {vb}",
                     "verdict": verdict, "why": why, "epochs": epochs})
    return rows


def claims_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The claims table as Markdown (display it with IPython.display.Markdown)."""
    head = ("| claim | measure | paper's choice | alternative | verdict | why |\n"
            "|---|---|---|---|---|---|")
    lines = [f"| {r['claim']} | {r['measure']} | {r['paper']} | {r['alternative']} | "
             f"**{r['verdict']}** | {r['why']} |" for r in rows]
    return "\n".join([head, *lines])


def plot_ablation(ablation: Ablation, histories: Mapping[str, History]) -> Figure:
    """Training and validation error per epoch of the paper's setting against the alternative
    (two panels), with the 25 % line for the speed claim."""
    fig, axes = subplots(1, 2, figsize=(10, 3.2))
    for (label, overrides), style in ((ablation.paper, "-o"), (ablation.alternative, "--s")):
        rows = histories[_run_label(overrides, label)]
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
        for ax, key in zip(axes, ("train_acc", "val_acc")):
            ax.plot(epochs, [100 * (1 - float(r[key])) for r in rows], style, ms=4, label=label)
    for ax, split in zip(axes, ("training", "validation")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylim(0, 100)  # the whole error scale: small differences look small
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{split} error (%)")
        ax.set_title(f"{split} error")
        ax.grid(alpha=0.3)
        if ablation.measure == "speed" and split == "training":
            ax.axhline(100 * ablation.target_error, color="grey", lw=1, ls=":",
                       label=f"{ablation.target_error:.0%} target")
        ax.legend()
    fig.suptitle(f"{ablation.claim} ({ablation.section})")
    return fig
