"""The command line (`alexnet-edu` or `python -m alexnet_edu`): train an AlexNet, evaluate a
checkpoint, classify your own images, with the functions the notebooks use.

Bad input never ends in a traceback: one line on stderr says what is wrong and what to do, and
the exit code is 2 (argparse's code for usage errors). `predict` reports a bad file and carries on
with the others, then exits with 2 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import os
import shlex
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .checkpoint import (
    MAX_IMAGE_SIZE,
    RECIPE,
    check_fields,
    check_resumable,
    eval_transform,
    load_checkpoint,
    load_model,
)
from .data import DATASETS, folder_dataset, load_splits, load_test_split, split_fingerprint
from .device import pick_device
from .images import image_files, read_image_tensor
from .metrics import per_class_report
from .model import AlexNet
from .profiles import PROFILES, current_profile, profile_named, run_size
from .train import OutOfMemory, TrainConfig, build_model, evaluate, fit, predict, runs_dir

try:
    import fcntl  # POSIX; elsewhere run folders are not locked
except ImportError:   # pragma: no cover (Windows)
    fcntl = None

__all__ = ["main", "build_parser", "BadInput"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130
PROG = "alexnet-edu"
PREDICT_CHUNK = 64  # images read and classified at a time by `predict`


class BadInput(Exception):
    """Something the user gave us is wrong; the message says what and how to fix it."""


def _error(message: Any) -> None:
    """One line on stderr (newlines inside library messages folded, control characters escaped)."""
    print(f"{PROG}: error: {_printable(' '.join(str(message).split()))}", file=sys.stderr)


def _printable(text: Any) -> str:
    """`text` with non-printable characters escaped: no fake lines, no cursor moves."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def _shell_word(word: Any) -> str:
    """`word` quoted for a POSIX shell on one line: shlex.quote, or bash's $'...' where the word
    holds a newline or another control character (which shlex.quote would print raw)."""
    word = str(word)
    if word.isprintable():
        return shlex.quote(word)
    escapes = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return "$'" + "".join(escapes.get(c) or (c if c.isprintable() else
                                             f"\\x{ord(c):02x}" if ord(c) < 0x80 else
                                             f"\\U{ord(c):08x}") for c in word) + "'"


def _command(words: Sequence[Any], as_run_now: bool = True) -> str:
    """The `alexnet-edu` command line with `words` on one line, each word quoted; `as_run_now`:
    started as this process was (under torchrun, with its process count)."""
    start = distributed.command_prefix(PROG) if as_run_now else PROG
    return " ".join([start, *map(_shell_word, words)])


def _json(value: Any) -> str:
    """Strict JSON: non-finite floats (json.dumps's invalid NaN, Infinity) become null."""
    return json.dumps(json.loads(json.dumps(value), parse_constant=lambda _: None))


def _first_line(err: BaseException, limit: int = 300) -> str:
    lines = str(err).strip().splitlines()
    if lines and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        # raised in a DataLoader worker (a bad file of a folder read from disk): the worker's
        # own message, which names the file, is the traceback's last line
        lines = [lines[-1].split(": ", 1)[-1]]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# What the user names, loaded (each raises BadInput saying what to do) -----------------------------
def _pick_device(name: str | None, verbose: bool = True) -> torch.device:
    try:
        return pick_device(name, verbose=verbose)
    except (ValueError, RuntimeError) as err:
        raise BadInput(f"--device {name}: {_first_line(err)}") from None


def _load_splits(dataset: str, data_root: str | None, limit: int | None, seed: int = 0,
                 val_fraction: float = 0.1):
    try:
        return load_splits(dataset, root=data_root, limit=limit, seed=seed,
                           val_fraction=val_fraction)
    except (OSError, ValueError, RuntimeError) as err:   # missing, damaged or read-only data
        raise BadInput(f"dataset {dataset!r}: {err}") from None


def _resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file; a run directory stands for its best.pt (else last.pt)."""
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("best.pt", "last.pt") if (path / n).is_file()),
                    path / "best.pt")
    if not path.exists():
        raise BadInput(f"checkpoint {path} does not exist; train one with "
                       "`alexnet-edu train --dataset ... --out RUN_DIR`, then pass RUN_DIR/best.pt")
    return path


def _load_model(path: str | Path, device: torch.device) -> tuple[AlexNet, dict]:
    """(model in eval mode, checkpoint dict), or BadInput for anything that is not ours."""
    path = _resolve_checkpoint(path)
    hint = "pass a best.pt/last.pt written by `alexnet-edu train`"
    try:   # load_checkpoint and check_fields say which field or format is wrong
        return load_model(path, device=device)
    except Exception as err:  # whatever is wrong, it is the file's fault here
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
            raise BadInput(f"{path} is not a PyTorch checkpoint (not the zip archive torch.save "
                           f"writes: another kind of file, or truncated); {hint}") from None
        if isinstance(err, ValueError):   # names the file, the field and what to do
            raise BadInput(_first_line(err, limit=500)) from None
        raise BadInput(f"{path} is not a usable checkpoint ({type(err).__name__}: "
                       f"{_first_line(err)}); {hint}") from None


def _inputs(names: Sequence[str]) -> Iterator[tuple[Path, str | None]]:
    """(path, None) per file to classify, (path, error) per unusable path. A directory gives all
    its files: a non-image among them is reported, not silently skipped."""
    for path in map(Path, names):
        if path.is_dir():
            files = image_files(path, extensions=None)
            if not files:
                yield path, f"{path}: directory holds no files"
            yield from ((file, None) for file in files)
        else:
            yield path, None if path.exists() else f"{path}: no such file or directory"


# train -------------------------------------------------------------------------------------------
def _train_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> TrainConfig:
    """The trainer's defaults (or `base`, a profile's or a resumed run's), with the flags given."""
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "momentum": args.momentum, "weight_decay": args.weight_decay, "amp": args.amp,
             "channels_last": args.channels_last, "num_workers": args.workers,
             "seed": args.seed, "augment": False if args.no_augment else None,
             "schedule": args.schedule, "tensorboard": True if args.tensorboard else None}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in (base or {}).items() if k in fields}
    values.update({k: v for k, v in given.items() if v is not None and k in fields})
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as err:
        raise BadInput(_first_line(err)) from None


def _hold(run_dir: Path, lock) -> None:
    """Lock the run folder (or BadInput naming the holder); remove dead saves' temporary files."""
    if fcntl is not None:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip()
            raise BadInput(f"{run_dir} is in use by another `{PROG} train`"
                           + (f" (process {holder})" if holder.isdigit() else "")
                           + "; wait for it to finish, or choose another --out") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
    for stale in [*run_dir.glob(".last.pt.tmp*"), *run_dir.glob(".best.pt.tmp*")]:
        pid = stale.name.rpartition(".tmp")[2]   # a live process's (a notebook's fit?) stays
        if not (pid.isdigit() and int(pid) != os.getpid() and _process_exists(int(pid))):
            with contextlib.suppress(OSError):
                stale.unlink()


@contextlib.contextmanager
def _run_folder(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for one run: create it, check that files can be written there, lock it
    against a second `train` (RUN_DIR/.lock); a folder created here and left empty is removed."""
    created = not run_dir.exists()
    probe = run_dir / f".write-test{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        lock = open(run_dir / ".lock", "a+")   # held until the run ends
    except OSError as err:
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise BadInput(f"--out {run_dir}: cannot write there ({err.strerror or err}); choose a "
                       "folder you may write to") from None
    try:
        _hold(run_dir, lock)
        yield
    finally:
        lock.close()   # releases the lock
        with contextlib.suppress(OSError):
            if created and [p.name for p in run_dir.iterdir()] == [".lock"]:
                (run_dir / ".lock").unlink()
                run_dir.rmdir()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # e.g. PermissionError: it exists, under another user
        return True
    return True


def _identity_conflicts(args: argparse.Namespace, checkpoint: dict) -> list[str]:
    """The flags given to `train --resume` that differ from the run's architecture, data or
    recipe (`checkpoint.RECIPE`, the fields a resumed run keeps, where a flag sets them)."""
    config, split = checkpoint.get("model_config") or {}, checkpoint.get("split") or {}
    recipe = checkpoint.get("train_config") or {}
    asked = [  # (flag, value given, where the run records it, key, how to show the run's value)
        *((f"--{k.replace('_', '-')} {getattr(args, k)}", getattr(args, k), config, k, str)
          for k in ("image_size", "variant", "groups", "dropout", "init")),
        ("--no-lrn", False if args.no_lrn else None, config, "lrn", lambda run: "LRN on"),
        ("--rgb", 3 if args.rgb else None, config, "in_channels", "{} input channel(s)".format),
        (f"--limit {args.limit}", args.limit, split, "limit",
         lambda run: "all images" if run is None else run),
        *((f"--{k.replace('_', '-')} {getattr(args, k)}", getattr(args, k), recipe, k, str)
          for k in RECIPE if hasattr(args, k)),   # seed, lr, momentum, batch size, ...
        ("--no-augment", False if args.no_augment else None, recipe, "augment",
         lambda run: "augmentation on")]
    return [f"{flag} differs from the run's {shown(recorded[key])}"
            for flag, value, recorded, key, shown in asked
            if value is not None and key in recorded and value != recorded[key]]


def _resumed(args: argparse.Namespace, last: Path) -> dict:
    """The run's last.pt, once no flag given would change the run's identity."""
    try:
        checkpoint = load_checkpoint(last)
        check_fields(checkpoint, last)
        check_resumable(checkpoint, last)
    except ValueError as err:   # names the file, what is wrong with it and what to do
        raise BadInput(f"--resume: {_first_line(err, limit=500)}") from None
    except Exception as err:
        raise BadInput(f"--resume: {last} is not a usable checkpoint ({type(err).__name__}: "
                       f"{_first_line(err)}); start a new run in another --out") from None
    conflicts = _identity_conflicts(args, checkpoint)
    if conflicts:
        raise BadInput(f"--resume: {'; '.join(conflicts)}: a resumed run keeps its architecture, "
                       "images and recipe (drop the flag, or start a new run in another --out)")
    return checkpoint


def _run_sizes(args: argparse.Namespace, name: str,
               resumed: dict | None) -> tuple[int | None, int | None, dict]:
    """(limit, image size, recipe): a resumed run's own, else the profile's, below the flags."""
    if resumed is not None:
        limit = args.limit if args.limit is not None else (resumed.get("split") or {}).get("limit")
        return limit, args.image_size, resumed.get("train_config") or {}
    try:
        size = run_size(name if name in DATASETS else "stl10", args.profile, limit=args.limit,
                        image_size=args.image_size)
    except ValueError as err:
        raise BadInput(_first_line(err)) from None
    print(f"Profile {args.profile or current_profile().name}: {size.describe()} "
          "(flags override it; --profile smoke|cpu|full picks another)")
    return size.limit, size.image_size, {"epochs": size.epochs, "batch_size": size.batch_size,
                                         "lr": size.lr, "patience": size.patience}


def _model(args: argparse.Namespace, splits, resumed: dict | None, image_size: int | None,
           seed: int) -> AlexNet:
    chosen = {"variant": args.variant, "groups": args.groups, "dropout": args.dropout,
              "init": args.init, "lrn": False if args.no_lrn else None,
              "in_channels": 3 if args.rgb else None}
    try:
        if resumed is not None:
            return AlexNet(**resumed["model_config"])
        return build_model(splits, image_size=image_size, seed=seed,
                           **{k: v for k, v in chosen.items() if v is not None})
    except (ValueError, TypeError) as err:
        raise BadInput(_first_line(err)) from None


def cmd_train(args: argparse.Namespace) -> int:
    """Train on a dataset; checkpoints go to RUN_DIR/last.pt and RUN_DIR/best.pt."""
    name = Path(args.dataset).name if Path(args.dataset).is_dir() else args.dataset
    run_dir = Path(args.out) if args.out else runs_dir() / name
    args.run_dir = run_dir   # an interrupt says what it holds
    if args.resume and not (run_dir / "last.pt").is_file():
        raise BadInput(f"--resume: {run_dir / 'last.pt'} does not exist; start the run without "
                       "--resume")
    if args.image_size is not None and args.image_size > MAX_IMAGE_SIZE:
        raise BadInput(f"--image-size {args.image_size} is beyond the largest input this trainer "
                       f"takes ({MAX_IMAGE_SIZE} px; the paper's is 227)")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise BadInput(f"--lr must be a positive finite number, got {args.lr}")
    device = distributed.start(args.device)   # under torchrun: this process's device
    if not distributed.is_main():  # data-parallel: rank 0 holds the folder and speaks for all
        with (open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet),
              contextlib.redirect_stderr(quiet)):   # its errors still reach main's handler
            return _train(args, name, run_dir, device)
    with _run_folder(run_dir):
        return _train(args, name, run_dir, device)


def _train(args: argparse.Namespace, name: str, run_dir: Path,
           device: torch.device | None) -> int:
    """cmd_train in a run folder it holds (see _run_folder); `device` None: --device's."""
    last = run_dir / "last.pt"
    if not args.resume and last.exists():
        raise BadInput(f"{run_dir} already holds a run (last.pt); pass --resume to continue it, "
                       "or choose another --out, so that nothing is overwritten")
    resumed = _resumed(args, last) if args.resume else None
    limit, image_size, base = _run_sizes(args, name, resumed)
    config = _train_config(args, base)
    device = device or _pick_device(args.device)
    splits = _load_splits(args.dataset, args.data_root, limit, seed=config.seed)
    model = _model(args, splits, resumed, image_size, config.seed)
    c = model.config
    print(f"AlexNet ({c['variant']}, {c['image_size']} px, {c['in_channels']} channel(s), "
          f"{c['num_classes']} classes, init {c['init']}, LRN {'on' if c['lrn'] else 'off'}) on "
          f"{splits.name} ({'generated stand-in' if splits.synthetic else 'real'} data); batch "
          f"{config.batch_size}, lr {config.lr}, {config.epochs} epochs")
    try:
        history = fit(model, splits, config, run_dir, device=device, resume=args.resume)
    except (ValueError, FloatingPointError, OutOfMemory) as err:  # fit's messages say what to do
        raise BadInput(_first_line(err)) from None
    except OSError as err:   # a checkpoint that cannot be written (full disk): the last one stays
        raise BadInput(err.strerror or _first_line(err)) from None
    if len(history) < config.epochs:   # Ctrl-C: fit saved what there was to save and returned
        _say_interrupted(args, f"after {len(history)} of {config.epochs} epoch(s)")
        return EXIT_INTERRUPTED
    if history:
        best = max(history, key=lambda row: row["val_acc"])
        print(f"Done: {len(history)} epoch(s); best validation accuracy {best['val_acc']:.4f} "
              f"(epoch {best['epoch']})")
    checkpoint = run_dir / "best.pt" if (run_dir / "best.pt").exists() else last
    evaluate_it = (["evaluate", "--checkpoint", checkpoint]
                   + (["--dataset", args.dataset] if Path(args.dataset).is_dir() else [])
                   + (["--data-root", args.data_root] if args.data_root else []))
    print(f"Checkpoint: {_shell_word(checkpoint)}\nNext: {_command(evaluate_it, False)}")
    return EXIT_OK


def _say_interrupted(args: argparse.Namespace, when: str = "") -> None:
    """What an interrupted `train` left (by rank 0 only) and the command that goes on from it:
    --resume where the run folder holds a last.pt, else the same command."""
    run_dir = getattr(args, "run_dir", None)
    if run_dir is None or not distributed.is_main():
        _error("interrupted")
        return
    last = run_dir / "last.pt"
    if last.is_file():
        again = args.argv + ([] if args.resume else ["--resume"])   # the same flags
        text = (f"Interrupted {when or 'before training went on'}; {_shell_word(last)} holds "
                f"the run. Continue it exactly with: {_command(again)}")
    else:
        stage = "before the first batch finished" if when else "before training started"
        text = f"Interrupted {stage}: nothing was saved. Start again with: {_command(args.argv)}"
    print(text, file=sys.stderr)


# evaluate ----------------------------------------------------------------------------------------
def _held_out(args: argparse.Namespace, checkpoint: dict):
    """(dataset name, synthetic, the split to evaluate), rebuilt with the run's own seed,
    fraction and limit: another seed would put images the model trained on into "test". The
    test split is read without the training files where the dataset keeps them apart."""
    if args.split == "all":
        return _independent(args, checkpoint)
    dataset = args.dataset or checkpoint["dataset"]
    if args.dataset is None and dataset not in DATASETS and not Path(dataset).is_dir():
        raise BadInput(f"the checkpoint was trained on an image folder called {dataset!r}; "
                       "pass its path with --dataset")
    recipe = checkpoint.get("split") or {}
    if args.split == "test":
        try:
            split, synthetic = load_test_split(dataset, args.data_root, recipe.get("seed", 0),
                                               recipe.get("limit"))
        except (OSError, ValueError, RuntimeError) as err:
            raise BadInput(f"dataset {dataset!r}: {err}") from None
        found = list(split.classes)
    else:
        splits = _load_splits(dataset, args.data_root, recipe.get("limit"),
                              seed=recipe.get("seed", 0),
                              val_fraction=recipe.get("val_fraction", 0.1))
        split, synthetic, found = getattr(splits, args.split), splits.synthetic, splits.classes
    classes = list(checkpoint["classes"])
    if list(found) != classes:
        raise BadInput(f"the checkpoint was trained on the classes {classes}, but {dataset!r} "
                       f"has {list(found)}: evaluate it on the dataset it learned")
    if len(split) == 0:
        raise BadInput(f"the {args.split} split of {dataset!r} is empty")
    if args.split != "train" and recipe.get(args.split) is None:
        print(f"warning: {args.checkpoint} does not record which images its run held out "
              f"(an older or foreign checkpoint): the {args.split} split cannot be checked "
              "for images the model trained on", file=sys.stderr)
    elif args.split != "train" and split_fingerprint(split) != recipe[args.split]:
        raise BadInput(f"the {args.split} split of {dataset!r} rebuilt with the run's seed "
                       f"{recipe.get('seed')} is not the one the run held out (its files "
                       "changed, or --data-root points at other data): evaluating it could "
                       "count images the model trained on; use the data it was trained on")
    if args.limit is not None:   # a subset of the held-out split, never a redrawn one
        split = split.subset(torch.arange(min(args.limit, len(split))))
    return dataset, synthetic, split


def _independent(args: argparse.Namespace, checkpoint: dict):
    """(dataset name, synthetic, every image of it): `--split all`, an independent labelled test
    set the user names, scored whole. Nothing shows that none of its images were among the
    run's training images, and the output says so; only its classes are checked."""
    if args.dataset is None:
        raise BadInput("--split all scores every image of data you name: pass --dataset FOLDER "
                       "(one sub-folder of images per class), or a dataset name with "
                       "--data-root; the run's own held-out images are --split test")
    try:
        if Path(args.dataset).is_dir():   # every image below its class folders
            split, synthetic = folder_dataset(args.dataset), False
        else:   # a named dataset: all its test files (its training files are what runs learn)
            split, synthetic = load_test_split(args.dataset, args.data_root)
    except (OSError, ValueError, RuntimeError) as err:
        raise BadInput(f"dataset {args.dataset!r}: {_first_line(err)}") from None
    classes = list(checkpoint["classes"])
    if list(split.classes) != classes:
        raise BadInput(f"the checkpoint was trained on the classes {classes}, but "
                       f"{args.dataset!r} has {list(split.classes)}: a test set must have the "
                       "same classes (one sub-folder per class, named as in training)")
    if len(split) == 0:
        raise BadInput(f"{args.dataset!r} holds no images")
    print(f"note: --split all scores all {len(split)} images of {_printable(args.dataset)} as "
          "an independent test set: no split protection applies (nothing checks that the run "
          "did not train on any of them; if it did, the accuracy is too high)", file=sys.stderr)
    if args.limit is not None:
        split = split.subset(torch.arange(min(args.limit, len(split))))
    return str(args.dataset), synthetic, split


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Top-1/top-5 accuracy and a per-class precision/recall/F1 table on one split."""
    stdout = sys.stdout   # with --json it carries one JSON object: all chatter goes to stderr
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        device = _pick_device(args.device)
        model, checkpoint = _load_model(args.checkpoint, device)
        dataset, synthetic, split = _held_out(args, checkpoint)
        tta = {None: False, "ten": True, "flip": "flip"}[args.tta]
        result = evaluate(model, split, eval_transform(checkpoint), device, tta=tta)
        classes = list(checkpoint["classes"])   # escaped in text; json.dumps escapes its own
        report = per_class_report(result["predictions"], result["targets"],
                                  classes if args.json else [_printable(c) for c in classes])
    top5 = result["top5"]  # None with fewer than 5 classes
    per_class = [{"class": r["cls"], **{k: r[k] for k in ("precision", "recall", "f1", "support")}}
                 for r in report.rows()]
    summary = {"checkpoint": str(_resolve_checkpoint(args.checkpoint)), "dataset": dataset,
               "split": args.split, "n": int(result["n"]), "tta": args.tta,
               "synthetic": bool(synthetic), "loss": float(result["loss"]),
               "top1": float(result["top1"]), "top5": None if top5 is None else float(top5),
               "macro_f1": report.macro_f1, "per_class": per_class}
    if args.json:
        print(_json(summary), file=stdout)
        return EXIT_OK
    how = {None: "one centre view", "ten": "ten-crop averaged (Section 4.1)",
           "flip": "the centre view and its mirror image, averaged"}[args.tta]
    stand_in = " (generated stand-in data)" if synthetic else ""
    print(f"{_printable(dataset)}{stand_in}, {args.split} split: {summary['n']} images, {how}")
    line = f"top-1 accuracy {summary['top1']:.4f} (error {1 - summary['top1']:.4f})"
    if top5 is not None:
        line += f"   top-5 accuracy {summary['top5']:.4f} (error {1 - summary['top5']:.4f})"
    print(line + f"   loss {summary['loss']:.4f}\n")
    print(report.table())
    return EXIT_OK


# predict -----------------------------------------------------------------------------------------
def _probabilities(model: AlexNet, images: list[tuple[Path, torch.Tensor]], transform,
                   device: torch.device) -> dict[Path, torch.Tensor]:
    """Class probabilities per file; images of one size go through the network together."""
    out: dict[Path, torch.Tensor] = {}
    for shape in dict.fromkeys(image.shape for _, image in images):
        same = [(path, image) for path, image in images if image.shape == shape]
        batch = torch.stack([image for _, image in same])
        out.update(zip([path for path, _ in same], predict(model, batch, transform, device)))
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    """The top-k classes and their probabilities for each image: a table, one row per image."""
    device = _pick_device(args.device, verbose=False)
    model, checkpoint = _load_model(args.checkpoint, device)
    transform = eval_transform(checkpoint).to(device)
    classes = list(checkpoint["classes"])
    channels = int(checkpoint.get("in_channels_data", model.config["in_channels"]))
    # large files are shrunk as they are read, so that a chunk of photos stays small
    shorter_side = 2 * max(transform.resize_size, transform.image_size)
    k = min(args.top_k, len(classes))
    failed, results, inputs = 0, [], _inputs(args.images)
    while chunk := list(itertools.islice(inputs, PREDICT_CHUNK)):
        good: list[tuple[Path, torch.Tensor]] = []
        for path, problem in chunk:
            if problem is None:
                try:
                    good.append((path, read_image_tensor(path, channels, shorter_side)))
                    continue
                except (FileNotFoundError, ValueError) as err:  # a DataFileError names the file
                    problem = _first_line(err)
            _error(problem)
            failed += 1
        probabilities = _probabilities(model, good, transform, device)
        for path, _ in good:
            top = torch.topk(probabilities[path], k)
            results.append({
                "path": str(path),
                # an image in a folder named after a class (the image-folder layout) has a label
                "true": path.parent.name if path.parent.name in classes else None,
                "top": [{"class": classes[i], "probability": p}
                        for p, i in zip(top.values.tolist(), top.indices.tolist())]})
    if args.json:
        print(_json({"predictions": results, "failed": failed}))
    elif results:
        print(_prediction_table(results, k))
    if failed:
        _error(f"{failed} of {failed + len(results)} inputs could not be classified (see above)")
    return EXIT_BAD_INPUT if failed else EXIT_OK


def _prediction_table(results: list[dict], k: int) -> str:
    """One row per image: file, the true class where its folder names one, the top k; then the
    accuracy over the labelled images. Names are escaped, so none can print a line of its own."""
    labelled = [row for row in results if row["true"] is not None]
    header = ["file"] + (["true"] if labelled else []) + [f"top {r}" for r in range(1, k + 1)]
    rows = [[_printable(row["path"])] + ([_printable(row["true"] or "?")] if labelled else [])
            + [f"{_printable(t['class'])} {t['probability']:.1%}" for t in row["top"]]
            for row in results]
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    if labelled:
        right = sum(row["top"][0]["class"] == row["true"] for row in labelled)
        lines.append(f"top-1 accuracy: {right / len(labelled):.1%} ({right} of {len(labelled)} "
                     f"images whose folder names a class)")
    return "\n".join(lines)


# The parser --------------------------------------------------------------------------------------
FORMAT = argparse.RawDescriptionHelpFormatter
DATASET_HELP = ("fashion-mnist (28x28 grey, 10 classes), stl10 (96x96 colour, 10 classes), or "
                "a folder with one sub-folder of images per class")
CHECKPOINT_HELP = "a best.pt/last.pt from `train` (or its run folder)"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _in_range(low: float, high: float, what: str):
    """An argparse type: a finite float in [low, high) (NaN is refused: it fails every test)."""
    def parse(text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and low <= value < high):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {2**32 - 1} (NumPy's "
                                         f"generator takes no other), got {text}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", metavar="D", default=None,
                   help="cpu, cuda, cuda:1, mps (default: a GPU if there is one, else cpu)")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="where datasets live (default: $ALEXNET_EDU_DATA, else ./data)")


def _add_train(commands) -> None:
    t = commands.add_parser(
        "train", formatter_class=FORMAT, help="train an AlexNet from scratch",
        description="Train AlexNet from scratch with the paper's recipe (Section 5): SGD with "
                    "momentum 0.9, weight decay 5e-4, batch 128, learning rate 0.01 divided by "
                    "10 when the validation error stops improving; random crops, flips and PCA "
                    "colour noise (Section 4.1); dropout 0.5 (Section 4.2). Each epoch writes "
                    "RUN_DIR/last.pt (and best.pt on a new best validation accuracy); Ctrl-C "
                    "saves and stops; --resume continues exactly where it stopped.",
        epilog=f"example:\n  {PROG} train --dataset fashion-mnist --image-size 67 --limit 600 "
               "--epochs 2 --out runs/try")
    defaults = TrainConfig()
    add = t.add_argument
    add("--dataset", required=True, metavar="NAME_OR_DIR", help=DATASET_HELP)
    add("--out", metavar="RUN_DIR", help="run folder for checkpoints (default: runs/<dataset>)")
    add("--resume", action="store_true", help="continue the run in RUN_DIR exactly from last.pt "
        "(flags that would change its architecture, images or recipe are refused)")
    add("--profile", choices=PROFILES, help="run size: smoke (a quick check), cpu (67 px, ~10 min "
        "on 2 cores), full (227 px, all images) (default: full on a CUDA GPU, else cpu)")
    add("--epochs", type=_positive_int, metavar="N", help="passes over the training set "
        "(default: the profile's)")
    add("--limit", type=_positive_int, metavar="N",
        help="use at most N images per split (default: the profile's)")
    add("--batch-size", type=_positive_int, metavar="B",
        help=f"images per SGD step (default: {defaults.batch_size}; the paper: 128)")
    add("--lr", type=float, metavar="LR", help="initial learning rate (default: the profile's: "
        "0.01 in full, the paper's; 0.02 in cpu)")
    add("--schedule", choices=("plateau", "cosine"), help="plateau (default): the paper's lr / "
        "10 when the validation error stops improving; cosine: down to min_lr over --epochs")
    add("--momentum", type=_in_range(0, 1, "a number from 0 to below 1"), metavar="M",
        help=f"SGD momentum (default: {defaults.momentum}; the paper: 0.9)")
    add("--weight-decay", type=_in_range(0, 1, "a number from 0 to below 1"), metavar="WD",
        help=f"L2 weight decay (default: {defaults.weight_decay}; the paper: 5e-4)")
    add("--amp", choices=("auto", "bf16", "fp16", "off"), help="mixed precision. auto (the "
        "default): bfloat16 on NVIDIA GPUs of compute capability 8.0 or newer (A100, H100, "
        "RTX 30xx/40xx, L4); float16 with loss scaling on older ones (T4, V100, P100); "
        "bfloat16 on CPUs with AMX matrix units (recent Intel Xeon); float32 on other CPUs "
        "and on Apple's MPS. May change at --resume")
    add("--channels-last", action=argparse.BooleanOptionalAction,
        help="NHWC memory layout (default: on CUDA only)")
    add("--no-augment", action="store_true", help="no random crops, flips, PCA noise")
    add("--workers", type=int, metavar="W", help="DataLoader worker processes")
    add("--tensorboard", action="store_true", help="also log to RUN_DIR/tensorboard")
    add("--seed", type=_seed, metavar="S", help=f"random seed (default: {defaults.seed})")
    # architecture flags default to None, so --resume tells a flag given from one left out
    add("--image-size", type=_positive_int, metavar="S", help="side of the square input "
        "(default: the profile's: 227 in full, the paper's; 67, the smallest it takes, else)")
    add("--init", choices=("paper", "kaiming", "pytorch"), help="weight initialization (default: "
        "kaiming; paper = Section 5's N(0, 0.01), tuned for raw 0-255 pixels)")
    add("--no-lrn", action="store_true", help="leave out Local Response Normalization")
    add("--variant", choices=("paper", "torchvision"), help="paper: 96-256-384-384-256 kernels "
        "with LRN (Figure 2); torchvision: 64-192-384-256-256, no LRN (default: paper)")
    add("--groups", type=int, choices=(1, 2), help="2 splits conv2, conv4 and conv5 into the "
        "paper's two GPU towers (default: 1)")
    add("--dropout", type=_in_range(0, 1, "a probability from 0 to below 1"), metavar="P",
        help="dropout probability in fc6 and fc7 (default: 0.5, Section 4.2)")
    add("--rgb", action="store_true", help="give grey data to a 3-channel network")
    _common(t)
    t.set_defaults(run=cmd_train)


def _add_evaluate(commands) -> None:
    e = commands.add_parser(
        "evaluate", formatter_class=FORMAT, help="accuracy and per-class report of a checkpoint",
        description="Top-1/top-5 accuracy (Table 1 reports error rates) and per-class precision, "
                    "recall and F1 of a checkpoint on a split, preprocessed as in training.")
    e.add_argument("--checkpoint", required=True, metavar="C", help=CHECKPOINT_HELP)
    e.add_argument("--dataset", metavar="NAME_OR_DIR",
                   help=DATASET_HELP + " (default: the one the checkpoint was trained on)")
    e.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                   help="which split of the run's data, rebuilt as the run drew it and checked "
                        "against what it held out (default: %(default)s); all: every image of "
                        "--dataset as given (a folder; a named dataset's test files at "
                        "--data-root), an independent labelled test set with the checkpoint's "
                        "classes, with no split protection")
    e.add_argument("--limit", type=_positive_int, metavar="N", help="use at most N images")
    e.add_argument("--tta", nargs="?", const="ten", choices=("ten", "flip"),
                   help="test-time averaging: ten (also plain --tta) = the 4 corner and centre "
                        "crops and their mirrors (Section 4.1); flip = the centre and its mirror")
    e.add_argument("--json", action="store_true", help="print one JSON object, not tables")
    _common(e)
    e.set_defaults(run=cmd_evaluate)


def _add_predict(commands) -> None:
    p = commands.add_parser(
        "predict", formatter_class=FORMAT, help="classify image files",
        description="The most probable classes of each image (softmax of fc8). Files that are "
                    "not readable images are reported on stderr; the others are still classified.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, or folders (all files inside, recursively)")
    p.add_argument("--checkpoint", required=True, metavar="C", help=CHECKPOINT_HELP)
    p.add_argument("--top-k", type=_positive_int, default=5, metavar="K",
                   help="classes shown per image (default: %(default)s, the paper's top-5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _common(p)
    p.set_defaults(run=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `alexnet-edu {train,evaluate,predict}`."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=FORMAT,
        description="AlexNet (Krizhevsky, Sutskever & Hinton, 2012) for learning: train it, "
                    "evaluate it, classify your own images.",
        epilog=f"example:\n  {PROG} train --dataset fashion-mnist --epochs 10 --out runs/fm\n"
               f"  {PROG} evaluate --checkpoint runs/fm/best.pt --tta\n"
               f"  {PROG} predict --checkpoint runs/fm/best.pt shirt.png photos/\n\n"
               "ALEXNET_EDU_DATA: where datasets live; ALEXNET_EDU_SMOKE=1: stand-in data.\n"
               "Exit codes: 0 ok, 2 bad input (one line on stderr says why), 130 interrupted.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv   # as typed: the resume hint repeats it
    except SystemExit as stop:  # --help (0) or a usage error (2; argparse printed why)
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    try:   # a mistyped ALEXNET_EDU_PROFILE is bad input, not a traceback (predict needs none)
        if args.command != "predict":
            profile_named()
    except ValueError as err:
        _error(err)
        return EXIT_BAD_INPUT
    try:
        return args.run(args)
    except BadInput as err:
        _error(err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if args.command == "train":
            _say_interrupted(args)
        else:
            _error("interrupted (nothing was written)")
        return EXIT_INTERRUPTED
