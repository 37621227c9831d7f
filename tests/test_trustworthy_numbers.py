"""Numbers you can trust: a diverged model never scores 100 %, `evaluate` never tests on images the
run trained on, a seed reproduces a run bit for bit (from the CLI too), an interrupt at any
instant of a step leaves a last.pt the run really passed through, the ablations change one thing,
and the recipe follows the paper where it says what to do (weight decay on weights, the plateau
rule on the validation error, bf16 only on hardware that has it)."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train import _same_weights, _splits, _tiny
from torch import nn

from alexnet_edu import device as device_module
from alexnet_edu import train
from alexnet_edu.checkpoint import eval_transform, load_checkpoint
from alexnet_edu.cli import main
from alexnet_edu.data import load_splits, split_fingerprint
from alexnet_edu.device import amp_dtype
from alexnet_edu.machine import cpu_has_bf16
from alexnet_edu.metrics import topk_accuracy, topk_correct
from alexnet_edu.notebook import experiments
from alexnet_edu.standin import generate_fashion_mnist
from alexnet_edu.train import TrainConfig, build_model, evaluate, fit, make_optimizer

TINY = ["--image-size", "67", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- 1. a diverged model scores 0 %, and never becomes best.pt --------------------------------

def test_nan_and_inf_scores_are_wrong_answers():
    targets = torch.tensor([0, 1, 2])
    assert topk_accuracy(torch.full((3, 5), float("nan")), targets, (1, 5)) == {1: 0.0, 5: 0.0}
    logits = torch.eye(5)[:3] * 3            # all three right ...
    logits[1, 4] = float("inf")              # ... except where a score is infinite
    logits[2, 0] = float("nan")
    assert topk_correct(logits, targets, 1).tolist() == [True, False, False]


def test_evaluate_on_a_model_with_nan_outputs_reports_zero():
    class NaNNet(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 4), float("nan"))

    splits = _splits()
    result = evaluate(NaNNet(), splits.val, nn.Flatten(1, 1), "cpu")
    assert result["top1"] == 0.0 and math.isnan(result["loss"])


def test_a_non_finite_validation_loss_stops_training_and_never_becomes_best(tmp_path,
                                                                            monkeypatch):
    splits, real_evaluate = _splits(), train.evaluate
    accuracies = []

    def diverging(*args, **kwargs):   # epoch 1 fine, epoch 2 NaN (its "accuracy" would be 2.0)
        result = real_evaluate(*args, **kwargs)
        accuracies.append(result["top1"])
        if len(accuracies) == 2:
            result = {**result, "loss": float("nan"), "top1": 2.0}
        return result

    monkeypatch.setattr(train, "evaluate", diverging)
    with pytest.raises(FloatingPointError, match=r"diverged.*after epoch 2.*learning rate"):
        fit(_tiny(), splits, TrainConfig(epochs=3, batch_size=16, progress=False), tmp_path,
            "cpu")
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 1 and best["best_val_acc"] == accuracies[0]


def test_cli_exits_2_with_one_line_when_the_model_diverges(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    generate_fashion_mnist(root, n_train=40, n_test=10, seed=0)
    real_evaluate = train.evaluate
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: {**real_evaluate(*a, **k),
                                                             "loss": float("inf")})
    code = main(["train", "--dataset", "fashion-mnist", "--data-root", str(root), "--out",
                 str(tmp_path / "run"), "--limit", "24", "--epochs", "1", *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("alexnet-edu: error:")] == [
        next(line for line in err.splitlines() if "diverged" in line)]
    assert not (tmp_path / "run" / "best.pt").exists()


# --- 2. evaluate uses the run's own held-out split ---------------------------------------------

def _image_folder(root: Path, per_class: int = 12, classes: int = 3) -> Path:
    g = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = g.integers(0, 255, (24, 24, 3), dtype=np.uint8)
            pixels[:, :, c] = 200
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def test_evaluate_rebuilds_the_runs_own_test_split_and_refuses_another(tmp_path, capsys):
    folder = _image_folder(tmp_path / "images")
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(folder), "--out", str(out), "--seed", "3",
                 "--epochs", "1", *TINY]) == 0
    assert "held out for the test split" in capsys.readouterr().out
    checkpoint = load_checkpoint(out / "best.pt")
    seed3, seed0 = load_splits(folder, seed=3), load_splits(folder, seed=0)
    assert checkpoint["split"]["seed"] == 3
    assert checkpoint["split"]["test"] == split_fingerprint(seed3.test)
    assert checkpoint["split"]["test"] != split_fingerprint(seed0.test)   # seed 0 would leak
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--dataset", str(folder),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == len(seed3.test)
    # the folder changes (an image added): its test split is no longer the held-out one
    Image.new("RGB", (24, 24)).save(folder / "class0" / "new.png")
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--dataset",
                 str(folder)]) == 2
    assert "not the one the run held out" in capsys.readouterr().err


# --- 3. a seed reproduces a run ---------------------------------------------------------------

def test_build_model_is_seeded():
    splits = _splits()
    torch.manual_seed(123)
    a = build_model(splits, image_size=67, seed=5)
    torch.manual_seed(456)
    b = build_model(splits, image_size=67, seed=5)
    assert _same_weights(a, b)
    assert not _same_weights(a, build_model(splits, image_size=67, seed=6))


def test_the_same_cli_command_twice_and_straight_vs_resumed_give_identical_weights(
        tmp_path, one_thread):
    root = tmp_path / "data"
    generate_fashion_mnist(root, n_train=40, n_test=10, seed=0)
    args = ["train", "--dataset", "fashion-mnist", "--data-root", str(root), "--limit", "24",
            "--seed", "7", *TINY]
    torch.manual_seed(1)   # whatever the global state before: the seed decides
    assert main([*args, "--out", str(tmp_path / "a"), "--epochs", "2"]) == 0
    torch.manual_seed(2)
    assert main([*args, "--out", str(tmp_path / "b"), "--epochs", "2"]) == 0
    assert main([*args, "--out", str(tmp_path / "c"), "--epochs", "1"]) == 0
    assert main([*args, "--out", str(tmp_path / "c"), "--epochs", "2", "--resume"]) == 0
    weights = [load_checkpoint(tmp_path / run / "last.pt")["model"] for run in "abc"]
    for other in weights[1:]:
        assert weights[0].keys() == other.keys()
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


# --- 4. an interrupt at any instant of a step --------------------------------------------------

@pytest.mark.parametrize("moment", ["forward", "after_step"])
def test_ctrl_c_anywhere_in_a_step_leaves_a_state_the_run_passed_through(tmp_path, one_thread,
                                                                         monkeypatch, moment):
    """Ctrl-C inside batch 5 (epoch 2's 2nd): during the forward pass (weights not yet updated)
    or right after the optimizer step (weights updated). Either way last.pt holds epoch 1 as a
    one-epoch run ends it, and resuming ends with exactly the weights of an uninterrupted run."""
    splits = _splits()
    config = TrainConfig(epochs=2, batch_size=16, progress=False)
    straight, one_epoch = _tiny(), _tiny()
    fit(straight, splits, config, tmp_path / "straight", "cpu")
    fit(one_epoch, splits, TrainConfig(epochs=1, batch_size=16, progress=False),
        tmp_path / "one", "cpu")

    interrupted, state = _tiny(), {"batch": 0}

    def ctrl_c():
        state["batch"] += 1
        if state["batch"] == 5:
            signal.raise_signal(signal.SIGINT)

    if moment == "forward":
        def hook(module, inputs):
            if module.training:
                ctrl_c()
        interrupted.register_forward_pre_hook(hook)
    else:
        real = train.make_optimizer

        def with_hook(*args, **kwargs):
            optimizer = real(*args, **kwargs)
            optimizer.register_step_post_hook(lambda opt, a, k: ctrl_c())
            return optimizer
        monkeypatch.setattr(train, "make_optimizer", with_hook)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, splits, config, tmp_path / "run", "cpu")
    assert state["batch"] == 5
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["epoch"] == 1 and _same_weights(one_epoch, _loaded(saved))
    monkeypatch.undo()
    resumed = _tiny(seed=99)
    fit(resumed, splits, config, tmp_path / "run", "cpu", resume=True)
    assert _same_weights(resumed, straight)


def _loaded(checkpoint: dict) -> nn.Module:
    model = _tiny(seed=1)
    model.load_state_dict(checkpoint["model"])
    return model


# --- 5-7. fair ablations ----------------------------------------------------------------------

def test_pooling_ablation_refuses_sizes_where_pool5_differs():
    experiments.check_pooling_fair(227)
    experiments.check_pooling_fair(67)
    with pytest.raises(ValueError, match=r"224 px pool5 is 5x5 .* 6x6"):
        experiments.check_pooling_fair(224)
    with pytest.raises(ValueError, match="pool5"):
        experiments.run_ablations(_splits(), TrainConfig(epochs=1), 224, "unused",
                                  runs={"non-overlapping 2/2": {"overlapping_pool": False}})


def test_the_gap_uses_eval_mode_training_accuracy(tmp_path):
    history = [{"epoch": 1, "train_acc": 0.70, "train_acc_eval": 0.95, "val_acc": 0.80}]
    assert experiments.overfitting_gap(history) == pytest.approx(0.15)   # not -0.10
    with pytest.raises(ValueError, match="train_acc_eval"):
        experiments.overfitting_gap([{"epoch": 1, "train_acc": 0.7, "val_acc": 0.8}])
    splits = _splits(n_train=32, n_val=16, side=28)
    config = TrainConfig(epochs=1, batch_size=16, progress=False)
    hs = experiments.run_ablations(splits, config, 67, tmp_path, runs={"paper": {}},
                                   device="cpu", keep_checkpoints=False)
    model = build_model(splits, image_size=67, seed=0)
    assert 0.0 <= hs["paper"][-1]["train_acc_eval"] <= 1.0
    assert json.loads((tmp_path / "paper" / "history.json").read_text())[-1][
        "train_acc_eval"] == hs["paper"][-1]["train_acc_eval"]
    del model


def test_noise_band_is_computed_from_the_runs_numbers():
    # the table's rule 2*sqrt(2p(1-p)/n): at p = 0.09 on 6,000 images it is about 1 point
    assert experiments._noise(0.09, 6000) == pytest.approx(0.0105, abs=5e-4)
    h = [{"epoch": 1, "train_acc": 0.9, "train_acc_eval": 0.9, "val_acc": 0.91}]
    worse = [{"epoch": 1, "train_acc": 0.9, "train_acc_eval": 0.9, "val_acc": 0.903}]
    rows = experiments.claims_table({"paper": h, "tanh": h, "no LRN": worse,
                                     "non-overlapping 2/2": h, "no dropout": h}, n_val=6000)
    lrn = next(r for r in rows if r["ablation"] == "lrn")
    assert lrn["verdict"] == "undecided" and "±1.1" in lrn["why"]   # 0.7 points < 1.1


# --- 8-12. closer to the paper ----------------------------------------------------------------

def test_weight_decay_applies_to_weights_not_biases():
    model = build_model(_splits(), image_size=67)
    optimizer = make_optimizer(model, TrainConfig(), "cpu")
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert decay[id(p)] == (5e-4 if name.endswith("weight") else 0.0), name
    assert len(decay) == len(list(model.parameters()))


def test_plateau_rule_steps_on_the_validation_error_not_the_loss(tmp_path, monkeypatch):
    """The loss rises every epoch while the accuracy improves: by §5's rule (error rate) the lr
    stays; a rule on the loss would divide it."""
    real_evaluate, epoch = train.evaluate, {"n": 0}

    def scripted(*args, **kwargs):
        epoch["n"] += 1
        return {**real_evaluate(*args, **kwargs), "loss": 1.0 + epoch["n"],
                "top1": 0.2 + 0.1 * epoch["n"]}

    monkeypatch.setattr(train, "evaluate", scripted)
    history = fit(_tiny(), _splits(), TrainConfig(epochs=4, batch_size=16, patience=0,
                                                   progress=False), tmp_path, "cpu")
    assert [row["lr"] for row in history] == [0.01] * 4


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16),   # T4
                                                  ((6, 0), torch.float16),   # P100
                                                  ((8, 0), torch.bfloat16),  # A100
                                                  ((9, 0), torch.bfloat16)])
def test_auto_precision_on_cuda_follows_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulated
    assert amp_dtype("auto", torch.device("cuda")) == expected


def test_cpu_bf16_is_detected_from_the_cpu_flags(tmp_path, monkeypatch):
    amx = tmp_path / "amx"
    amx.write_text("processor : 0\nflags : fpu sse avx2 amx_bf16 amx_tile\n")
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16(amx) and not cpu_has_bf16(avx2)
    assert not cpu_has_bf16(tmp_path / "missing")
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)
    assert amp_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: False)
    assert amp_dtype("auto", torch.device("cpu")) is None


def test_torchvision_weights_are_evaluated_at_their_own_resize():

    paper = eval_transform({"image_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3,
                            "model_config": {"in_channels": 3}})
    torchvision_recipe = eval_transform({"image_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3,
                                         "model_config": {"in_channels": 3}, "resize_size": 256})
    assert (paper.resize_size, torchvision_recipe.resize_size) == (253, 256)
