"""alexnet_edu.experiments: the measures and verdicts of notebook 10, on hand-made histories
(fast), and one tiny real ablation run through train.fit (same budget, same initial weights)."""

from __future__ import annotations

import pytest
import torch

from alexnet_edu import experiments as ex


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


def test_gap_and_best_val_error():
    h = _history([0.6, 0.95], [0.7, 0.8])
    assert ex.overfitting_gap(h) == pytest.approx(0.15)
    assert ex.best_val_error(h) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="empty"):
        ex.overfitting_gap([])


def test_variants_share_the_paper_run_and_change_one_thing_each():
    runs = ex.variants()
    assert runs["paper"] == {}
    alternatives = {k: v for k, v in runs.items() if k != "paper"}
    assert alternatives == {"tanh": {"activation": "tanh"}, "no LRN": {"lrn": False},
                            "non-overlapping 2/2": {"overlapping_pool": False},
                            "no dropout": {"dropout": 0.0}}


def _histories(relu, tanh, lrn_val, pool_val, gaps):
    paper = _history(relu, [lrn_val[0]] * len(relu))
    paper[-1]["val_acc"] = paper[-1]["train_acc"] - gaps[0]
    nodrop = _history(relu, [lrn_val[0]] * len(relu))
    nodrop[-1]["val_acc"] = nodrop[-1]["train_acc"] - gaps[1]
    return {"paper": paper, "tanh": _history(tanh, [0.5] * len(tanh)),
            "no LRN": _history(relu, [lrn_val[1]] * len(relu)),
            "non-overlapping 2/2": _history(relu, [pool_val] * len(relu)),
            "no dropout": nodrop}


def test_claims_table_verdicts_follow_the_numbers():
    hs = _histories(relu=[0.6, 0.8, 0.9], tanh=[0.4, 0.6, 0.8], lrn_val=(0.80, 0.70),
                    pool_val=0.95, gaps=(0.02, 0.15))
    rows = {r["ablation"]: r for r in ex.claims_table(hs, n_val=10_000)}
    assert rows["activation"]["verdict"] == "held"          # ReLU epoch 2, tanh epoch 3
    assert "1.5x" in rows["activation"]["why"]
    assert rows["lrn"]["verdict"] == "held"                  # 12 % vs 30 % error
    assert rows["pooling"]["verdict"] == "did not hold"      # 12 % vs 5 % error
    assert rows["dropout"]["verdict"] == "held"              # gap 2 vs 15 points
    md = ex.claims_markdown(list(rows.values()))
    assert md.count("\n") == 1 + len(rows) and "**did not hold**" in md


def test_small_differences_on_a_small_validation_set_are_undecided():
    hs = _histories(relu=[0.6, 0.7], tanh=[0.6, 0.7], lrn_val=(0.80, 0.79),
                    pool_val=0.81, gaps=(0.05, 0.06))
    rows = {r["ablation"]: r for r in ex.claims_table(hs, n_val=100)}
    assert rows["activation"]["verdict"] == "undecided"     # neither reached 25 %
    assert rows["lrn"]["verdict"] == "undecided"            # 1 point on 100 images
    assert rows["dropout"]["verdict"] == "undecided"
    # the same one-point difference on a million images is real
    assert {r["ablation"]: r for r in ex.claims_table(hs, n_val=1_000_000)}["lrn"][
        "verdict"] == "held"


def test_plot_has_titles_and_units():
    hs = _histories(relu=[0.6, 0.8], tanh=[0.4, 0.6], lrn_val=(0.8, 0.7), pool_val=0.8,
                    gaps=(0.0, 0.1))
    fig = ex.plot_ablation(ex.PAPER_ABLATIONS[0], hs)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["training error (%)", "validation error (%)"]
    assert "§3.1" in fig._suptitle.get_text()
    lines = fig.axes[0].get_lines()
    assert [round(y, 6) for y in lines[0].get_ydata()] == [40.0, 20.0]   # ReLU: 1 - acc, in %


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
    config = train.TrainConfig(epochs=1, batch_size=12, progress=False, num_workers=0)
    hs = ex.run_ablations(splits, config, 67, tmp_path / "runs",
                          runs={"paper": {}, "no dropout": {"dropout": 0.0}}, device="cpu")
    assert [len(h) for h in hs.values()] == [1, 1]
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
    # three seeds; the paper run's best validation error is 12 % (0.9 - 0.02 at its end), so
    # LRN's advantage is 18, 20, 22 points (clear) and pooling's +1, -1, +3 (noise)
    per_seed = [_histories(relu=[0.6, 0.8, 0.9], tanh=[0.4, 0.6, 0.8], lrn_val=(0.80, 0.70 - d),
                           pool_val=0.88 - p, gaps=(0.02, 0.15))
                for d, p in ((0.0, 0.01), (0.02, -0.01), (0.04, 0.03))]
    rows = {r["ablation"]: r for r in ex.seeds_table(per_seed)}
    lrn = rows["lrn"]
    assert lrn["effects"] == pytest.approx([18.0, 20.0, 22.0])
    assert lrn["mean"] == pytest.approx(20.0) and lrn["sd"] == pytest.approx(2.0)
    assert lrn["verdict"] == "held" and lrn["paper"].startswith("+1.4 points")
    pool = rows["pooling"]
    assert pool["effects"] == pytest.approx([1.0, -1.0, 3.0])
    assert pool["mean"] == pytest.approx(1.0) and pool["sd"] == pytest.approx(2.0)
    assert pool["verdict"] == "undecided"                  # 1 < 4.30 * 2 / sqrt(3)
    assert lrn["bound"] == [""] * 3
    assert rows["activation"]["effects"] == [1.0] * 3      # ReLU epoch 2, tanh epoch 3
    assert rows["dropout"]["effects"] == pytest.approx([13.0] * 3)
    # a run that never reaches the target counts one epoch past its end
    slow = _histories(relu=[0.6, 0.8], tanh=[0.1, 0.2], lrn_val=(0.8, 0.7), pool_val=0.8,
                      gaps=(0.0, 0.0))
    (one,) = [r for r in ex.seeds_table([slow]) if r["ablation"] == "activation"]
    assert one["effects"] == [1.0] and one["sd"] is None and one["verdict"] == "one seed"
    assert one["bound"] == ["≥"]                           # tanh never got there: at least
    assert "≥+1.0 epochs" in ex.seeds_markdown([one])
    # the paper's ReLU never got there, tanh did at epoch 2: the advantage is at most 2 - 4
    late = _histories(relu=[0.1, 0.2, 0.3], tanh=[0.6, 0.8], lrn_val=(0.8, 0.7), pool_val=0.8,
                      gaps=(0.0, 0.0))
    (upper,) = [r for r in ex.seeds_table([late]) if r["ablation"] == "activation"]
    assert upper["effects"] == [-2.0] and upper["bound"] == ["≤"]
    assert "≤-2.0 epochs" in ex.seeds_markdown([upper])
    never = _histories(relu=[0.1, 0.2], tanh=[0.1, 0.2], lrn_val=(0.8, 0.7), pool_val=0.8,
                       gaps=(0.0, 0.0))
    (unknown,) = [r for r in ex.seeds_table([never]) if r["ablation"] == "activation"]
    assert unknown["bound"] == ["?"]
    table = ex.seeds_markdown(list(rows.values()))
    assert "+20.0 ± 2.0" in table and "+18.0, +20.0, +22.0 points" in table
    # Student's t, not 2: with 3 seeds a mean of 4 with sd 2 is inside 4.30 * 2 / sqrt(3) = 4.97
    close = [_histories(relu=[0.6, 0.8, 0.9], tanh=[0.4, 0.6, 0.8], lrn_val=(0.80, 0.70),
                        pool_val=0.88 - p, gaps=(0.02, 0.15)) for p in (0.02, 0.04, 0.06)]
    (pool,) = [r for r in ex.seeds_table(close) if r["ablation"] == "pooling"]
    assert pool["mean"] == pytest.approx(4.0) and pool["verdict"] == "undecided"


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


def test_an_interrupted_run_stops_the_ablations(tmp_path, monkeypatch, capsys):
    """Ctrl-C in one run (fit returns its history so far) must not start the next run: the
    table would then compare a short run with full ones."""
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    from alexnet_edu import data, standin, train

    standin.generate_fashion_mnist(tmp_path, n_train=40, n_test=10, seed=0)
    splits = data.load_splits("fashion-mnist", root=tmp_path, limit=24, download=False)
    config = train.TrainConfig(epochs=3, batch_size=12, progress=False, num_workers=0)
    trained = []

    def interrupted_fit(model, splits, config, run_dir, **kwargs):
        trained.append(run_dir.name)
        return [{"epoch": 1, "train_acc": 0.5, "val_acc": 0.5}]   # 1 of 3 epochs, then Ctrl-C

    monkeypatch.setattr(ex, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        ex.run_ablations(splits, config, 67, tmp_path / "runs",
                         runs={"paper": {}, "tanh": {"activation": "tanh"}}, device="cpu")
    assert trained == ["paper"]
    assert "interrupted after 1 of 3 epoch(s)" in capsys.readouterr().out
