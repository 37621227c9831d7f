"""The trainer: it learns, resumes exactly (also after Ctrl-C inside an epoch), writes checkpoints
atomically, loads them safely, refuses the wrong model, says what last.pt holds on
KeyboardInterrupt, divides the lr on a plateau, and never looks at the test split.

Trainer mechanics use a tiny stand-in network (a few thousand weights, with dropout, so that the
dropout RNG matters); one test trains the real AlexNet at its smallest input size (67 px).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from alexnet_edu import data, profiles
from alexnet_edu.checkpoint import (
    FORMAT,
    check_continues,
    eval_transform,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from alexnet_edu.notebook.pretrained import initial_model
from alexnet_edu.schedules import step_lr
from alexnet_edu.train import (
    TrainConfig,
    build_model,
    evaluate,
    fit,
    make_optimizer,
    predict,
)

HISTORY_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"}


def _splits(n_train=48, n_val=16, classes=4, side=20, channels=1, seed=0, test=None):
    """A learnable set: class c has a bright horizontal band in the c-th quarter of the image."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        labels = torch.arange(n) % classes
        images = torch.randint(0, 60, (n, channels, side, side), generator=g, dtype=torch.uint8)
        band = side // classes
        for c in range(classes):
            images[labels == c, :, c * band:(c + 1) * band] += 150
        return data.TensorImageDataset(images, labels, [f"c{i}" for i in range(classes)])

    names = [f"c{i}" for i in range(classes)]
    return data.Splits(make(n_train), make(n_val), test if test is not None else make(n_val),
                       names, channels, (0.3,) * channels, (0.3,) * channels, None, "tiny")


class Tiny(nn.Module):
    """A stand-in network with AlexNet's `config` convention, a conv, dropout and a classifier."""

    def __init__(self, num_classes=4, in_channels=1, image_size=16, width=8, dropout=0.5):
        super().__init__()
        self.config = dict(num_classes=num_classes, in_channels=in_channels,
                           image_size=image_size, width=width, dropout=dropout)
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width * 16, num_classes))
        self.raise_at_call = None       # raise KeyboardInterrupt in the n-th training forward
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.raise_at_call:
                raise KeyboardInterrupt
        return self.classifier(self.features(x))


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return Tiny(**kw)


CFG = dict(batch_size=16, warmup_epochs=0.5, progress=False)


@pytest.fixture
def one_thread():
    """Bit-exact comparisons need a fixed order of floating-point sums: with several threads,
    some CPU kernels split reductions differently from run to run on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _strip_timing(history):
    return [{k: v for k, v in row.items() if k not in ("images_per_s", "seconds")}
            for row in history]


@pytest.fixture(scope="module")
def alexnet_run(tmp_path_factory):
    """The real AlexNet (67 px, recipe defaults) trained briefly on the learnable tiny set."""
    run = tmp_path_factory.mktemp("alexnet")
    splits = _splits(n_train=64, n_val=32, side=28)
    torch.manual_seed(0)
    model = build_model(splits, image_size=67)
    # 5 epochs: some initial draws need more than 3 to pass 0.5
    history = fit(model, splits, TrainConfig(epochs=5, batch_size=16, progress=False), run, "cpu")
    return splits, model, history, run


def test_alexnet_learns_a_learnable_set(alexnet_run):
    splits, model, history, _ = alexnet_run
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert HISTORY_KEYS <= set(history[0])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc"] >= 0.5            # chance is 0.25


def test_initial_model_is_the_runs_start_rebuilt_from_its_seed(alexnet_run):
    splits, model, _, run = alexnet_run
    checkpoint = torch.load(run / "best.pt", weights_only=True)
    start = initial_model(checkpoint)
    assert _same_weights(start, build_model(splits, image_size=67, seed=0))   # the run's seed
    assert not _same_weights(start, build_model(splits, image_size=67, seed=1))
    assert not _same_weights(start, model)                                    # it trained
    checkpoint["train_config"]["seed"] = 1
    assert not _same_weights(initial_model(checkpoint), start)
    with pytest.raises(ValueError, match="no training run's seed"):
        initial_model({"model_config": checkpoint["model_config"]})


def test_checkpoint_is_enough_to_evaluate_and_predict(alexnet_run):
    splits, model, history, run = alexnet_run
    # the raw file loads with weights_only=True, i.e. no pickled code
    raw = torch.load(run / "best.pt", weights_only=True)
    assert raw["format"] == FORMAT and raw["classes"] == splits.classes
    assert {"model_config", "mean", "std", "image_size", "in_channels_data", "epoch"} <= set(raw)
    loaded, checkpoint = load_model(run / "best.pt")
    assert not loaded.training
    best_epoch = max(history, key=lambda r: r["val_acc"])
    result = evaluate(loaded, splits.val, checkpoint)
    assert result["top1"] == pytest.approx(best_epoch["val_acc"])
    assert result["top5"] is None and result["predictions"].shape == (len(splits.val),)
    probs = predict(loaded, splits.val.images[:3], checkpoint)
    assert probs.shape == (3, 4) and torch.allclose(probs.sum(1), torch.ones(3))
    tta = evaluate(loaded, splits.val, eval_transform(checkpoint), tta=True)
    assert tta["probabilities"].shape == (len(splits.val), 4)
    assert not torch.allclose(tta["probabilities"], result["probabilities"])


def test_flip_averaging_is_the_ten_crops_centre_pair(alexnet_run):
    splits, _, _, run = alexnet_run
    loaded, checkpoint = load_model(run / "best.pt")
    transform = eval_transform(checkpoint)
    # float32 on every CPU (amp "auto" picks bfloat16 on CPUs with AMX), to compare with the
    # float32 forward pass below
    flip = evaluate(loaded, splits.val, transform, tta="flip", amp="off")["probabilities"]
    # patches 4 and 9 of the paper's ten are the centre crop and its mirror image
    with torch.no_grad():
        pair = transform.ten_crop_batch(splits.val.images)[:, [4, 9]]
        expected = loaded(pair.flatten(0, 1)).softmax(-1).view(len(pair), 2, -1).mean(1)
    torch.testing.assert_close(flip, expected, rtol=1e-5, atol=1e-6)
    centre = evaluate(loaded, splits.val, transform)["probabilities"]
    assert not torch.allclose(flip, centre)
    with pytest.raises(ValueError, match="tta"):
        evaluate(loaded, splits.val, transform, tta="five")


def test_resume_gives_exactly_the_same_weights(tmp_path, one_thread):
    splits = _splits()
    whole = _tiny()
    h_whole = fit(whole, splits, TrainConfig(epochs=2, **CFG), tmp_path / "whole", "cpu")

    first = _tiny()
    fit(first, splits, TrainConfig(epochs=1, **CFG), tmp_path / "parts", "cpu")
    torch.manual_seed(123)   # whatever happened in between must not matter
    second = _tiny(seed=99)  # a fresh process: other initial weights, all restored from last.pt
    h_parts = fit(second, splits, TrainConfig(epochs=2, **CFG), tmp_path / "parts", "cpu",
                  resume=True)
    assert _same_weights(whole, second)
    assert _strip_timing(h_whole) == _strip_timing(h_parts)


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_interrupt_inside_an_epoch_resumes_exactly(tmp_path, one_thread, schedule):
    """Ctrl-C in epoch 2's 2nd batch: last.pt still holds epoch 1 (a state the run really
    passed through), and resuming redoes epoch 2 to the straight run's weights, bit for bit."""
    splits = _splits()
    config = TrainConfig(epochs=2, schedule=schedule, **CFG)
    whole = _tiny()
    fit(whole, splits, config, tmp_path / "whole", "cpu")
    one_epoch = _tiny()
    fit(one_epoch, splits, dataclasses.replace(config, epochs=1), tmp_path / "one", "cpu")

    interrupted = _tiny()
    interrupted.raise_at_call = 5          # epoch 2 (3 batches per epoch), its 2nd batch
    with pytest.raises(KeyboardInterrupt) as stopped:
        fit(interrupted, splits, config, tmp_path / "cut", "cpu")
    said = str(stopped.value)   # the traceback's last line, in a notebook
    assert said.startswith("Interrupted in epoch 2: ") and "holds epoch 1; fit(..., resume=True) " \
        "redoes epoch 2" in said
    assert stopped.value.__suppress_context__   # not torch's frames where Ctrl-C happened to land
    checkpoint = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert checkpoint["epoch"] == 1 and len(checkpoint["history"]) == 1
    assert "batch" not in checkpoint and "rng" not in checkpoint   # nothing mid-epoch
    assert all(torch.equal(v, one_epoch.state_dict()[k]) for k, v in checkpoint["model"].items())
    torch.manual_seed(5)                   # whatever happened in between must not matter
    resumed = _tiny(seed=7)
    history = fit(resumed, splits, config, tmp_path / "cut", "cpu", resume=True)
    assert _same_weights(whole, resumed)
    assert [row["epoch"] for row in history] == [1, 2]


def test_resume_refuses_another_recipe(tmp_path):
    """The saved optimizer and scheduler states would silently replace a new lr, momentum or
    patience, and another batch size would skip the wrong images inside an epoch."""
    fit(_tiny(), _splits(), TrainConfig(epochs=1, **CFG), tmp_path, "cpu")
    for change, shown in ((dict(lr=0.5), "lr=0.5 (the run's: 0.01)"),
                          (dict(batch_size=4), "batch_size=4 (the run's: 16)"),
                          (dict(momentum=0.0, patience=5), "momentum=0.0 (the run's: 0.9)")):
        config = TrainConfig(epochs=2, **{**CFG, **change})
        with pytest.raises(ValueError, match="another recipe") as err:
            fit(_tiny(), _splits(), config, tmp_path, "cpu", resume=True)
        assert shown in str(err.value)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1      # untouched


def test_an_interrupt_in_the_first_epoch_saves_nothing_and_says_so(tmp_path):
    first = _tiny()
    first.raise_at_call = 2
    with pytest.raises(KeyboardInterrupt, match="^Interrupted in epoch 1: nothing was saved$"):
        fit(first, _splits(), TrainConfig(epochs=1, **CFG), tmp_path / "new", "cpu")
    assert not (tmp_path / "new" / "last.pt").exists()
    # a new run over an earlier one, stopped as early: the earlier run's last.pt is not "it"
    fit(_tiny(), _splits(), TrainConfig(epochs=1, **CFG), tmp_path / "old", "cpu")
    before = (tmp_path / "old" / "last.pt").read_bytes()
    again = _tiny()
    again.raise_at_call = 1
    with pytest.raises(KeyboardInterrupt) as stopped:
        fit(again, _splits(), TrainConfig(epochs=1, **CFG), tmp_path / "old", "cpu")
    said = str(stopped.value)
    assert "nothing was saved" in said and "is an earlier run's" in said and "holds" not in said
    assert (tmp_path / "old" / "last.pt").read_bytes() == before


def test_keyboard_interrupt_from_the_callback_keeps_the_finished_epochs(tmp_path):
    def stop(history):
        if len(history) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="^Interrupted after epoch 2: .* goes on$"):
        fit(_tiny(), _splits(), TrainConfig(epochs=5, **CFG), tmp_path, "cpu", on_epoch_end=stop)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 2 and [r["epoch"] for r in checkpoint["history"]] == [1, 2]
    assert json.loads((tmp_path / "history.json").read_text()) == checkpoint["history"]
    history = fit(_tiny(), _splits(), TrainConfig(epochs=3, **CFG), tmp_path, "cpu",
                  resume=True)
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_a_callback_returning_true_stops_after_that_epoch_and_resume_goes_on(tmp_path):
    """A time budget or early stopping: not an exception, a finished run that resumes later."""
    calls = []

    def stop(history):
        calls.append(len(history))
        return len(history) == 2

    history = fit(_tiny(), _splits(), TrainConfig(epochs=4, **CFG), tmp_path, "cpu",
                  on_epoch_end=stop)
    assert calls == [1, 2] and [row["epoch"] for row in history] == [1, 2]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    history = fit(_tiny(), _splits(), TrainConfig(epochs=4, **CFG), tmp_path, "cpu",
                  resume=True, on_epoch_end=lambda h: None)   # None: go on
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    # only True stops: a callback that returns something else (a figure, a row) goes on
    history = fit(_tiny(), _splits(), TrainConfig(epochs=3, **CFG), tmp_path / "other", "cpu",
                  on_epoch_end=lambda h: h[-1])
    assert len(history) == 3
    # `accuracy > 0.9` computed in NumPy or torch is True too
    for name, answer in (("numpy", np.float64(0.95) > 0.9), ("array", np.array([0.95]) > 0.9),
                         ("torch", torch.tensor(0.95) > 0.9)):
        history = fit(_tiny(), _splits(), TrainConfig(epochs=2, **CFG), tmp_path / name, "cpu",
                      on_epoch_end=lambda h, answer=answer: answer)
        assert len(history) == 1, name


def test_one_process_asking_to_stop_stops_every_process(monkeypatch):
    """With torchrun, a callback that answers True in one process only (a clock, a file) must
    stop the others too, or they wait for it in their next all-reduce for ever."""
    from alexnet_edu import distributed, runlog
    said = []

    def other_process_says_stop(values):
        said.append(list(values))
        return [values[0] + 1.0]   # this process's answer plus another's True

    assert not runlog.asks_to_stop(None)   # one process: its own answer
    monkeypatch.setattr(distributed, "sum_across", other_process_says_stop)
    assert runlog.asks_to_stop(None) and runlog.asks_to_stop(np.array([[False]]))
    assert said == [[0.0], [0.0]]          # every process takes part, whatever it answered


def test_a_failing_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"format": FORMAT, "epoch": 1}, path)

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"format": FORMAT, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]   # no temporary file left


class _Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_loading_is_weights_only_and_refuses_foreign_files(tmp_path):
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"format": FORMAT, "x": _Evil()}, handle, protocol=2)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="not an alexnet-edu checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_refuses_another_model_or_class_count(tmp_path):
    fit(_tiny(), _splits(), TrainConfig(epochs=1, **CFG), tmp_path, "cpu")
    with pytest.raises(ValueError, match="different model: width=8 in the checkpoint but 16"):
        fit(_tiny(width=16), _splits(), TrainConfig(epochs=2, **CFG), tmp_path, "cpu",
            resume=True)
    with pytest.raises(ValueError, match="num_classes=4 in the checkpoint but 3"):
        fit(_tiny(num_classes=3), _splits(classes=3), TrainConfig(epochs=2, **CFG), tmp_path,
            "cpu", resume=True)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["split"] == {}   # hand-made splits: no fingerprint, nothing to compare
    with pytest.raises(ValueError, match="another dataset"):
        check_continues(checkpoint, _tiny().config, classes=["w", "x", "y", "z"])
    check_continues(checkpoint, _tiny().config, ["c0", "c1", "c2", "c3"],
                    TrainConfig(epochs=9, **CFG), processes=1)        # the same run: no error
    with pytest.raises(ValueError) as err:   # every conflict in one message
        check_continues(checkpoint, _tiny(width=16).config, ["w", "x", "y", "z"],
                        TrainConfig(epochs=2, **{**CFG, "lr": 0.5}), processes=2)
    assert all(part in str(err.value) for part in (
        "width=8 in the checkpoint but 16", "another dataset", "lr=0.5 (the run's: 0.01)",
        "trained by 1 process(es)", "start a new run in another folder"))
    with pytest.raises(ValueError, match="3 classes"):       # fresh run, model/data mismatch
        fit(_tiny(), _splits(classes=3), TrainConfig(epochs=1, **CFG), tmp_path / "new", "cpu")


class _Constant(nn.Module):
    """Outputs fixed logits whatever the input: the validation loss can never improve."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.config = dict(num_classes=num_classes, in_channels=1, image_size=16)
        self.unused = nn.Parameter(torch.ones(1))
        self.register_buffer("logits", torch.arange(num_classes, dtype=torch.float))

    def forward(self, x):
        return self.logits.expand(len(x), -1) + 0 * self.unused


def test_lr_is_divided_by_10_on_a_validation_plateau(tmp_path):
    config = TrainConfig(epochs=4, batch_size=16, warmup_epochs=0, patience=1, progress=False)
    history = fit(_Constant(), _splits(), config, tmp_path, "cpu")
    # epoch 1 sets the best loss; epochs 2 and 3 do not improve: after 1 + patience bad epochs
    # the lr drops (patience=1 -> from epoch 4 on), as the paper's "divide by 10".
    assert [row["lr"] for row in history] == pytest.approx([0.01, 0.01, 0.01, 0.001])


def test_warmup_raises_the_lr_linearly_over_the_first_epoch(tmp_path):
    seen = []
    model = _tiny()
    config = TrainConfig(epochs=1, batch_size=16, warmup_epochs=1, progress=False)
    optimizer_step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return optimizer_step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.SGD, "step", spy)
        fit(model, _splits(), config, tmp_path, "cpu")
    assert seen == pytest.approx([0.01 / 3, 0.02 / 3, 0.01])


def test_step_lr_warms_up_then_follows_the_half_cosine_to_min_lr():
    config = TrainConfig(epochs=3, lr=0.1, min_lr=0.001, warmup_epochs=1, schedule="cosine")
    lrs = [step_lr(config, step, steps_per_epoch=4) for step in range(12)]
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])        # warm-up: 1 epoch
    # then T = 8 steps: eps_min + (eps - eps_min) (1 + cos(pi t / T)) / 2 for t = 0..7
    assert lrs[4] == pytest.approx(0.1)
    assert lrs[8] == pytest.approx(0.001 + 0.099 / 2)                   # halfway: the mean
    assert lrs[11] == pytest.approx(0.001 + 0.099 * (1 + math.cos(math.pi * 7 / 8)) / 2)
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:]))                 # strictly decreasing
    plateau = dataclasses.replace(config, schedule="plateau")
    assert [step_lr(plateau, s, 4) for s in (3, 4, 5)] == pytest.approx([0.1, 0.1, None])
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")


def test_make_optimizer_is_the_papers_sgd_fused():
    """The trainer's fused SGD takes the same steps as PyTorch's plain SGD with Section 5's
    momentum and weight decay (a fused kernel must not change the maths)."""
    config = TrainConfig(lr=0.05)
    fused_model, plain_model = _tiny(), _tiny()
    fused = make_optimizer(fused_model, config, "cpu")
    # Section 5's weight decay on the weights, none on the biases
    plain = torch.optim.SGD(
        [{"params": [p for p in plain_model.parameters() if p.dim() > 1], "weight_decay": 5e-4},
         {"params": [p for p in plain_model.parameters() if p.dim() <= 1], "weight_decay": 0.0}],
        lr=0.05, momentum=0.9, foreach=False)
    assert fused.defaults["fused"] and fused.defaults["momentum"] == 0.9
    assert [g["weight_decay"] for g in fused.param_groups] == [5e-4, 0.0]
    x, y = torch.randn(8, 1, 20, 20), torch.arange(8) % 4
    for model, optimizer in ((fused_model, fused), (plain_model, plain)):
        torch.manual_seed(3)   # the same dropout masks
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(fused_model.parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.equal(fused_model.classifier[1].weight, _tiny().classifier[1].weight)


def test_cosine_schedule_ignores_validation_plateaus(tmp_path):
    config = TrainConfig(epochs=4, batch_size=16, schedule="cosine", min_lr=0, progress=False)
    history = fit(_Constant(), _splits(), config, tmp_path, "cpu")
    # the constant model's validation loss never improves: "plateau" would divide the lr (see
    # above); the cosine goes on: the last step of epoch e (3 steps each) has t = 3e - 1 of T = 12
    expected = [0.01 * (1 + math.cos(math.pi * (3 * e - 1) / 12)) / 2 for e in (1, 2, 3, 4)]
    assert [row["lr"] for row in history] == pytest.approx(expected)


class _Forbidden(torch.utils.data.Dataset):
    def __len__(self):
        raise AssertionError("fit looked at the test split")

    def __getitem__(self, index):
        raise AssertionError("fit looked at the test split")


def test_fit_never_touches_the_test_split(tmp_path):
    splits = _splits(test=_Forbidden())
    history = fit(_tiny(), splits, TrainConfig(epochs=1, **CFG), tmp_path, "cpu")
    assert set(history[0]) >= HISTORY_KEYS
    no_val = _splits()
    no_val.val = no_val.val.subset(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="validation split"):
        fit(_tiny(), no_val, TrainConfig(epochs=1, **CFG), tmp_path / "b", "cpu")


def test_load_or_train_trains_once_then_loads(tmp_path, monkeypatch):
    import alexnet_edu.notebook.pretrained as train_module  # load_or_train's home

    monkeypatch.setattr(train_module, "runs_dir", lambda: tmp_path)
    monkeypatch.setitem(train_module.QUICK, "limit", 48)
    monkeypatch.setitem(train_module.QUICK, "epochs", 1)
    splits = profiles.load_splits("fashion-mnist", limit=48)
    model, checkpoint, how = train_module.load_or_train("fashion-mnist")
    assert "trained a quick model" in how and (tmp_path / "quick" / "fashion-mnist").is_dir()
    assert checkpoint["classes"] == splits.classes and not model.training
    _, again, how = train_module.load_or_train("fashion-mnist")
    assert how.startswith("loaded a quick model") and again["epoch"] == checkpoint["epoch"]
    # a real run (notebook 04's best.pt) wins over the quick one
    save_checkpoint(dict(checkpoint, epoch=30), tmp_path / "fashion-mnist" / "best.pt")
    _, real, how = train_module.load_or_train("fashion-mnist")
    assert "notebook 04" in how and real["epoch"] == 30


def test_load_or_train_trains_again_after_an_interrupted_quick_run(tmp_path, monkeypatch):
    """A quick run stopped in its first epochs (Ctrl-C in notebook 06's set-up) left a best.pt
    that every later notebook reused as 'a quick model trained earlier'."""
    import alexnet_edu.notebook.pretrained as train_module

    monkeypatch.setattr(train_module, "runs_dir", lambda: tmp_path)
    monkeypatch.setitem(train_module.QUICK, "limit", 48)
    monkeypatch.setitem(train_module.QUICK, "epochs", 2)
    _, checkpoint, how = train_module.load_or_train("fashion-mnist")
    run = tmp_path / "quick" / "fashion-mnist"
    history = json.loads((run / "history.json").read_text())
    (run / "history.json").write_text(json.dumps(history[:1]))   # as if stopped after epoch 1
    _, again, how = train_module.load_or_train("fashion-mnist")
    assert how.startswith("trained a quick model") and again["epoch"] == checkpoint["epoch"]
    _, third, how = train_module.load_or_train("fashion-mnist")
    assert how.startswith("loaded a quick model")


def test_model_to_inspect_says_which_model_in_one_line(tmp_path, monkeypatch, capsys):
    """Offline, with no trained STL-10 model: one line naming the quick model and why, not the
    download error's traceback text and a second copy of the training message."""
    import alexnet_edu.notebook.pretrained as pretrained

    def offline(device=None):
        raise RuntimeError("torchvision's ImageNet AlexNet weights are not available "
                           "(URLError: <urlopen error [Errno -3] name resolution>)\nmore")

    monkeypatch.setattr(pretrained, "runs_dir", lambda: tmp_path)
    monkeypatch.setattr(pretrained, "imagenet_alexnet", offline)
    monkeypatch.setitem(pretrained.QUICK, "limit", 48)
    monkeypatch.setitem(pretrained.QUICK, "epochs", 1)
    capsys.readouterr()
    model, _, how = pretrained.model_to_inspect("fashion-mnist", "cpu")
    model_lines = [line for line in capsys.readouterr().out.splitlines()
                   if "quick model" in line or "ImageNet" in line]
    assert model_lines == [f"Model: {how}"] and "URLError" not in how
    assert "trained a quick model" in how and "ImageNet weights are not available here" in how
    assert not model.training


def test_model_to_inspect_shows_imagenet_weights_the_sample_photos(tmp_path, monkeypatch, capsys):
    """Online, in the cpu profile, with neither STL-10 nor its sample: torchvision's ImageNet
    model is shown the six sample photos every install has (07-09 never need STL-10), and
    nothing is downloaded into the data folder."""
    import alexnet_edu.notebook.pretrained as pretrained
    from alexnet_edu.model import AlexNet

    monkeypatch.setattr(pretrained, "runs_dir", lambda: tmp_path / "runs")
    monkeypatch.setattr(pretrained, "data_root", lambda: tmp_path / "data")
    monkeypatch.setattr(pretrained, "stl10_source", lambda: "stl10")   # no sample folder
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "cpu")
    imagenet = AlexNet(num_classes=1000, variant="torchvision", init="pytorch", image_size=224)
    monkeypatch.setattr(pretrained, "imagenet_alexnet",
                        lambda device=None: (imagenet, {"dataset": "imagenet"}))
    _, shown, how = pretrained.model_to_inspect("stl10", "cpu")
    assert shown["dataset"] == "imagenet" and "ImageNet" in how
    images, what = pretrained.images_to_inspect(checkpoint=shown)
    assert len(images) == 6 and "sample photos" in what
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_model_to_inspect_trains_on_fashion_mnist_without_stl10_training_images(
        tmp_path, monkeypatch, capsys):
    """The cpu profile offline, before notebook 04 ran, with no STL-10 training files: the quick
    model is trained on Fashion-MNIST (not a FileNotFoundError for STL-10's train_X.bin)."""
    import alexnet_edu.notebook.pretrained as pretrained
    from alexnet_edu.standin import generate_fashion_mnist

    generate_fashion_mnist(tmp_path / "data", n_train=60, n_test=20, seed=0)
    monkeypatch.setenv("ALEXNET_EDU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "0")
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "cpu")
    monkeypatch.setattr(pretrained, "runs_dir", lambda: tmp_path / "runs")
    monkeypatch.setitem(pretrained.QUICK, "limit", 48)
    monkeypatch.setitem(pretrained.QUICK, "epochs", 1)
    model, checkpoint, how = pretrained.model_to_inspect("stl10", "cpu", pretrained=False)
    assert checkpoint["dataset"] == "fashion-mnist" and model.config["in_channels"] == 1
    assert how.startswith("there are no stl10 training images here, so on Fashion-MNIST")
    assert (tmp_path / "runs" / "quick" / "fashion-mnist" / "best.pt").is_file()
    images, _ = pretrained.images_to_inspect(checkpoint=checkpoint)
    assert images.classes == checkpoint["classes"]          # its own test images


def test_tensorboard_logging_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    fit(_tiny(), _splits(), TrainConfig(epochs=1, tensorboard=True, **CFG), tmp_path, "cpu")
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def _reference_sgd(model: nn.Module, lr: float) -> torch.optim.SGD:
    """PyTorch's plain for-loop SGD with the trainer's groups: the maths without any kernel."""
    return torch.optim.SGD(
        [{"params": [p for p in model.parameters() if p.dim() > 1], "weight_decay": 5e-4},
         {"params": [p for p in model.parameters() if p.dim() <= 1], "weight_decay": 0.0}],
        lr=lr, momentum=0.9, foreach=False)


def test_a_step_the_float16_scaler_skips_leaves_no_trace():
    """Under float16 the GradScaler skips a step whose gradients overflowed. The optimizer must
    then change nothing: fused SGD created its momentum buffer from uninitialised memory there,
    and the next real step added that garbage to every weight."""
    config = TrainConfig(lr=0.05, amp="fp16")
    ours_model, reference_model = _tiny(), _tiny()
    ours, reference = make_optimizer(ours_model, config, "cpu"), _reference_sgd(reference_model,
                                                                                0.05)
    x, y = torch.randn(8, 1, 20, 20), torch.arange(8) % 4
    for model, optimizer in ((ours_model, ours), (reference_model, reference)):
        scaler = torch.amp.GradScaler("cpu")
        torch.manual_seed(3)   # the same dropout masks
        for overflow in (True, False):
            junk = [torch.full((4096,), 3e38) for _ in range(64)]   # freed memory holds junk
            del junk
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y) * (1e38 if overflow else 1.0)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        assert scaler.get_scale() == 65536.0 / 2   # one step was skipped, one taken
    for a, b in zip(ours_model.parameters(), reference_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_fit_in_float16_skips_overflowing_steps_and_matches_plain_sgd(tmp_path, monkeypatch,
                                                                     one_thread):
    """fit with amp='fp16' (loss scaling) on the real AlexNet: its first steps at scale 65,536
    overflow and are skipped; the run still ends finite, with the weights of PyTorch's plain SGD."""
    import alexnet_edu.train as train

    splits = _splits(n_train=32, n_val=16, side=28)
    config = TrainConfig(epochs=1, batch_size=8, amp="fp16", augment=False, progress=False)
    ours = build_model(splits, image_size=67)
    fit(ours, splits, config, tmp_path / "ours", "cpu")
    checkpoint = load_checkpoint(tmp_path / "ours" / "last.pt")
    assert checkpoint["scaler"]["scale"] < 65536.0   # at least one step was skipped
    monkeypatch.setattr(train, "make_optimizer", lambda m, c, d: _reference_sgd(m, c.lr))
    reference = build_model(splits, image_size=67)
    fit(reference, splits, config, tmp_path / "reference", "cpu")
    for a, b in zip(ours.parameters(), reference.parameters()):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_non_finite_loss_under_float16_names_the_overflow(tmp_path):
    """Not only 'lower the learning rate': float16's range is what ran out."""
    model = _tiny()
    with torch.no_grad():
        model.classifier[1].weight.fill_(1e4)   # logits far beyond float16's 65,504
    with pytest.raises(FloatingPointError, match=r"float16.*65,504.*bf16.*amp='off'"):
        fit(model, _splits(), TrainConfig(epochs=1, amp="fp16", **CFG), tmp_path, "cpu")


class _BigWhenEvaluated(Tiny):
    """Finite while training; in evaluation, logits past float16's 65,504 (fine in float32)."""

    def forward(self, x):
        out = super().forward(x)
        return out if self.training else out + 1e5


def test_a_validation_loss_overflowing_float16_names_it(tmp_path):
    """The validation pass runs under the same autocast: its overflow is float16's too."""
    with pytest.raises(FloatingPointError, match=r"validation loss.*float16.*65,504.*amp='off'"):
        fit(_BigWhenEvaluated(), _splits(), TrainConfig(epochs=1, amp="fp16", **CFG), tmp_path,
            "cpu")
    history = fit(_BigWhenEvaluated(), _splits(), TrainConfig(epochs=1, amp="off", **CFG),
                  tmp_path / "fp32", "cpu")
    assert math.isfinite(history[0]["val_loss"])


@pytest.mark.parametrize("before, after", [("off", "fp16"), ("fp16", "off")])
def test_a_resume_keeps_this_runs_optimizer_kernel(tmp_path, monkeypatch, before, after):
    """optimizer.load_state_dict copies the saved groups' `fused` flag: a float16 resume of a
    float32 run must still not step with fused SGD (see make_optimizer), and back."""
    import alexnet_edu.train as train

    fit(_tiny(), _splits(), TrainConfig(epochs=1, amp=before, **CFG), tmp_path, "cpu")
    seen = []
    real = train.train_one_epoch
    monkeypatch.setattr(train, "train_one_epoch", lambda model, loader, optimizer, *rest: (
        seen.append([g["fused"] for g in optimizer.param_groups]),
        real(model, loader, optimizer, *rest))[1])
    fit(_tiny(), _splits(), TrainConfig(epochs=2, amp=after, **CFG), tmp_path, "cpu",
        resume=True)
    assert seen == [[after != "fp16"] * 2]
    saved = load_checkpoint(tmp_path / "last.pt")["optimizer"]["param_groups"]
    assert [g["fused"] for g in saved] == [after != "fp16"] * 2


@pytest.mark.parametrize("before, after", [("off", "fp16"), ("fp16", "off"), ("bf16", "fp16")])
def test_resume_may_change_the_precision(tmp_path, capsys, before, after):
    """--amp may change at a resume: a float16 run after a float32 one starts a fresh loss
    scaler (GradScaler.load_state_dict raised on the empty state of a disabled one)."""
    fit(_tiny(), _splits(), TrainConfig(epochs=1, amp=before, **CFG), tmp_path, "cpu")
    history = fit(_tiny(), _splits(), TrainConfig(epochs=2, amp=after, **CFG), tmp_path, "cpu",
                  resume=True)
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(math.isfinite(row["train_loss"]) for row in history)
    out = capsys.readouterr().out
    assert ("fresh loss scaler" in out) == (after == "fp16")


@pytest.mark.parametrize("before", [True, False])
def test_a_resume_in_the_other_memory_layout_steps_as_a_straight_run(tmp_path, one_thread,
                                                                     before):
    """channels_last may change at a resume (a GPU run, NHWC, continued on a CPU below 128 px,
    NCHW): SGD's momentum, saved in the old layout, must meet each weight in the new one. Fused
    SGD pairs them by place in memory: before the fix, 3 channels in, the resumed weights were
    6e-3 off a straight run (here 1e-8: rounding)."""
    splits, after = _splits(channels=3), not before
    fit(_tiny(in_channels=3), splits, TrainConfig(epochs=1, channels_last=before, **CFG),
        tmp_path / "cut", "cpu")
    fit(_tiny(in_channels=3), splits, TrainConfig(epochs=3, channels_last=after, **CFG),
        tmp_path / "cut", "cpu", resume=True)
    fit(_tiny(in_channels=3), splits, TrainConfig(epochs=3, channels_last=after, **CFG),
        tmp_path / "straight", "cpu")
    resumed, straight = (load_checkpoint(tmp_path / run / "last.pt")["model"]
                         for run in ("cut", "straight"))
    for name, weight in straight.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=1e-6)


def test_ten_crops_need_a_batch_transform():
    """tta=True with a transform that cannot cut ten crops: a message naming what is needed."""
    from alexnet_edu.evaluation import evaluate
    from alexnet_edu.model import AlexNet

    model = AlexNet(num_classes=2, in_channels=1, image_size=67)
    data = (torch.zeros(2, 1, 67, 67, dtype=torch.uint8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="10-crop testing needs a transforms.BatchTransform"):
        evaluate(model, data, torch.nn.Identity(), "cpu", tta=True)


@pytest.mark.parametrize("size, layout", [(67, "nchw"), (131, "nhwc"), (227, "nhwc")])
def test_the_cpu_trains_channels_last_from_128_px_unless_told(size, layout):
    """channels_last=None: NHWC on a CPU only where it measured faster (larger inputs; the cpu
    profile's 67 px stays NCHW); True and False are obeyed at any size."""
    from alexnet_edu.model import AlexNet
    from alexnet_edu.train import _prepare

    def nhwc(channels_last):
        model = AlexNet(num_classes=4, in_channels=3, image_size=size)   # (1 channel: both)
        _prepare(model, TrainConfig(channels_last=channels_last), torch.device("cpu"))
        return model.conv1.weight.is_contiguous(memory_format=torch.channels_last)

    assert nhwc(None) == (layout == "nhwc")
    assert nhwc(True) and not nhwc(False)


def test_resume_refuses_other_validation_images_with_the_same_names(tmp_path):
    """fit(..., resume=True) from a notebook, as the CLI: the same classes but other pixels
    (stand-ins replaced by real files, another seed) would train on, silently, and its
    best.pt be chosen on images the first epochs never saw."""
    def fingerprinted(seed):
        splits = _splits(seed=seed)
        splits.recipe = {"seed": 0, "val": data.split_fingerprint(splits.val)}
        return splits

    fit(_tiny(), fingerprinted(0), TrainConfig(epochs=1, **CFG), tmp_path, "cpu")
    assert load_checkpoint(tmp_path / "last.pt")["split"]["val"] == \
        data.split_fingerprint(_splits(seed=0).val)
    with pytest.raises(ValueError, match="its validation images are not these .it trained on "
                                         "real data of 'tiny'"):
        fit(_tiny(), fingerprinted(1), TrainConfig(epochs=2, **CFG), tmp_path, "cpu", resume=True)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1        # nothing was touched
    history = fit(_tiny(), fingerprinted(0), TrainConfig(epochs=2, **CFG), tmp_path, "cpu",
                  resume=True)                                       # its own images: goes on
    assert [row["epoch"] for row in history] == [1, 2]
    edited = {**load_checkpoint(tmp_path / "last.pt"), "split": "edited"}
    save_checkpoint(edited, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="'split' must be the run's split recipe"):
        fit(_tiny(), fingerprinted(0), TrainConfig(epochs=3, **CFG), tmp_path, "cpu", resume=True)
