"""The command line, run in-process (`main([...])`) on tiny generated data.

Two small models are trained once per module (67 px, a few dozen images, one epoch): enough for
checkpoints with the real format, not for accuracy. What is tested is the plumbing and the
promises of the CLI: checkpoints are written, numbers are consistent, files are preprocessed as
in evaluation, and bad input ends in one clear line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_fixtures import _error_lines, _images, _one_error
from PIL import Image

from alexnet_edu.checkpoint import eval_transform, load_checkpoint, load_model
from alexnet_edu.cli import main
from alexnet_edu.data import FASHION_MNIST_CLASSES, STL10_CLASSES, load_splits
from alexnet_edu.images import read_image_tensor
from alexnet_edu.standin import generate_fashion_mnist, generate_stl10
from alexnet_edu.train import predict

TINY = ["--image-size", "67", "--limit", "32", "--batch-size", "32", "--epochs", "1",
        "--device", "cpu"]


def _train(root: Path, dataset: str, out: Path) -> Path:
    code = main(["train", "--dataset", dataset, "--data-root", str(root), "--out", str(out),
                 *TINY])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_fashion_mnist(root, n_train=80, n_test=40, seed=1)
    generate_stl10(root, n_train=60, n_test=20, seed=1)
    return root


@pytest.fixture(scope="module")
def fm_run(data_root, tmp_path_factory) -> Path:
    """A run folder trained by the CLI on generated Fashion-MNIST."""
    return _train(data_root, "fashion-mnist", tmp_path_factory.mktemp("runs") / "fm")


# --- train ------------------------------------------------------------------------------------

def test_train_writes_checkpoints_the_model_can_be_rebuilt_from(fm_run):
    for name in ("last.pt", "best.pt"):
        checkpoint = load_checkpoint(fm_run / name)
        assert checkpoint["classes"] == FASHION_MNIST_CLASSES
        assert checkpoint["image_size"] == 67 and checkpoint["epoch"] == 1
        assert checkpoint["in_channels_data"] == 1
    model, checkpoint = load_model(fm_run / "best.pt")
    assert model.config["image_size"] == 67 and model.config["num_classes"] == 10
    assert model.config["init"] == "kaiming"  # the trainer's default, not a CLI-only choice
    assert len(checkpoint["history"]) == 1


def test_train_refuses_to_overwrite_a_run_and_resume_needs_one(fm_run, data_root, tmp_path,
                                                               capsys):
    before = (fm_run / "last.pt").stat().st_mtime_ns
    args = ["train", "--dataset", "fashion-mnist", "--data-root", str(data_root), *TINY]
    assert main([*args, "--out", str(fm_run)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in _one_error(err)
    assert (fm_run / "last.pt").stat().st_mtime_ns == before  # nothing lost

    assert main([*args, "--out", str(tmp_path / "new"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "last.pt does not exist" in _one_error(err)


def test_train_schedule_flag_reaches_the_trainer(data_root, tmp_path):
    out = tmp_path / "cosine"
    assert main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root), "--out",
                 str(out), "--image-size", "67", "--limit", "32", "--batch-size", "32",
                 "--epochs", "2", "--device", "cpu", "--schedule", "cosine"]) == 0
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["train_config"]["schedule"] == "cosine"
    # one step per epoch: the cosine's two steps are at t = 0 and t = T / 2
    assert [row["lr"] for row in checkpoint["history"]] == pytest.approx(
        [0.01, 1e-5 + (0.01 - 1e-5) / 2])


def test_train_bad_dataset_and_bad_size_are_clear_errors(tmp_path, capsys):
    assert main(["train", "--dataset", str(tmp_path / "no-such-folder"), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no-such-folder" in _one_error(err)


# --- evaluate ---------------------------------------------------------------------------------

def test_evaluate_json_is_one_consistent_object(fm_run, data_root, capsys):
    code = main(["evaluate", "--checkpoint", str(fm_run / "best.pt"), "--data-root",
                 str(data_root), "--limit", "24", "--json", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)  # stdout is exactly one JSON object (chatter went to stderr)
    assert result["n"] == 24 and result["dataset"] == "fashion-mnist"
    assert 0 <= result["top1"] <= result["top5"] <= 1
    per_class = result["per_class"]
    assert [row["class"] for row in per_class] == FASHION_MNIST_CLASSES
    assert sum(row["support"] for row in per_class) == 24
    # top-1 accuracy = correct / n = sum over classes of recall * support
    correct = sum(row["recall"] * row["support"] for row in per_class)
    assert result["top1"] == pytest.approx(correct / 24, abs=1e-6)


def test_evaluate_test_split_needs_only_the_test_files(fm_run, data_root, tmp_path, capsys):
    """The test split is read from the official test files alone: a machine holding only those
    (no training files) evaluates the same images; the validation split is refused clearly."""
    only_test = tmp_path / "FashionMNIST" / "raw"
    only_test.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(data_root / "FashionMNIST" / "raw" / name, only_test / name)
    results = []
    for root in (data_root, tmp_path):
        code = main(["evaluate", "--checkpoint", str(fm_run / "best.pt"), "--data-root",
                     str(root), "--split", "test", "--json", "--device", "cpu"])
        out, err = capsys.readouterr()
        assert code == 0, err
        results.append(json.loads(out))
    full, test_only = results
    assert test_only["n"] == full["n"] == 32                 # the run's --limit 32
    assert (test_only["top1"], test_only["per_class"]) == (full["top1"], full["per_class"])
    code = main(["evaluate", "--checkpoint", str(fm_run / "best.pt"), "--data-root",
                 str(tmp_path), "--split", "val", "--device", "cpu"])
    _, err = capsys.readouterr()
    # the validation split needs the training files: refused in one line (in smoke mode, as
    # here, because generated stand-ins are not the images the run held out)
    assert code == 2 and _one_error(err)


def test_evaluate_table_with_ten_crops(fm_run, data_root, capsys):
    code = main(["evaluate", "--checkpoint", str(fm_run), "--data-root", str(data_root),
                 "--limit", "12", "--tta", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ten-crop" in out and "top-1 accuracy" in out and "top-5 accuracy" in out
    assert all(name in out for name in FASHION_MNIST_CLASSES)


def test_evaluate_on_a_dataset_with_other_classes_is_refused(fm_run, data_root, capsys):
    code = main(["evaluate", "--checkpoint", str(fm_run / "best.pt"), "--dataset", "stl10",
                 "--data-root", str(data_root), "--limit", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "classes" in _one_error(err)


# --- predict ----------------------------------------------------------------------------------

def _table(out: str) -> dict[str, dict]:
    """Parse predict's table: {path: {"true": class or None, "top": [(class, probability)]}}.
    Columns are left-aligned under their headers, so each starts where its header does."""
    header, *rows = out.splitlines()
    labelled = header.split()[1] == "true"
    starts = [0] + ([header.index("true")] if labelled else []) + [
        m.start() for m in re.finditer(r"top \d+", header)]
    result = {}
    for row in rows:
        if row.startswith("top-1 accuracy"):
            continue
        cells = [row[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        path, true = cells[0], (cells[1] if labelled else None)
        top = []
        for cell in cells[2 if labelled else 1:]:
            name, percent = cell.rsplit(None, 1)
            top.append((name, float(percent.rstrip("%")) / 100))
        result[path] = {"true": None if true == "?" else true, "top": top}
    return result


def test_predict_table_names_true_classes_and_accuracy(fm_run, tmp_path, capsys):
    _images(tmp_path, ["Trouser", "Coat", "holiday"], n=1)   # two class folders, one other
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(fm_run / "best.pt"), "--top-k", "3",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = _table(out)
    assert len(out.splitlines()) == 1 + 3 + 1              # header, a row per image, accuracy
    trues = {Path(p).parent.name: row["true"] for p, row in table.items()}
    assert trues == {"Trouser": "Trouser", "Coat": "Coat", "holiday": None}
    right = sum(row["top"][0][0] == row["true"] for row in table.values() if row["true"])
    assert out.splitlines()[-1].startswith(f"top-1 accuracy: {right / 2:.1%} ({right} of 2 images")
    assert all(len(row["top"]) == 3 for row in table.values())


def test_predict_directory_with_bad_files(fm_run, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    # a colour image of an odd size: converted to grey and resized like the training data
    Image.fromarray(rng.integers(0, 256, (50, 37, 3), dtype=np.uint8)).save(folder / "good.png")
    (folder / "notes.txt").write_text("not an image")
    png = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])

    code = main(["predict", "--checkpoint", str(fm_run / "best.pt"), str(folder)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err, err
    ranked = {path: row["top"] for path, row in _table(out).items()}
    assert list(ranked) == [str(folder / "good.png")]  # the good one, and only it
    top = ranked[str(folder / "good.png")]
    assert len(top) == 5 and {name for name, _ in top} <= set(FASHION_MNIST_CLASSES)
    probabilities = [p for _, p in top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1.0001
    errors = _error_lines(err)
    assert len([e for e in errors if "notes.txt" in e]) == 1
    assert len([e for e in errors if "truncated.png" in e]) == 1
    assert any("not an image" in e for e in errors) and any("truncated" in e for e in errors)


def test_predict_file_matches_evaluation_preprocessing(fm_run, data_root, tmp_path, capsys):
    """A dataset image saved as PNG gets the probabilities the evaluation path gives it."""
    images = load_splits("fashion-mnist", root=data_root, limit=4).test.images
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"test{i}.png")
        Image.fromarray(image[0].numpy(), mode="L").save(paths[-1])
    code = main(["predict", "--checkpoint", str(fm_run / "best.pt"), "--top-k", "10", "--json",
                 *map(str, paths)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    model, checkpoint = load_model(fm_run / "best.pt")
    expected = predict(model, images, eval_transform(checkpoint), "cpu")
    for row, probs in zip(result["predictions"], expected):
        got = {item["class"]: item["probability"] for item in row["top"]}
        assert got == pytest.approx(dict(zip(FASHION_MNIST_CLASSES, probs.tolist())), abs=1e-5)
    assert torch.equal(read_image_tensor(paths[0], 1), images[0])  # lossless round trip


def test_predict_missing_path(fm_run, tmp_path, capsys):
    code = main(["predict", "--checkpoint", str(fm_run / "best.pt"), str(tmp_path / "nope.png")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "nope.png" in err and "does not exist" in err   # images.read_image_tensor's words
    assert "Traceback" not in err, err


@pytest.mark.parametrize("kind", ["torchvision-state-dict", "random-bytes", "truncated",
                                  "missing"])
def test_checkpoint_that_is_not_ours_is_refused(kind, fm_run, tmp_path, capsys):
    import torchvision

    image = tmp_path / "x.png"
    Image.new("L", (30, 30), 128).save(image)
    path = tmp_path / f"{kind}.pt"
    if kind == "torchvision-state-dict":
        torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        data = (fm_run / "best.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    code = main(["predict", "--checkpoint", str(path), str(image)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and path.name in err
    assert "checkpoint" in err


def test_usage_errors_exit_2(capsys):
    assert main(["train"]) == 2                          # --dataset missing
    assert main(["fly"]) == 2                            # no such command
    assert main(["predict", "--checkpoint", "c.pt", "x.png", "--top-k", "many"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_teaches_the_paper_defaults(capsys):
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Section 5" in out and "227" in out and "0.01" in out and "momentum" in out
    assert "(default: paper)" in out and "(default: 1)" in out   # the architecture's defaults
    assert "(default: 0.5, Section 4.2)" in out
    # what --amp auto picks on each kind of device (device.amp_dtype's rule)
    assert all(word in out for word in ("compute capability 8.0+", "AMX", "T4", "float32 on "
                                        "other CPUs and Apple MPS"))
    result = subprocess.run([sys.executable, "-m", "alexnet_edu", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert all(word in result.stdout for word in ("train", "evaluate", "predict"))


# --- real images ------------------------------------------------------------------------------

@pytest.mark.realdata
def test_predict_real_stl10_images(real_stl10_sample, data_root, tmp_path, capsys):
    run = _train(data_root, "stl10", tmp_path / "stl")
    capsys.readouterr()
    files = sorted(real_stl10_sample.rglob("*.png"))
    code = main(["predict", "--checkpoint", str(run / "best.pt"), "--top-k", "3", "--json",
                 str(real_stl10_sample)])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert [Path(row["path"]) for row in result["predictions"]] == files
    for row in result["predictions"]:
        names = [item["class"] for item in row["top"]]
        probabilities = [item["probability"] for item in row["top"]]
        assert len(set(names)) == 3 and set(names) <= set(STL10_CLASSES)
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1


def test_a_run_on_stand_ins_resumes_and_evaluates_on_them_in_any_shell(tmp_path, monkeypatch,
                                                                        capsys):
    """A newcomer offline: --profile smoke alone is an error that names ALEXNET_EDU_SMOKE=1;
    with it the run trains on generated stand-ins, and --resume and the printed evaluate command
    find them again in a shell without it."""
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "0")
    monkeypatch.delenv("ALEXNET_EDU_PROFILE", raising=False)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("ALEXNET_EDU_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    argv = ["train", "--dataset", "fashion-mnist", "--profile", "smoke", "--out", str(out),
            "--limit", "24", "--batch-size", "8", "--device", "cpu"]
    assert main([*argv, "--epochs", "1"]) == 2
    assert "ALEXNET_EDU_SMOKE=1 to try the code" in _one_error(capsys.readouterr().err)
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    assert main([*argv, "--epochs", "1"]) == 0
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "0")
    assert main([*argv, "--epochs", "2", "--resume"]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    said = capsys.readouterr().out
    assert "(generated stand-in data)" in said and "training notebooks" not in said
    evaluate = said.rsplit("Next: ", 1)[1].splitlines()[0].split()
    assert main([*evaluate[1:], "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["synthetic"] is True
    # files appear in the data root later (other images): the run is not resumed on them
    generate_fashion_mnist(tmp_path / "data", n_train=60, n_test=30, seed=7)
    assert main([*argv, "--epochs", "3", "--resume"]) == 2
    assert "its validation images are not these (it trained on generated stand-ins" in \
        _one_error(capsys.readouterr().err)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
