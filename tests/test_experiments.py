"""notebook.experiments: the measures and verdicts of notebook 10, on hand-made histories
(fast), and one tiny real ablation run through train.fit (same budget, same initial weights)."""

from __future__ import annotations

import pytest
import torch

from alexnet_edu.notebook import experiments as ex


def _history(train_acc, val_acc):
    # train_acc_eval: the eval-mode training accuracy the gap uses (run_ablations records it)
    return [{"epoch": i + 1, "train_acc": t, "train_acc_eval": t, "val_acc": v}
            for i, (t, v) in enumerate(zip(train_acc, val_acc))]


def test_epochs_to_error_first_epoch_at_or_below_target():
    h = _history([0.5, 0.75, 0.9], [0.5, 0.7, 0.8])
    assert ex.epochs_to_error(h, 0.25) == 2       # 1 - 0.75 == 0.25: at the target counts
    assert ex.epochs_to_error(h, 0.5) == 1
    assert ex.epochs_to_error(h, 0.05) is None
    assert ex.epochs_to_error([], 0.25) is None


def test_gap_and_val_error_at_the_last_epoch():
    h = _history([0.6, 0.95], [0.8, 0.7])
    assert ex.overfitting_gap(h) == pytest.approx(0.25)
    assert ex.val_error(h) == pytest.approx(0.3)          # the last epoch, not the best
    with pytest.raises(ValueError, match="empty"):
        ex.overfitting_gap([])


def test_variants_share_the_paper_run_and_change_one_thing_each():
    runs = ex.variants()
    assert runs["paper"] == {}
    alternatives = {k: v for k, v in runs.items() if k != "paper"}
    assert alternatives == {"no LRN": {"lrn": False},
                            "non-overlapping 2/2": {"overlapping_pool": False},
                            "no dropout": {"dropout": 0.0}}
    # ReLU vs tanh is Figure 1's small CNN (run_speed), not an AlexNet run
    assert ex.RELU_VS_TANH.measure == "speed" and ex.RELU_VS_TANH not in ex.PAPER_ABLATIONS


def _correct(n, wrong):
    """n images, 0 at the indices in `wrong`, 1 elsewhere."""
    return [0 if i in wrong else 1 for i in range(n)]


def _run(val_wrong, train_wrong=(), n=400, epochs=3, first_loss=2.0):
    """A history whose last epoch got the given validation / training-probe images wrong."""
    h = [{"epoch": i + 1, "train_loss": first_loss if i == 0 else 1.0, "train_acc": 0.9,
          "val_loss": 1.0, "val_acc": 0.5} for i in range(epochs)]
    h[-1].update(val_correct=_correct(n, set(val_wrong)),
                 train_correct=_correct(n, set(train_wrong)),
                 val_acc=1 - len(val_wrong) / n, train_acc_eval=1 - len(train_wrong) / n)
    return h


def test_error_claims_use_mcnemar_on_the_same_images():
    # the same 40 errors plus 30 more without LRN: 30 discordant images, all one way
    paper = _run(range(40), range(10))
    rows = {r["ablation"]: r for r in ex.claims_table(
        {"paper": paper, "no LRN": _run(range(70), range(10)),
         "non-overlapping 2/2": _run(list(range(35)) + list(range(100, 110)), range(10)),
         "no dropout": _run(range(40), range(10))}, n_val=400)}
    lrn = rows["lrn"]
    assert lrn["verdict"] == "held" and "right only with LRN: 30, only without: 0" in lrn["why"]
    assert "McNemar p = 1.9e-09" in lrn["why"]                # 2 * 0.5**30
    assert lrn["measure"] == "validation error at epoch 3 (the last)"
    # 10 images only the paper got right, 5 only 2/2 did: p = 0.30, a 1.2-point difference
    pool = rows["pooling"]
    assert pool["verdict"] == "undecided" and "with overlapping 3/2: 10, only without: 5" in (
        pool["why"]) and "McNemar p = 0.3: within noise" in pool["why"]
    # a difference the unpaired band calls noise is decided when the arms disagree one way:
    # 12 points of 400 images, both near 50 % error, all on images only one of them got wrong
    a, b = _run(range(200)), _run(range(212))
    lrn_only = ex.PAPER_ABLATIONS[:1]
    (row,) = ex.claims_table({"paper": a, "no LRN": b}, 400, lrn_only)
    assert row["verdict"] == "held"
    for h in (a, b):
        del h[-1]["val_correct"]
    (unpaired,) = ex.claims_table({"paper": a, "no LRN": b}, 400, lrn_only)
    assert unpaired["verdict"] == "undecided"                # ±7.1 points unpaired


def test_a_diverged_run_is_not_evidence():
    # notebook 10's stored run without LRN: first-epoch loss 3.79 > ln 10
    blown = _run(range(200), first_loss=3.79)
    assert "3.79 is above ln 10 = 2.30" in ex.diverged(blown)
    assert ex.diverged(_run(range(10))) is None
    assert ex.diverged([{"train_loss": float("nan"), "train_acc": 0.1}]) is not None
    assert ex.diverged(blown, num_classes=100) is None         # ln 100 = 4.6
    # a run that starts above ln 10 and falls is not a blow-up; one that climbs above its start
    # is: the untrained model's loss (run_ablations records it) is the other reference
    started_high = _run(range(10), first_loss=2.9)
    started_high[0]["initial_loss"] = 3.2
    assert ex.diverged(started_high) is None
    started_high[0]["initial_loss"] = 2.6
    assert "above its loss before training, 2.60" in ex.diverged(started_high)
    # notebook 10's stored run without dropout: 2.42 before training, 2.48 over its first
    # epoch (the paper's run: 2.42 -> 2.41). Slow, not blown up: it is evidence
    slow = _run(range(10), first_loss=2.48)
    slow[0]["initial_loss"] = 2.42
    assert ex.diverged(slow) is None
    hs = {"paper": _run(range(40)), "no LRN": blown}
    (row,) = ex.claims_table(hs, 400, ex.PAPER_ABLATIONS[:1])
    assert row["verdict"] == "diverged" and "not evidence" in row["why"]
    # over seeds: the diverged seed is left out and shown as such, never as the paper's effect
    per_seed = [hs, {"paper": _run(range(40)), "no LRN": _run(range(44))},
                {"paper": _run(range(40)), "no LRN": _run(range(48))}]
    (lrn,) = ex.seeds_table(per_seed, ex.PAPER_ABLATIONS[:1])
    assert lrn["effects"][0] is None and lrn["effects"][1:] == pytest.approx([1.0, 2.0])
    assert lrn["mean"] == pytest.approx(1.5)
    table = ex.seeds_markdown([lrn])
    assert "diverged, +1.0, +2.0 points" in table and "+40.0" not in table
    (only,) = ex.seeds_table([hs], ex.PAPER_ABLATIONS[:1])
    assert only["verdict"] == "diverged" and "| – |" in ex.seeds_markdown([only])


def test_the_gap_band_includes_the_noise_of_the_training_probe():
    gap_only = ex.PAPER_ABLATIONS[2:]
    # same validation images right; without dropout 30 more training-probe images right: the
    # gap is 7.5 points larger without dropout
    base = {"paper": _run(range(100), range(60)), "no dropout": _run(range(100), range(30))}
    (row,) = ex.claims_table(base, 400, gap_only)
    assert row["verdict"] == "held" and "paired on 400 training and 400 validation" in row["why"]
    # the same 7.5 points from 90 + 60 discordant probe images, with 50 discordant validation
    # images each way: the validation band alone (±4.9) would call it held; with the probe's
    # noise (±6.0) added it is ±7.7 points
    noisy = {"paper": _run(range(100), range(120)),
             "no dropout": _run(range(50, 150), range(90, 180))}
    (row,) = ex.claims_table(noisy, 400, gap_only)
    assert "gap difference +7.5 ± 7.7 points" in row["why"]
    assert ex.overfitting_gap(noisy["no dropout"]) - ex.overfitting_gap(noisy["paper"]) == (
        pytest.approx(0.075))
    assert row["verdict"] == "undecided" and "within noise" in row["why"]


def test_speed_verdict_needs_an_interval_over_seeds_that_excludes_1():
    def arm(t_reach, epochs=10):
        return [{"epoch": e, "train_loss": 2.0 if e == 1 else 0.5,
                 "train_acc": 0.9 if e >= t_reach else 0.5} for e in range(1, epochs + 1)]

    def result(pairs):
        return {"lr": {"ReLU": 0.03, "tanh": 0.1}, "tuning": {},
                "per_seed": [{"ReLU": arm(a), "tanh": arm(b)} for a, b in pairs]}

    (row,) = ex.speed_rows(result([(2, 6), (2, 7), (3, 7)]))
    assert row["verdict"] == "held" and row["interval"][0] > 1
    assert "lr per arm: ReLU 0.03, tanh 0.1" in row["measure"]
    assert row["paper"] == "ReLU: 2, 2, 3" and row["alternative"] == "tanh: 6, 7, 7"
    # the stored run's situation: one seed, tanh never got there in 8 epochs
    (one,) = ex.speed_rows(result([(8, 11)]))
    assert one["verdict"] == "undecided" and "train longer" in one["why"]
    (single,) = ex.speed_rows(result([(2, 6)]))
    assert single["verdict"] == "one seed" and "between 2.5x and 6.0x" in single["why"]
    # whole epochs: reaching it in epoch 1 could be any time in that epoch, no upper bound
    (first,) = ex.speed_rows(result([(1, 2), (1, 2), (1, 2)]))
    assert first["verdict"] == "undecided" and first["interval"] == (1.0, float("inf"))
    (spread,) = ex.speed_rows(result([(2, 3), (3, 2), (2, 4)]))
    assert spread["verdict"] == "undecided"


def test_exercise_3_as_written_finds_the_paper_run_for_kaiming():
    """Notebook 10's exercise 3: the kaiming arm is the paper run (train.build_model's default),
    so the claims table needs only the new run added to `histories`."""
    init = ex.Ablation("init", "Kaiming initialization learns where N(0, 0.01) does not",
                       ("kaiming", {"init": "kaiming"}), ("N(0, 0.01)", {"init": "paper"}),
                       measure="val_error", section="§5 and notebook 04")
    hs = {"paper": _run(range(100)), "N(0, 0.01)": _run(range(360))}
    (row,) = ex.claims_table(hs, 400, [init])
    assert row["verdict"] == "held" and row["paper"] == "kaiming: 25.0%"
    with pytest.raises(KeyError, match=r"run_ablations\(\.\.\., runs=\{'N\(0, 0.01\)'"):
        ex.claims_table({"paper": hs["paper"]}, 400, [init])


def test_plots_show_what_the_verdicts_use():
    hs = {"paper": _run(range(100), range(60)), "no dropout": _run(range(100), range(30))}
    for h in hs.values():
        for r in h:
            r.setdefault("train_acc_eval", 0.8)
    fig = ex.plot_ablation(ex.PAPER_ABLATIONS[2], hs, n_val=400)
    assert fig.axes[1].get_ylabel() == "train - val accuracy (points)"
    gap_line = fig.axes[1].get_lines()[0]
    assert gap_line.get_ydata()[-1] == pytest.approx(100 * ex.overfitting_gap(hs["paper"]))
    assert "measured per epoch" in fig._suptitle.get_text()
    lrn = ex.plot_ablation(ex.PAPER_ABLATIONS[0], {"paper": _run(range(100)),
                                                   "no LRN": _run(range(120))}, n_val=400)
    assert "compared at the last epoch" in lrn.axes[1].get_title()
    assert [round(y, 6) for y in lrn.axes[1].get_lines()[0].get_ydata()] == [50.0, 50.0, 25.0]


@pytest.mark.parametrize("ablation", ex.PAPER_ABLATIONS, ids=lambda a: a.alternative[0])
def test_ablation_figures_keep_their_text_inside(ablation):
    """The claim's wording in the title is long: every title and label stays in the figure
    (the overlapping-pooling title stuck out of it in one line)."""
    from alexnet_edu.notebook.viz import layout_problems

    hs = {ablation.paper[0]: _run(range(100), range(60)),
          ablation.alternative[0]: _run(range(100), range(30))}
    for h in hs.values():
        for r in h:
            r.setdefault("train_acc_eval", 0.8)
    hs = {"paper": hs[ablation.paper[0]], ablation.alternative[0]: hs[ablation.alternative[0]]}
    assert layout_problems(ex.plot_ablation(ablation, hs, n_val=400)) == []


def test_fixed_schedule_never_cuts_the_learning_rate():
    from alexnet_edu.train import TrainConfig

    assert ex.fixed_schedule(TrainConfig(epochs=8, patience=1)).patience == 8
    assert ex.fixed_schedule(TrainConfig(epochs=8, schedule="cosine")).patience == 2


def test_run_ablations_same_budget_same_start(tmp_path, monkeypatch):
    """Two runs differing only in dropout start from identical weights and get the same number
    of epochs (dropout has no parameters, so every weight agrees at the start)."""
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    from alexnet_edu import data, standin, train

    standin.generate_fashion_mnist(tmp_path, n_train=40, n_test=10, seed=0)
    splits = data.load_splits("fashion-mnist", root=tmp_path, limit=24, download=False)
    built = []
    real_build = train.build_model

    def spy(*args, **kwargs):
        model = real_build(*args, **kwargs)
        built.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(ex, "build_model", spy)
    configs = []
    real_fit = ex.fit

    def fit_spy(model, splits, config, **kwargs):
        configs.append(config)
        return real_fit(model, splits, config, **kwargs)

    monkeypatch.setattr(ex, "fit", fit_spy)
    config = train.TrainConfig(epochs=1, batch_size=12, progress=False, num_workers=0,
                               patience=0)
    hs = ex.run_ablations(splits, config, 67, tmp_path / "runs",
                          runs={"paper": {}, "no dropout": {"dropout": 0.0}}, device="cpu")
    assert [len(h) for h in hs.values()] == [1, 1]
    assert [c.patience for c in configs] == [1, 1]          # one fixed lr: no plateau cut
    last = hs["paper"][-1]
    assert len(last["val_correct"]) == len(splits.val) == len(last["train_correct"])
    assert sum(last["val_correct"]) / len(splits.val) == pytest.approx(last["val_acc"])
    assert sum(last["train_correct"]) / len(splits.val) == pytest.approx(last["train_acc_eval"])
    assert built[0].keys() == built[1].keys()
    assert all(torch.equal(built[0][k], built[1][k]) for k in built[0])
    assert (tmp_path / "runs" / "no-dropout" / "last.pt").exists()
    assert (tmp_path / "runs" / "no-dropout" / "history.json").exists()
    again = ex.run_ablations(splits, config, 67, tmp_path / "slim", runs={"paper": {}},
                             device="cpu", keep_checkpoints=False)
    assert again["paper"][0]["train_loss"] == pytest.approx(hs["paper"][0]["train_loss"], rel=1e-5)
    assert not list((tmp_path / "slim").rglob("*.pt"))
    assert (tmp_path / "slim" / "paper" / "history.json").exists()


def test_run_folder_names_are_portable():
    assert ex.run_folder_name("N(0, 0.01)") == "N-0-0.01"
    assert ex.run_folder_name("non-overlapping 2/2") == "non-overlapping-2-2"
    assert ex.run_folder_name("../..") == "run"


def test_seeds_table_mean_sd_and_verdicts_from_the_per_seed_effects():
    # LRN's advantage 18, 20, 22 points (clear); pooling's +1, -1, +3 (noise); last epoch
    per_seed = [{"paper": _history([0.9, 0.9], [0.8, 0.88]),
                 "no LRN": _history([0.9, 0.9], [0.7, 0.88 - d]),
                 "non-overlapping 2/2": _history([0.9, 0.9], [0.9, 0.88 - p]),
                 "no dropout": _history([0.9, 0.95], [0.8, 0.88])}
                for d, p in ((0.18, 0.01), (0.20, -0.01), (0.22, 0.03))]
    rows = {r["ablation"]: r for r in ex.seeds_table(per_seed)}
    lrn = rows["lrn"]
    assert lrn["effects"] == pytest.approx([18.0, 20.0, 22.0])
    assert lrn["mean"] == pytest.approx(20.0) and lrn["sd"] == pytest.approx(2.0)
    assert lrn["verdict"] == "held" and lrn["paper"].startswith("+1.4 points")
    pool = rows["pooling"]
    assert pool["effects"] == pytest.approx([1.0, -1.0, 3.0])
    assert pool["verdict"] == "undecided"                  # 1 < 4.30 * 2 / sqrt(3)
    assert rows["dropout"]["effects"] == pytest.approx([5.0] * 3)
    table = ex.seeds_markdown(list(rows.values()))
    assert "+20.0 ± 2.0" in table and "+18.0, +20.0, +22.0 points" in table
    (one,) = ex.seeds_table(per_seed[:1], ex.PAPER_ABLATIONS[:1])
    assert one["sd"] is None and one["verdict"] == "one seed"


def test_run_seeds_trains_each_seed_into_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    from alexnet_edu import data, standin, train

    standin.generate_fashion_mnist(tmp_path, n_train=40, n_test=10, seed=0)
    splits = data.load_splits("fashion-mnist", root=tmp_path, limit=24, download=False)
    config = train.TrainConfig(epochs=1, batch_size=12, progress=False, num_workers=0)
    per_seed = ex.run_seeds(splits, config, 67, tmp_path / "runs", seeds=2,
                            runs={"paper": {}}, device="cpu", keep_checkpoints=False)
    assert [(tmp_path / "runs" / f"seed-{s}" / "paper" / "history.json").exists()
            for s in (0, 1)] == [True, True]
    losses = [h["paper"][0]["train_loss"] for h in per_seed]
    assert losses[0] != losses[1]                          # other weights, other batches
    single = ex.run_ablations(splits, config, 67, tmp_path / "one", runs={"paper": {}},
                              device="cpu", keep_checkpoints=False)
    assert single["paper"][0]["train_loss"] == pytest.approx(losses[0], rel=1e-5)   # seed 0


def test_an_interrupted_run_stops_the_ablations(tmp_path, monkeypatch):
    """Ctrl-C in one run (fit says what last.pt holds and re-raises) must not start the next
    run: the table would then compare a short run with full ones."""
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    from alexnet_edu import data, standin, train

    standin.generate_fashion_mnist(tmp_path, n_train=40, n_test=10, seed=0)
    splits = data.load_splits("fashion-mnist", root=tmp_path, limit=24, download=False)
    config = train.TrainConfig(epochs=3, batch_size=12, progress=False, num_workers=0)
    trained = []

    def interrupted_fit(model, splits, config, run_dir, **kwargs):
        trained.append(run_dir.name)
        raise KeyboardInterrupt                                   # in epoch 2 of 3

    monkeypatch.setattr(ex, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        ex.run_ablations(splits, config, 67, tmp_path / "runs",
                         runs={"paper": {}, "tanh": {"activation": "tanh"}}, device="cpu")
    assert trained == ["paper"]
    assert not (tmp_path / "runs" / "paper" / "history.json").exists()   # none of ours


def test_run_speed_tunes_the_lr_per_arm_and_repeats_it_over_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    from alexnet_edu import data, standin, train

    standin.generate_fashion_mnist(tmp_path, n_train=40, n_test=10, seed=0)
    splits = data.load_splits("fashion-mnist", root=tmp_path, limit=24, download=False)
    starts, configs = [], []
    real_fit = ex.fit

    def fit_spy(model, splits, config, **kwargs):
        starts.append([p.detach().clone() for p in model.parameters()])
        configs.append(config)
        return real_fit(model, splits, config, **kwargs)

    monkeypatch.setattr(ex, "fit", fit_spy)
    config = train.TrainConfig(epochs=2, batch_size=12, progress=False, num_workers=0)
    result = ex.run_speed(splits, config, tmp_path / "speed", lrs=(0.01, 0.1), seeds=2,
                          device="cpu")
    assert set(result["lr"]) == {"ReLU", "tanh"} and set(result["tuning"]["tanh"]) == {0.01, 0.1}
    assert len(result["per_seed"]) == 2 and all(len(h) == 2 for r in result["per_seed"]
                                                for h in r.values())
    assert result["per_seed"][0]["tanh"] is result["tuning"]["tanh"][result["lr"]["tanh"]]
    # 2 rates x 2 arms for seed 0, then one run per arm for seed 1
    assert len(configs) == 6
    assert {(c.weight_decay, c.augment, c.patience) for c in configs} == {(0.0, False, 2)}
    assert [c.lr for c in configs[:2]] == [0.01, 0.1]
    # ReLU and tanh start from the same weights (seed 0)
    assert all(torch.equal(a, b) for a, b in zip(starts[0], starts[3]))
    assert all("initial_loss" in h[0] for r in result["per_seed"] for h in r.values())
    assert ex.speed_rows(result)[0]["verdict"] in {"held", "did not hold", "undecided",
                                                   "diverged"}   # 24 images: anything goes
    assert ex.plot_speed(result).axes[0].get_ylabel() == "running training error (%)"


def test_the_speed_claim_is_judged_over_seeds_not_from_two_alexnet_runs():
    h = _history([0.9], [0.8])
    with pytest.raises(ValueError, match="run_speed, speed_rows"):
        ex.claims_table({"paper": h, "ReLU": h, "tanh": h}, 10, [ex.RELU_VS_TANH])
    with pytest.raises(ValueError, match="run_speed, speed_rows"):
        ex.seeds_table([{"paper": h, "tanh": h}], [ex.RELU_VS_TANH])
