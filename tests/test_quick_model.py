"""The quick model 06-09 train when notebook 04's run is not there (a fresh Colab VM): the
recipe QUICK names (benchmarked: benchmarks/time_to_accuracy.py), shrunk only in smoke."""

from __future__ import annotations

from alexnet_edu.notebook import pretrained


def test_quick_size_is_the_benchmarked_recipe_outside_smoke(monkeypatch):
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "cpu")
    assert pretrained.quick_size() == pretrained.QUICK
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "smoke")
    smoke, quick = pretrained.quick_size(), pretrained.QUICK
    assert smoke["limit"] < quick["limit"] and smoke["epochs"] < quick["epochs"]
    assert smoke["lr"] == quick["lr"] and smoke["schedule"] == quick["schedule"]


def test_load_or_train_trains_with_the_quick_recipe(tmp_path, monkeypatch):
    from alexnet_edu.standin import generate_fashion_mnist

    generate_fashion_mnist(tmp_path / "data", n_train=60, n_test=20)
    monkeypatch.setenv("ALEXNET_EDU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "cpu")
    monkeypatch.setattr(pretrained, "runs_dir", lambda: tmp_path / "runs")
    monkeypatch.setitem(pretrained.QUICK, "epochs", 1)
    seen = []
    fit = pretrained.fit
    monkeypatch.setattr(pretrained, "fit", lambda model, splits, config, run, device: (
        seen.append((config, len(splits.train), model.config["image_size"])),
        fit(model, splits, config, run, device=device)))
    _, checkpoint, how = pretrained.load_or_train("fashion-mnist", "cpu")
    config, n_train, size = seen[0]
    assert (config.lr, config.schedule, config.epochs) == (pretrained.QUICK["lr"], "cosine", 1)
    assert (config.batch_size, config.augment) == (64, False)   # the benchmarked recipe
    assert size == pretrained.QUICK["image_size"]
    assert f"trained a quick model ({n_train:,} images" in how
