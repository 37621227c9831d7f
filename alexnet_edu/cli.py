"""The command line: train an AlexNet, evaluate a checkpoint, classify your own images.

    python -m alexnet_edu train --dataset fashion-mnist --epochs 10 --image-size 227 --out runs/fm
    python -m alexnet_edu evaluate --checkpoint runs/fm/best.pt --tta
    python -m alexnet_edu predict --checkpoint runs/fm/best.pt shirt.png my_photos/

(`alexnet-edu ...` is the same program, installed as a console script.)

The CLI is a thin layer over the functions the notebooks use -- `data.load_splits`,
`data.BatchTransform`, `train.fit`, `train.load_model`, `train.evaluate`,
`metrics.per_class_report` -- so a number it prints is the number a notebook would compute.

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
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .profiles import PROFILES, current_profile, run_size

try:
    import fcntl  # POSIX; elsewhere run folders are not locked
except ImportError:   # pragma: no cover (Windows)
    fcntl = None
from .train import MAX_IMAGE_SIZE, OutOfMemory

__all__ = ["main", "build_parser", "read_image", "BadInput"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130
PROG = "alexnet-edu"
PREDICT_CHUNK = 64  # images read and classified at a time by `predict`
T = TypeVar("T")


class BadInput(Exception):
    """Something the user gave us is wrong; the message says what and how to fix it."""


def _error(message: Any) -> None:
    """One line on stderr (newlines inside library messages are folded, other control
    characters escaped)."""
    print(f"{PROG}: error: {_printable(' '.join(str(message).split()))}", file=sys.stderr)


def _printable(text: Any) -> str:
    """`text` with every non-printable character (newline, carriage return, escape sequences
    ...) written as its backslash escape, so that a class or file name printed in text output
    can neither start a fake line nor move the cursor."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def _json(value: Any) -> str:
    """Strict JSON: non-finite floats (NaN, inf), which json.dumps would write as the invalid
    tokens NaN / Infinity, become null."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False)


def _first_line(err: BaseException, limit: int = 300) -> str:
    """A library error squeezed into one readable line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Loading things the user names: each raises BadInput with a message that says what to do.
# --------------------------------------------------------------------------------------------

def _pick_device(name: str | None, verbose: bool = True) -> torch.device:
    from .device import pick_device

    try:
        return pick_device(name, verbose=verbose)
    except (ValueError, RuntimeError) as err:
        raise BadInput(f"--device {name}: {_first_line(err)}") from None


def _load_splits(dataset: str, data_root: str | None, limit: int | None, seed: int = 0,
                 val_fraction: float = 0.1):
    from .data import load_splits

    try:
        return load_splits(dataset, root=data_root, limit=limit, seed=seed,
                           val_fraction=val_fraction)
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError,
            RuntimeError) as err:
        raise BadInput(f"dataset {dataset!r}: {err}") from None


def _resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file; a run directory stands for its best.pt (else last.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise BadInput(f"{path} is a directory without best.pt or last.pt; pass a checkpoint "
                       "written by `alexnet-edu train --out RUN_DIR` (RUN_DIR/best.pt)")
    if not path.exists():
        raise BadInput(f"checkpoint {path} does not exist; train one with "
                       "`alexnet-edu train --dataset ... --out RUN_DIR`, then pass RUN_DIR/best.pt")
    return path


def _load_model(path: str | Path, device: torch.device):
    """(model in eval mode, checkpoint dict), or BadInput for anything that is not ours."""
    from .train import load_model

    path = _resolve_checkpoint(path)
    hint = "pass a best.pt/last.pt written by `alexnet-edu train`"
    try:
        model, checkpoint = load_model(path, device=device)
    except (ValueError, FileNotFoundError) as err:  # load_checkpoint's own clear messages
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
            raise BadInput(f"{path} is not a PyTorch checkpoint (not the zip archive torch.save "
                           f"writes: another kind of file, or a truncated or corrupted "
                           f"checkpoint); {hint}") from None
        if "Weights only load failed" in str(err):
            raise BadInput(f"{path} holds Python objects that torch.load(weights_only=True) "
                           "refuses to unpickle (e.g. a whole pickled model), so it is not an "
                           f"alexnet-edu checkpoint; {hint}") from None
        raise BadInput(f"{_first_line(err)}; {hint}") from None
    except Exception as err:  # whatever else is wrong, it is the file's fault here
        raise BadInput(f"{path} is not a usable alexnet-edu checkpoint "
                       f"({type(err).__name__}: {_first_line(err)}); {hint}") from None
    return model, checkpoint


# --------------------------------------------------------------------------------------------
# Images for `predict`
# --------------------------------------------------------------------------------------------

def read_image(path: str | Path, channels: int, shorter_side: int | None = None
               ) -> torch.Tensor:
    """A file as a uint8 tensor (channels, H, W); BadInput if it is not a readable image.

    Read with `data.read_image`, the reader image folders use: 16-bit and float images are
    rescaled to 0..255 (not saturated to white), images over its pixel limit (decompression
    bombs) are refused before decoding, and the longer side is shrunk to data.MAX_IMAGE_SIDE
    pixels as the file is read, so memory stays bounded. With `shorter_side`, an image whose
    shorter side is longer than that is shrunk further (antialiased, aspect kept) until it is
    `shorter_side` (predict passes twice the evaluation resize). Colour is converted to what the
    training data had: grey ("L") for 1 channel, RGB for 3 (a grey photo is repeated into three
    channels, an alpha channel is dropped)."""
    from PIL import Image, UnidentifiedImageError

    from .data import DataFileError
    from .data import read_image as read_rgb

    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory")
    try:
        image = read_rgb(path)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except DataFileError as err:
        if isinstance(err.__cause__, UnidentifiedImageError):
            raise BadInput(f"{path}: not an image (PIL cannot identify it; use PNG, JPEG, ...)") \
                from None
        raise BadInput(_first_line(err)) from None   # names the file, says what is wrong
    w, h = image.size
    if shorter_side is not None and min(w, h) > shorter_side:
        scale = shorter_side / min(w, h)
        image = image.resize((max(shorter_side, round(w * scale)),
                              max(shorter_side, round(h * scale))), Image.BILINEAR)
    if channels == 1:
        image = image.convert("L")
    array = np.array(image, dtype=np.uint8, copy=True)
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def _image_files(inputs: Sequence[str]) -> Iterator[tuple[Path, str | None]]:
    """(path, None) for each file to classify, or (path, error) for a path that is not usable.

    A directory contributes all its files, recursively and sorted, hidden files excepted -- a
    non-image among them is reported rather than silently skipped, so nothing goes unnoticed.
    """
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                yield path, f"{path}: directory holds no files"
            for file in files:
                yield file, None
        elif path.exists():
            yield path, None
        else:
            yield path, f"{path}: no such file or directory"


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` consecutive items."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def _train_config(args: argparse.Namespace, base: dict[str, Any] | None = None):
    """TrainConfig from the trainer's defaults (or a resumed run's `base`), with the fields the
    user set on the command line; flags left out stay as they are."""
    from .train import TrainConfig

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


@contextlib.contextmanager
def _run_folder(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for one training run: create it, check that files can be written there,
    lock it against a second `train` (RUN_DIR/.lock, an exclusive non-blocking flock held until
    the run ends) and remove the temporary files a killed save left (`save_checkpoint` writes
    `.last.pt.tmp<pid>` / `.best.pt.tmp<pid>`, then renames them). A folder this call created
    is removed again if the run writes nothing into it."""
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
            pid = stale.name.rpartition(".tmp")[2]
            if pid.isdigit() and int(pid) != os.getpid() and _process_exists(int(pid)):
                continue   # a live process (a notebook's fit?) is writing it right now
            with contextlib.suppress(OSError):
                stale.unlink()
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
    """The flags given to `train --resume` that would change the run's identity -- its
    architecture, its images (--limit) or its seed -- each with the run's own value. A flag left
    out, or given with the run's value, is fine; a value the checkpoint does not record (an
    older checkpoint) is not checked."""
    config = checkpoint.get("model_config") or {}
    split = checkpoint.get("split") or {}
    train_config = checkpoint.get("train_config") or {}
    conflicts: list[str] = []

    def check(flag: str, asked: Any, recorded: dict, key: str, shown=lambda run: run) -> None:
        if asked is not None and key in recorded and asked != recorded[key]:
            conflicts.append(f"{flag} differs from the run's {shown(recorded[key])}")

    for name in ("image_size", "variant", "groups", "dropout", "init"):
        value = getattr(args, name)
        check(f"--{name.replace('_', '-')} {value}", value, config, name)
    check("--no-lrn", False if args.no_lrn else None, config, "lrn", lambda run: "LRN on")
    check("--rgb", 3 if args.rgb else None, config, "in_channels",
          lambda run: f"{run} input channel(s)")
    check(f"--limit {args.limit}", args.limit, split, "limit",
          lambda run: "all images" if run is None else run)
    check(f"--seed {args.seed}", args.seed, train_config, "seed")
    return conflicts


def cmd_train(args: argparse.Namespace) -> int:
    """Train on a dataset; checkpoints go to RUN_DIR/last.pt and RUN_DIR/best.pt."""
    from .train import runs_dir

    name = Path(args.dataset).name if Path(args.dataset).is_dir() else args.dataset
    run_dir = Path(args.out) if args.out else runs_dir() / name
    if args.resume and not (run_dir / "last.pt").is_file():
        raise BadInput(f"--resume: {run_dir / 'last.pt'} does not exist; start the run without "
                       "--resume")
    with _run_folder(run_dir):
        return _train(args, name, run_dir)


def _train(args: argparse.Namespace, name: str, run_dir: Path) -> int:
    """cmd_train in a run folder it holds (see _run_folder)."""
    from .model import AlexNet
    from .train import build_model, fit, load_checkpoint

    last = run_dir / "last.pt"
    if not args.resume and last.exists():
        raise BadInput(f"{run_dir} already holds a run (last.pt); pass --resume to continue it, "
                       "or choose another --out, so that nothing is overwritten")

    model_config: dict[str, Any] = {}
    base: dict[str, Any] | None = None
    if args.resume:  # the run's own architecture and recipe; flags given override the recipe
        try:
            resumed = load_checkpoint(last)
            model_config, base = resumed["model_config"], resumed.get("train_config", {})
        except Exception as err:
            raise BadInput(f"--resume: {last} is not a usable checkpoint "
                           f"({_first_line(err)})") from None
        conflicts = _identity_conflicts(args, resumed)
        if conflicts:   # the run's architecture, data and seed are its own
            raise BadInput(f"--resume: {'; '.join(conflicts)}: a resumed run keeps its "
                           "architecture, images and seed (drop the flag, or start a new run "
                           "with another --out); --epochs and the recipe flags may change")
    if args.image_size is not None and args.image_size > MAX_IMAGE_SIZE:
        raise BadInput(f"--image-size {args.image_size} is beyond the largest input this trainer "
                       f"takes ({MAX_IMAGE_SIZE} px; the paper's is 227)")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise BadInput(f"--lr must be a positive finite number, got {args.lr}")
    limit, image_size = args.limit, args.image_size
    if args.resume:   # the run's own image count; its seed comes with its train_config
        limit = limit if limit is not None else (resumed.get("split") or {}).get("limit")
    else:   # the profile's recipe (smoke / cpu / full), below any flag the user gave
        try:
            size = run_size(name if name in ("fashion-mnist", "stl10") else "stl10", args.profile,
                            limit=args.limit, image_size=args.image_size)
        except ValueError as err:
            raise BadInput(_first_line(err)) from None
        limit, image_size = size.limit, size.image_size
        base = {"epochs": size.epochs, "batch_size": size.batch_size, "lr": size.lr,
                "patience": size.patience}
        print(f"Profile {args.profile or current_profile().name}: {size.describe()} "
              "(flags override it; --profile smoke|cpu|full picks another)")
    config = _train_config(args, base)
    device = _pick_device(args.device)
    splits = _load_splits(args.dataset, args.data_root, limit, seed=config.seed)

    try:
        if args.resume:
            model = AlexNet(**model_config)
        else:
            model_args = {"variant": args.variant, "groups": args.groups, "dropout": args.dropout,
                          "init": args.init, "lrn": False if args.no_lrn else None,
                          "in_channels": 3 if args.rgb else None}
            model = build_model(splits, image_size=image_size, seed=config.seed,
                                **{k: v for k, v in model_args.items() if v is not None})
    except (ValueError, TypeError) as err:
        raise BadInput(_first_line(err)) from None

    c = model.config
    data_kind = "generated stand-in data" if splits.synthetic else "real data"
    print(f"AlexNet ({c['variant']}, {c['image_size']} px, {c['in_channels']} channel(s), "
          f"{c['num_classes']} classes, init {c['init']}, LRN {'on' if c['lrn'] else 'off'}) on "
          f"{splits.name} ({data_kind}); batch {config.batch_size}, lr {config.lr}, "
          f"{config.epochs} epochs")
    try:
        history = fit(model, splits, config, run_dir, device=device, resume=args.resume)
    except (ValueError, FloatingPointError, OutOfMemory) as err:  # fit's messages say what to do
        raise BadInput(_first_line(err)) from None
    except OSError as err:   # a checkpoint that cannot be written (full disk): the last one stays
        raise BadInput(err.strerror or _first_line(err)) from None
    if len(history) < config.epochs:   # fit saved the state and returned: Ctrl-C
        print(f"Interrupted after {len(history)} of {config.epochs} epoch(s); {last} holds the "
              f"run. Continue it exactly with: {PROG} train --dataset {args.dataset} --out "
              f"{run_dir} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if history:
        best = max(history, key=lambda row: row["val_acc"])
        print(f"Done: {len(history)} epoch(s); best validation accuracy {best['val_acc']:.4f} "
              f"(epoch {best['epoch']})")
    checkpoint = run_dir / "best.pt" if (run_dir / "best.pt").exists() else last
    print(f"Checkpoint: {checkpoint}")
    folder = Path(args.dataset).is_dir()   # a folder: evaluate needs its path again
    print(f"Next: {PROG} evaluate --checkpoint {checkpoint}"
          + (f" --dataset {args.dataset}" if folder else "")
          + (f" --data-root {args.data_root}" if args.data_root else ""))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Top-1/top-5 accuracy and a per-class precision/recall/F1 table on one split."""
    from .data import DATASETS, TensorImageDataset, split_fingerprint
    from .metrics import per_class_report
    from .train import eval_transform, evaluate

    stdout = sys.stdout
    # With --json, stdout carries exactly one JSON object: all chatter goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        device = _pick_device(args.device)
        model, checkpoint = _load_model(args.checkpoint, device)
        dataset = args.dataset or checkpoint["dataset"]
        if args.dataset is None and dataset not in DATASETS and not Path(dataset).is_dir():
            raise BadInput(f"the checkpoint was trained on an image folder called {dataset!r}; "
                           "pass its path with --dataset")
        # Rebuild the run's own splits (its seed, fraction and limit), never seed 0's: another
        # seed would put images the model trained on into the "test" split.
        recipe = checkpoint.get("split") or {}
        splits = _load_splits(dataset, args.data_root, recipe.get("limit"),
                              seed=recipe.get("seed", 0),
                              val_fraction=recipe.get("val_fraction", 0.1))
        classes = list(checkpoint["classes"])
        if list(splits.classes) != classes:
            raise BadInput(f"the checkpoint was trained on the classes {classes}, but {dataset!r} "
                           f"has {list(splits.classes)}: evaluate it on the dataset it learned")
        split = getattr(splits, args.split)
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
            split = TensorImageDataset(split.images[:args.limit], split.labels[:args.limit],
                                       split.classes)
        tta = {None: False, "ten": True, "flip": "flip"}[args.tta]
        result = evaluate(model, split, eval_transform(checkpoint), device, tta=tta)
        # Text output escapes the class names (a name cannot print a line of its own);
        # JSON keeps them as they are (json.dumps escapes them itself).
        report = per_class_report(result["predictions"], result["targets"],
                                  classes if args.json else [_printable(c) for c in classes])

    per_class = [{"class": r["cls"], "precision": r["precision"], "recall": r["recall"],
                  "f1": r["f1"], "support": r["support"]} for r in report.rows()]
    top5 = result["top5"]  # None with fewer than 5 classes
    summary = {"checkpoint": str(_resolve_checkpoint(args.checkpoint)), "dataset": dataset,
               "split": args.split, "n": int(result["n"]), "tta": args.tta,
               "synthetic": bool(splits.synthetic), "loss": float(result["loss"]),
               "top1": float(result["top1"]), "top5": None if top5 is None else float(top5),
               "macro_f1": report.macro_f1, "per_class": per_class}
    if args.json:
        print(_json(summary), file=stdout)
        return EXIT_OK
    how = {None: "one centre view", "ten": "ten-crop averaged (Section 4.1)",
           "flip": "the centre view and its mirror image, averaged"}[args.tta]
    stand_in = " (generated stand-in data)" if splits.synthetic else ""
    print(f"{_printable(dataset)}{stand_in}, {args.split} split: {summary['n']} images, {how}")
    line = f"top-1 accuracy {summary['top1']:.4f} (error {1 - summary['top1']:.4f})"
    if top5 is not None:
        line += f"   top-5 accuracy {summary['top5']:.4f} (error {1 - summary['top5']:.4f})"
    print(line + f"   loss {summary['loss']:.4f}\n")
    print(report.table())
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    """The top-k classes and their probabilities for each image."""
    from .train import eval_transform, predict

    if args.top_k < 1:
        raise BadInput(f"--top-k must be at least 1, got {args.top_k}")
    device = _pick_device(args.device, verbose=False)
    model, checkpoint = _load_model(args.checkpoint, device)
    transform = eval_transform(checkpoint).to(device)
    classes = list(checkpoint["classes"])
    # Convert each file to what the network learned from; the transform does the rest
    # (resize to the checkpoint's input size, normalize, grey -> 3 channels if the model wants).
    channels = int(checkpoint.get("in_channels_data", model.config["in_channels"]))
    # Large files are shrunk as they are read, to twice the side the evaluation transform
    # resizes to (PIL, antialiased), so a chunk of photos stacked for the network stays small.
    shorter_side = 2 * max(transform.resize_size, transform.image_size)
    k = min(args.top_k, len(classes))

    failed, done, results = 0, 0, []
    for chunk in _chunks(_image_files(args.images), PREDICT_CHUNK):
        good: list[tuple[Path, torch.Tensor]] = []
        for path, problem in chunk:
            try:
                if problem:
                    raise BadInput(problem)
                good.append((path, read_image(path, channels, shorter_side)))
            except BadInput as err:
                _error(err)
                failed += 1
        # Images of one size go through the network together (a photo folder has few sizes).
        probabilities: dict[Path, torch.Tensor] = {}
        for shape in dict.fromkeys(image.shape for _, image in good):
            same = [(path, image) for path, image in good if image.shape == shape]
            batch = torch.stack([image for _, image in same])
            for (path, _), probs in zip(same, predict(model, batch, transform, device)):
                probabilities[path] = probs
        for path, _ in good:
            top = torch.topk(probabilities[path], k)
            ranked = [(classes[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())]
            done += 1
            if args.json:
                results.append({"path": str(path),
                                "top": [{"class": c, "probability": p} for c, p in ranked]})
            else:   # names escaped: a class or file name cannot print a line of its own
                print(_printable(path))
                for rank, (c, p) in enumerate(ranked, start=1):
                    print(f"  {rank}. {_printable(c):<20} {p:7.2%}")
    if args.json:
        print(_json({"predictions": results, "failed": failed}))
    if failed:
        _error(f"{failed} of {failed + done} inputs could not be classified (see above)")
    return EXIT_BAD_INPUT if failed else EXIT_OK


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------

def _trainer_default(name: str, fallback: Any = "the trainer's") -> Any:
    """A TrainConfig default for a --help text (the trainer is the one source of defaults)."""
    try:
        from .train import TrainConfig

        return getattr(TrainConfig(), name)
    except Exception:  # --help must work even if the trainer cannot import
        return fallback


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `alexnet-edu {train,evaluate,predict}`."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=fmt,
        description="AlexNet (Krizhevsky, Sutskever & Hinton, 2012) for learning: train it, "
                    "evaluate it, classify your own images.",
        epilog="examples:\n"
               f"  {PROG} train --dataset fashion-mnist --epochs 10 --out runs/fm\n"
               f"  {PROG} evaluate --checkpoint runs/fm/best.pt --tta\n"
               f"  {PROG} predict --checkpoint runs/fm/best.pt shirt.png photos/\n\n"
               "Set ALEXNET_EDU_DATA to where datasets live; ALEXNET_EDU_SMOKE=1 makes tiny\n"
               "stand-in data when the real files are missing (for trying things out).\n"
               "Exit codes: 0 ok, 2 bad input (one line on stderr says why), 130 interrupted.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", metavar="D", default=None,
                       help="cpu, cuda, cuda:1, mps (default: a GPU if there is one, else cpu)")
        p.add_argument("--data-root", metavar="DIR", default=None,
                       help="where datasets live (default: $ALEXNET_EDU_DATA, else ./data)")

    dataset_help = ("fashion-mnist (28x28 grey, 10 classes), stl10 (96x96 colour, 10 classes), "
                    "or a folder with one sub-folder of images per class")

    # -- train ---------------------------------------------------------------------------------
    t = commands.add_parser(
        "train", formatter_class=fmt, help="train an AlexNet from scratch",
        description="Train AlexNet from scratch with the paper's recipe (Section 5): SGD with "
                    "momentum 0.9, weight decay 5e-4, batch 128, learning rate 0.01 divided by "
                    "10 when the validation loss stops improving; random crops, flips and PCA "
                    "colour noise (Section 4.1); dropout 0.5 (Section 4.2). Each epoch writes "
                    "RUN_DIR/last.pt (and best.pt on a new best validation accuracy); Ctrl-C "
                    "saves and stops; --resume continues exactly where it stopped.",
        epilog=f"examples:\n  {PROG} train --dataset stl10 --epochs 30 --out runs/stl10\n"
               f"  {PROG} train --dataset fashion-mnist --image-size 67 --limit 600 --epochs 2 "
               "--out runs/try\n"
               f"  {PROG} train --dataset fashion-mnist --limit 600 --out runs/try --resume "
               "--epochs 4   (continue it)")
    t.add_argument("--dataset", required=True, metavar="NAME_OR_DIR", help=dataset_help)
    t.add_argument("--out", metavar="RUN_DIR", default=None,
                   help="run folder for checkpoints (default: runs/<dataset>)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from last.pt (weights, optimizer, "
                        "schedule and random state; the architecture, --limit and --seed come "
                        "from the checkpoint, and flags that would change them are refused)")
    t.add_argument("--epochs", type=_positive_int, metavar="N",
                   help="passes over the training set (default: the profile's)")
    t.add_argument("--batch-size", type=_positive_int, metavar="B",
                   help=f"images per SGD step (default: {_trainer_default('batch_size')}; "
                        "the paper: 128)")
    t.add_argument("--profile", choices=PROFILES, default=None,
                   help="run size: smoke (a quick check), cpu (67 px, a subset, ~10 min on 2 "
                        "cores), full (227 px, all images: a GPU) (default: full on a CUDA GPU, "
                        "else cpu; ALEXNET_EDU_PROFILE sets it too)")
    t.add_argument("--image-size", type=_positive_int, metavar="S", default=None,
                   help="side of the square network input (default: the profile's: 227 in full, "
                        "the paper's input -- it writes 224, see notebook 01; 67 in cpu and "
                        "smoke, the smallest the paper's layers take)")
    t.add_argument("--limit", type=_positive_int, metavar="N",
                   help="use at most N images per split (default: the profile's)")
    t.add_argument("--lr", type=float, metavar="LR",
                   help="initial learning rate (default: the profile's: 0.01 in full, the "
                        "paper's; 0.02 in cpu, for a 10-minute run)")
    t.add_argument("--schedule", choices=("plateau", "cosine"), default=None,
                   help="learning-rate schedule (default: plateau = the paper's lr / 10 when the "
                        "validation loss stops improving; cosine: down to min_lr over --epochs, "
                        "for runs of a fixed length)")
    t.add_argument("--momentum", type=float, metavar="M",
                   help=f"SGD momentum (default: {_trainer_default('momentum')}; the paper: 0.9)")
    t.add_argument("--weight-decay", type=float, metavar="WD",
                   help=f"L2 weight decay (default: {_trainer_default('weight_decay')}; "
                        "the paper: 5e-4)")
    t.add_argument("--init", choices=("paper", "kaiming", "pytorch"), default=None,
                   help="weight initialization (default: kaiming = He et al. 2015, which learns "
                        "from standardized inputs; paper = N(0, 0.01) with bias 1 in conv2/4/5 "
                        "and fc6/7, Section 5, which was tuned for raw 0-255 pixels and often "
                        "does not start learning here)")
    t.add_argument("--no-lrn", action="store_true",
                   help="leave out Local Response Normalization (Section 3.3 credits it with "
                        "1.4%%/1.2%% lower top-1/top-5 error; VGG, 2014, saw no gain from it)")
    # Default None here, the paper's values where the model is built: --resume tells a flag
    # the user gave (and refuses it if it differs from the run's) from one left out.
    t.add_argument("--variant", choices=("paper", "torchvision"), default=None,
                   help="paper: 96-256-384-384-256 kernels with LRN (Figure 2); torchvision: "
                        "64-192-384-256-256, no LRN (default: paper)")
    t.add_argument("--groups", type=int, choices=(1, 2), default=None,
                   help="2 splits conv2, conv4 and conv5 into the paper's two GPU towers "
                        "(default: 1)")
    t.add_argument("--dropout", type=float, default=None, metavar="P",
                   help="dropout probability in fc6 and fc7 (default: 0.5, Section 4.2)")
    t.add_argument("--rgb", action="store_true",
                   help="give a greyscale dataset to a 3-channel network (grey repeated)")
    t.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default=None,
                   help="mixed precision (default: auto = bf16 on GPUs and on CPUs with bf16 "
                        "matrix units (AMX), float32 elsewhere -- emulated bf16 is slower)")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory layout (default: on CUDA only)")
    t.add_argument("--no-augment", action="store_true",
                   help="no random crops/flips/PCA noise (to see what augmentation buys)")
    t.add_argument("--workers", type=int, metavar="W",
                   help="DataLoader worker processes (default: the trainer's choice)")
    t.add_argument("--tensorboard", action="store_true",
                   help="also log every epoch's numbers to RUN_DIR/tensorboard (view with "
                        "`tensorboard --logdir RUN_DIR`); RUN_DIR/history.json is always written")
    t.add_argument("--seed", type=int, metavar="S",
                   help=f"random seed (default: {_trainer_default('seed', 0)})")
    common(t)
    t.set_defaults(run=cmd_train)

    # -- evaluate ------------------------------------------------------------------------------
    e = commands.add_parser(
        "evaluate", formatter_class=fmt, help="accuracy and per-class report of a checkpoint",
        description="Top-1 and top-5 accuracy (the paper reports error rates = 1 - accuracy, "
                    "Table 1) and per-class precision, recall and F1 of a checkpoint on a "
                    "dataset split, preprocessed exactly as in training (the checkpoint's size "
                    "and normalization).")
    e.add_argument("--checkpoint", required=True, metavar="C",
                   help="a best.pt/last.pt from `train` (or its run folder)")
    e.add_argument("--dataset", metavar="NAME_OR_DIR", default=None,
                   help=dataset_help + " (default: the one the checkpoint was trained on)")
    e.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="which split (default: %(default)s)")
    e.add_argument("--limit", type=_positive_int, metavar="N",
                   help="use at most N images per split")
    e.add_argument("--tta", nargs="?", const="ten", choices=("ten", "flip"), default=None,
                   help="test-time averaging: ten (also plain --tta) = the paper's 4 corner + "
                        "centre crops and their mirrors (Section 4.1); flip = the centre crop and "
                        "its mirror (better where the object fills the frame, e.g. Fashion-MNIST)")
    e.add_argument("--json", action="store_true",
                   help="print one JSON object (top1, top5, per_class, ...) instead of tables")
    common(e)
    e.set_defaults(run=cmd_evaluate)

    # -- predict -------------------------------------------------------------------------------
    p = commands.add_parser(
        "predict", formatter_class=fmt, help="classify image files",
        description="The most probable classes for each image (softmax of fc8). Any image size "
                    "is resized to the checkpoint's input size and normalized with its training "
                    "mean/std; colour is converted to what the network learned from. Files that "
                    "are not readable images are reported on stderr; the others are still "
                    "classified.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, or folders (all files inside, recursively)")
    p.add_argument("--checkpoint", required=True, metavar="C",
                   help="a best.pt/last.pt from `train` (or its run folder)")
    p.add_argument("--top-k", type=int, default=5, metavar="K",
                   help="how many classes to show per image (default: %(default)s, as the "
                        "paper's top-5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    common(p)
    p.set_defaults(run=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2; argparse printed why)
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    try:
        return args.run(args)
    except BadInput as err:
        _error(err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
