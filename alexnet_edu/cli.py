"""The command line (`alexnet-edu`, `python -m alexnet_edu`): train, evaluate, predict with the
notebooks' functions; an edge that decides profile, data root and run folder. Bad input: one line
on stderr (the library's message), exit code 2 (`predict` still classifies the other files)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from . import distributed
from .checkpoint import check_continues, eval_transform, load_checkpoint, load_model
from .data import DATASETS, folder_dataset
from .device import describe_device, pick_device
from .evaluation import evaluate, predict
from .images import image_files, read_image_tensor
from .model import INITS, VARIANTS, AlexNet
from .profiles import PROFILES, current_profile, held_out_split, load_splits, run_size, runs_dir
from .report import per_class_report
from .runlog import OutOfMemory
from .train import TrainConfig, build_model, fit
from .validation import MAX_IMAGE_SIZE, check_fields, check_resumable

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130
PROG = "alexnet-edu"


def _error(problem: Any) -> None:
    """`problem` (a message or the library's exception, not re-worded) as one line on stderr."""
    lines = str(problem).strip().splitlines() or [type(problem).__name__]
    if lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        # raised in a DataLoader worker: its own message, which names the file, ends the traceback
        lines = [lines[-1].split(": ", 1)[-1]]
    print(f"{PROG}: error: {_printable(' '.join(' '.join(lines).split()))}", file=sys.stderr)


def _printable(text: Any) -> str:
    """`text` with non-printable characters escaped: no fake lines, no cursor moves."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def _shell_word(word: Any) -> str:
    """`word` quoted for a POSIX shell on one line: shlex.quote, or bash's $'...' where the word
    holds a control character (which shlex.quote would print raw)."""
    if (word := str(word)).isprintable():
        return shlex.quote(word)
    return "$'" + "".join("\\" + c if c in "\\'" else _printable(c) for c in word) + "'"


def _command_prefix(program: str) -> str:
    """`program`, or under torchrun the torchrun command with as many processes (for a resume).
    Across machines it names the rendezvous as HOST:PORT, to be replaced by the endpoint the run
    was started with: no worker process is told it."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
    nodes = (f" --nnodes {processes // per_node} --rdzv-backend c10d --rdzv-endpoint HOST:PORT"
             if processes > per_node else "")
    return (f"torchrun --nproc-per-node {per_node}{nodes} -m alexnet_edu" if processes > 1
            else program)


def _command(words: Sequence[Any], start: str | None = None) -> str:
    """The command line with `words` quoted, started with `start` or as this process was."""
    return " ".join([start or _command_prefix(PROG), *map(_shell_word, words)])


def _json(value: Any) -> str:
    """Strict JSON: non-finite floats (json.dumps's invalid NaN, Infinity) become null."""
    return json.dumps(json.loads(json.dumps(value), parse_constant=lambda _: None))


def _resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file; a run folder stands for its best.pt (else last.pt)."""
    if not (path := Path(path)).is_dir():
        return path
    return next(filter(Path.is_file, (path / "best.pt", path / "last.pt")), path / "best.pt")


def _inputs(names: Sequence[str]) -> Iterator[Path]:
    """The files to classify: each name, a folder's every file (non-images, empty folders too)."""
    for path in map(Path, names):
        yield from (image_files(path, extensions=None) or [path]) if path.is_dir() else [path]


# train -------------------------------------------------------------------------------------------
# The TrainConfig fields `train` sets and their help: a new field needs one line here, no more.
CONFIG_HELP = {
    "epochs": "passes over the training set (default: the profile's)",
    "batch_size": "images per SGD step (default: {}; the paper: 128)",
    "lr": "initial learning rate (default: the profile's: 0.01 in full, the paper's; 0.02 in cpu)",
    "schedule": "plateau (default): the paper's lr / 10 when the validation error stalls; cosine",
    "momentum": "SGD momentum (default: {}; the paper: 0.9)",
    "weight_decay": "L2 weight decay (default: {}; the paper: 5e-4)",
    "amp": "mixed precision: auto (default: bfloat16 on NVIDIA GPUs of compute capability 8.0+ "
           "such as A100, L4, H100 and on Intel CPUs with AMX; float16 with loss scaling on "
           "older NVIDIA GPUs such as T4, V100; float32 on other CPUs and Apple MPS), bf16, "
           "fp16 or off",
    "channels_last": "NHWC memory layout (default: on CUDA, and on a CPU from 128 px)",
    "augment": "random crops, flips, PCA noise (default: on; --no-augment leaves them out)",
    "num_workers": "DataLoader worker processes",
    "tensorboard": "also log to RUN_DIR/tensorboard",
    "seed": "random seed (default: {})"}


def _add_config_flags(add) -> None:
    """A flag per TrainConfig field in CONFIG_HELP, default None: --resume tells a flag given
    from one left out, and the profile's or the run's value stands for it."""
    for field in (f for f in dataclasses.fields(TrainConfig) if f.name in CONFIG_HELP):
        flag = "--" + {"num_workers": "workers"}.get(field.name, field.name).replace("_", "-")
        convert = int if field.default is None else type(field.default)
        kind = ({"action": argparse.BooleanOptionalAction} if "bool" in str(field.type) else
                {"type": _checked(convert, lambda v, k=field.name: TrainConfig(**{k: v})),
                 "metavar": field.name.upper()})
        add(flag, dest=field.name, help=CONFIG_HELP[field.name].format(field.default), **kind)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (assumed so on Windows, where os.kill would end it)."""
    try:
        return os.name == "nt" or os.kill(pid, 0) is None   # signal 0 only asks
    except OSError as err:   # PermissionError: it exists, under another user
        return not isinstance(err, ProcessLookupError)


@contextlib.contextmanager
def _run_folder(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for one run: create it, check it is writable, lock it (RUN_DIR/.lock), remove
    killed saves' temporary files; a folder created here and left empty is removed again."""
    created, lock = not run_dir.exists(), FileLock(run_dir / ".lock")
    try:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (probe := run_dir / f".write-test{os.getpid()}").write_bytes(b"")
            probe.unlink()
            lock.acquire(timeout=0)
        except Timeout:
            raise ValueError(f"{run_dir} is in use by another `{PROG} train`; wait for it to "
                             "finish, or choose another --out") from None
        except OSError as err:
            raise ValueError(f"--out {run_dir}: cannot write there ({err.strerror or err}); "
                             "choose a folder you may write to") from None
        for stale in run_dir.glob(".*.pt.tmp*"):   # files.temp_name's
            pid = stale.name.rpartition(".tmp")[2]
            if not (pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))):
                stale.unlink(missing_ok=True)
        yield
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            if created and {p.name for p in run_dir.iterdir()} <= {".lock"}:
                (run_dir / ".lock").unlink(missing_ok=True)
                run_dir.rmdir()


def _model_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The model settings given as flags (None: left to the run or the trainer's defaults)."""
    given = {"image_size": args.image_size, "variant": args.variant, "groups": args.groups,
             "dropout": args.dropout, "init": args.init, "lrn": False if args.no_lrn else None,
             "in_channels": 3 if args.rgb else None}
    return {k: v for k, v in given.items() if v is not None}


def _recipe(args: argparse.Namespace, name: str, last: Path):
    """(last.pt or None, limit, image size, TrainConfig): a resumed run's own, checked before any
    data is loaded (check_continues), else the profile's; the flags given win."""
    given = {k: getattr(args, k) for k in CONFIG_HELP if getattr(args, k) is not None}
    if not args.resume:
        size = run_size(name if name in DATASETS else "stl10", args.profile, limit=args.limit,
                        image_size=args.image_size)
        print(f"Profile {args.profile}: {size.describe()} (flags override it; --profile "
              "smoke|cpu|full picks another)")
        return None, size.limit, size.image_size, size.train_config(**given)
    checkpoint = load_checkpoint(last)
    check_fields(checkpoint, last)
    check_resumable(checkpoint, last)
    check_continues(checkpoint, {**checkpoint["model_config"], **_model_flags(args)},
                    train_config=given)
    limit = (checkpoint.get("split") or {}).get("limit")
    if args.limit not in (None, limit):
        raise ValueError(f"--limit {args.limit} differs from the run's "
                         f"{'all images' if limit is None else limit}: a resumed run keeps its "
                         "images (drop the flag, or start a new run in another --out)")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}   # an older run's may be gone
    saved = {k: v for k, v in checkpoint["train_config"].items() if k in fields}
    return checkpoint, limit, None, TrainConfig(**{**saved, **given})


def _one_process_per_gpu(device: str | None) -> None:
    """Under torchrun on GPUs (NCCL), at most one process per GPU of this machine: else one
    process fails to take its GPU and the others wait for it (Colab has one GPU). The first
    process of the machine says so; the others exit with it, silently."""
    if not torch.distributed.is_torchelastic_launched() or device == "cpu":
        return
    processes, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", 1)), torch.cuda.device_count()
    if torch.cuda.is_available() and processes > gpus:
        if os.environ.get("LOCAL_RANK", "0") != "0":
            raise SystemExit(EXIT_BAD_INPUT)
        raise ValueError(f"torchrun started {processes} processes on this machine, which has "
                         f"{gpus} CUDA GPU{'s' * (gpus != 1)}: one process per GPU "
                         f"(--nproc_per_node={gpus}), or train on the CPU (--device cpu: gloo)")


def cmd_train(args: argparse.Namespace) -> int:
    """Train on a dataset; checkpoints go to RUN_DIR/last.pt and RUN_DIR/best.pt."""
    name = Path(args.dataset).name if Path(args.dataset).is_dir() else args.dataset
    run_dir = args.run_dir = Path(args.out) if args.out else runs_dir(args.profile) / name
    if args.resume and not (run_dir / "last.pt").is_file():
        raise ValueError(f"--resume: {run_dir / 'last.pt'} does not exist; start the run without "
                         "--resume")
    _one_process_per_gpu(args.device)
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
        raise ValueError(f"{run_dir} already holds a run (last.pt); pass --resume to continue it, "
                         "or choose another --out, so that nothing is overwritten")
    resumed, limit, image_size, config = _recipe(args, name, last)
    device = device or _pick_device(args.device)
    # a run trained on generated stand-ins goes on with them in a shell without smoke mode
    splits = load_splits(args.dataset, root=args.data_root, profile=args.profile, limit=limit,
                         seed=config.seed, standins=bool(resumed and resumed.get("synthetic")))
    model = (AlexNet(**resumed["model_config"]) if resumed else build_model(
        splits, seed=config.seed, **{**_model_flags(args), "image_size": image_size}))
    c = model.config
    print(f"AlexNet ({c['variant']}, {c['image_size']} px, {c['in_channels']} channel(s), init "
          f"{c['init']}, LRN {'on' if c['lrn'] else 'off'}) on {splits.name} "
          f"({'generated stand-in' if splits.synthetic else 'real'} data)")
    args.fitting = True   # a Ctrl-C from here on is fit's: it saved every finished epoch
    history = fit(model, splits, config, run_dir, device=device, resume=args.resume)
    if history:
        best = max(history, key=lambda row: row["val_acc"])
        print(f"Done: {len(history)} epoch(s); best validation accuracy {best['val_acc']:.4f} "
              f"(epoch {best['epoch']})")
    checkpoint = _resolve_checkpoint(run_dir)
    evaluate_it = (["evaluate", "--checkpoint", checkpoint]
                   + (["--dataset", args.dataset] if Path(args.dataset).is_dir() else [])
                   + (["--data-root", args.data_root] if args.data_root else []))
    print(f"Checkpoint: {_shell_word(checkpoint)}\nNext: {_command(evaluate_it, PROG)}")
    return EXIT_OK


def _pick_device(prefer: str | None) -> torch.device:
    """`pick_device`, said without its hint for notebooks (the profile line said what runs)."""
    device = pick_device(prefer, verbose=False)
    print(f"Using {describe_device(device)}")
    return device


def _say_interrupted(args: argparse.Namespace) -> None:
    """What an interrupted command left; for `train` (said by rank 0) the command that goes on:
    --resume where the run folder holds a last.pt (its finished epochs), else the same command."""
    run_dir = getattr(args, "run_dir", None)   # set by `train` before it writes anything
    if run_dir is None or not distributed.is_main():
        return _error("interrupted" + (" (nothing was written)" if run_dir is None else ""))
    # the profile (from the environment, if not typed) decides the run folder and whether
    # STL-10 downloads: pin it
    typed = any(word.split("=")[0] == "--profile" for word in args.argv)
    pinned = [] if typed else ["--profile", args.profile]
    if (last := run_dir / "last.pt").is_file():
        text = (f"Interrupted: {_shell_word(last)} holds the run. Continue it exactly with: "
                f"{_command(args.argv + pinned + ([] if args.resume else ['--resume']))}")
    else:
        stage = "its first epoch finished" if hasattr(args, "fitting") else "training started"
        text = (f"Interrupted before {stage}: nothing was saved. Start again with: "
                f"{_command(args.argv + pinned)}")
    print(text, file=sys.stderr)


# evaluate ----------------------------------------------------------------------------------------
TTA = {None: (False, "one centre view"), "ten": (True, "ten-crop averaged (Section 4.1)"),
       "flip": ("flip", "the centre view and its mirror image, averaged")}   # --tta: (tta, said)


def _held_out(args: argparse.Namespace, checkpoint: dict):
    """(dataset name, synthetic, split): the run's own split, rebuilt and checked
    (`profiles.held_out_split`); with --split all, every image of --dataset, classes checked."""
    recipe, classes = checkpoint.get("split") or {}, list(checkpoint["classes"])
    dataset, every = args.dataset or checkpoint["dataset"], args.split == "all"
    if every and args.dataset is None:
        raise ValueError("--split all scores every image of data you name: pass --dataset FOLDER "
                         "(one sub-folder of images per class), or a dataset name with "
                         "--data-root; the run's own held-out images are --split test")
    if args.dataset is None and dataset not in DATASETS and not Path(dataset).is_dir():
        raise ValueError(f"the checkpoint was trained on an image folder called {dataset!r}; "
                         "pass its path with --dataset")
    if every and Path(dataset).is_dir():
        split, synthetic = folder_dataset(dataset), False
        if list(split.classes) != classes:
            raise ValueError(f"the run was trained on the classes {classes}, but {dataset!r} has "
                             f"{list(split.classes)}: evaluate it on data with the same classes "
                             "(one sub-folder per class, named as in training)")
    else:   # --split all of a named dataset: all its test files
        # a run on generated stand-ins (smoke mode, offline) is scored on them again in a shell
        # without smoke mode (real files hold other images: its split would not match)
        standins = bool(checkpoint.get("synthetic")) and args.dataset is None
        split, synthetic = held_out_split(dataset, args.data_root, args.profile, standins,
                                          classes=classes,
                                          split="test" if every else args.split,
                                          recipe=None if every else recipe)
    if every:
        print(f"note: --split all scores all {len(split)} images of {_printable(dataset)} as an "
              "independent test set: no split protection applies (nothing checks that the run "
              "did not train on any of them; if it did, the accuracy is too high)",
              file=sys.stderr)
    elif args.split != "train" and recipe.get(args.split) is None:
        print(f"warning: {args.checkpoint} does not record which images its run held out "
              f"(an older or foreign checkpoint): the {args.split} split cannot be checked "
              "for images the model trained on", file=sys.stderr)
    return str(dataset), synthetic, split


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Top-1/top-5 accuracy and a per-class precision/recall/F1 table on one split."""
    stdout = sys.stdout   # with --json it carries one JSON object: all chatter goes to stderr
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        device, path = _pick_device(args.device), _resolve_checkpoint(args.checkpoint)
        model, checkpoint = load_model(path, device=device)
        dataset, synthetic, split = _held_out(args, checkpoint)
        if args.limit is not None:   # a subset of the held-out split, never a redrawn one
            split = split.subset(torch.arange(min(args.limit, len(split))))
        tta, how = TTA[args.tta]
        result = evaluate(model, split, eval_transform(checkpoint), device, tta=tta)
        classes = list(checkpoint["classes"])   # escaped in text; json.dumps escapes its own
        report = per_class_report(result["predictions"], result["targets"],
                                  classes if args.json else [_printable(c) for c in classes])
    summary = {"checkpoint": str(path), "dataset": dataset, "split": args.split, "tta": args.tta,
               "synthetic": bool(synthetic),
               **{k: result[k] for k in ("n", "loss", "top1", "top5")},   # top5: None below 5
               "macro_f1": report.macro_f1,
               "per_class": [{"class": r.pop("cls"), **r} for r in report.rows()]}
    if args.json:
        print(_json(summary), file=stdout)
        return EXIT_OK
    stand_in = " (generated stand-in data)" if synthetic else ""
    print(f"{_printable(dataset)}{stand_in}, {args.split} split: {summary['n']} images, {how}")
    print("   ".join([f"top-{k} accuracy {a:.4f} (error {1 - a:.4f})"
                      for k, a in ((1, result["top1"]), (5, result["top5"])) if a is not None]
                     + [f"loss {result['loss']:.4f}\n\n{report.table()}"]))
    return EXIT_OK


# predict -----------------------------------------------------------------------------------------
def cmd_predict(args: argparse.Namespace) -> int:
    """The top-k classes and their probabilities for each image: a table, one row per image."""
    device = pick_device(args.device, verbose=False)
    model, checkpoint = load_model(_resolve_checkpoint(args.checkpoint), device=device)
    transform = eval_transform(checkpoint).to(device)
    classes = list(checkpoint["classes"])
    channels = int(checkpoint.get("in_channels_data", model.config["in_channels"]))
    # large photos are shrunk as they are read, to no more than the transform uses
    shorter_side = 2 * max(transform.resize_size, transform.image_size)
    k = min(args.top_k, len(classes))
    failed, results = 0, []
    for path in _inputs(args.images):   # one image at a time: any size, little memory
        try:
            image = read_image_tensor(path, channels, shorter_side)
        except (FileNotFoundError, ValueError) as err:   # a DataFileError names the file
            _error(err)
            failed += 1
            continue
        top = torch.topk(predict(model, image, transform, device)[0], k)
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
DATASET_HELP = ("fashion-mnist (28x28 grey), stl10 (96x96 colour), or a folder with one "
                "sub-folder of images per class")


def _checked(convert, check, what: str = ""):
    """An argparse type: `convert`, then `check`, a predicate (False: the value must be `what`) or
    a check whose ValueError ("momentum must be ...") reads "argument --momentum: must be ..."."""
    def parse(text: str):
        value = convert(text)   # argparse: "invalid int value: 'many'"
        try:
            if check(value) is False:
                raise ValueError(f"must be {what}, got {value}")
        except ValueError as err:
            raise argparse.ArgumentTypeError(re.sub(r"^\w+ must", "must", str(err))) from None
        return value
    parse.__name__ = convert.__name__
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_image_side = _checked(int, lambda v: 1 <= v <= MAX_IMAGE_SIZE,
                       f"a side from 1 to {MAX_IMAGE_SIZE} px (the paper's is 227)")
# NaN fails every comparison, so it is refused too
_probability = _checked(float, lambda v: 0 <= v < 1, "a probability from 0 to below 1")


def _command_parser(commands, name: str, summary: str, run, description: str,
                    epilog: str | None = None):
    """A sub-command's `add_argument`, with --device, --data-root (and --checkpoint, --json)."""
    p = commands.add_parser(name, help=summary, description=description, epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)
    add = p.add_argument
    add("--device", help="cpu, cuda, cuda:1, mps (default: a GPU if there is one)")
    add("--data-root", metavar="DIR",
        help="where datasets live (default: $ALEXNET_EDU_DATA, else ./data)")
    if name != "train":
        add("--checkpoint", required=True, metavar="C",
            help="a best.pt/last.pt from `train` (or its run folder)")
        add("--json", action="store_true", help="print one JSON object, not tables")
    return add


def _add_train(commands) -> None:
    add = _command_parser(
        commands, "train", "train an AlexNet from scratch", cmd_train,
        "Train AlexNet from scratch with the paper's recipe (Section 5): SGD with momentum 0.9, "
        "weight decay 5e-4, batch 128, learning rate 0.01 divided by 10 when the validation "
        "error stops improving; random crops, flips and PCA colour noise (Section 4.1); dropout "
        "0.5 (Section 4.2). Each epoch writes RUN_DIR/last.pt (and best.pt on a new best "
        "validation accuracy); --resume continues exactly from the last finished epoch.",
        f"example:\n  {PROG} train --dataset fashion-mnist --image-size 67 --limit 600 "
        "--epochs 2 --out runs/try")
    add("--dataset", required=True, metavar="NAME_OR_DIR", help=DATASET_HELP)
    add("--out", metavar="RUN_DIR", help="run folder for checkpoints (default: runs/<dataset>)")
    add("--resume", action="store_true", help="continue the run in RUN_DIR from last.pt (flags "
        "that would change its architecture, images or recipe are refused)")
    add("--profile", choices=PROFILES, help="run size: smoke (a quick check; with "
        "ALEXNET_EDU_SMOKE=1, generated stand-ins for data not on disk), cpu (67 px), full (227 "
        "px, all images) (default: $ALEXNET_EDU_PROFILE, else smoke under ALEXNET_EDU_SMOKE=1, "
        "else full on a CUDA GPU, else cpu)")
    add("--limit", type=_positive_int, metavar="N",
        help="use at most N images per split (default: the profile's)")
    _add_config_flags(add)
    # architecture flags default to None, so --resume tells a flag given from one left out
    add("--image-size", type=_image_side, metavar="S", help="side of the square input "
        "(default: the profile's: 227 in full, the paper's; 67, the smallest it takes, else)")
    add("--init", choices=INITS, help="weight initialization (default: "
        "kaiming; paper = Section 5's N(0, 0.01), tuned for raw 0-255 pixels)")
    add("--no-lrn", action="store_true", help="leave out Local Response Normalization")
    add("--variant", choices=VARIANTS, help="paper: 96-256-384-384-256 kernels "
        "with LRN (Figure 2); torchvision: 64-192-384-256-256, no LRN (default: paper)")
    add("--groups", type=int, choices=(1, 2),
        help="2 splits conv2, conv4 and conv5 into the paper's two GPU towers (default: 1)")
    add("--dropout", type=_probability, metavar="P",
        help="dropout probability in fc6 and fc7 (default: 0.5, Section 4.2)")
    add("--rgb", action="store_true", help="give grey data to a 3-channel network")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `alexnet-edu {train,evaluate,predict}`."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="AlexNet (Krizhevsky, Sutskever & Hinton, 2012) for learning: train it, "
                    "evaluate it, classify your own images.",
        epilog=f"example:\n  {PROG} train --dataset fashion-mnist --epochs 10 --out runs/fm\n"
               f"  {PROG} evaluate --checkpoint runs/fm/best.pt --tta\n"
               f"  {PROG} predict --checkpoint runs/fm/best.pt shirt.png photos/\n\n"
               "Exit codes: 0 ok, 2 bad input (one line on stderr says why), 130 interrupted.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(commands)
    add = _command_parser(
        commands, "evaluate", "accuracy and per-class report of a checkpoint", cmd_evaluate,
        "Top-1/top-5 accuracy (Table 1 reports error rates) and per-class precision, recall and "
        "F1 of a checkpoint on a split, preprocessed as in training.")
    add("--dataset", metavar="NAME_OR_DIR",
        help=DATASET_HELP + " (default: the one the checkpoint was trained on)")
    add("--split", choices=("train", "val", "test", "all"), default="test",
        help="the run's own split, rebuilt and checked against what it held out (default: "
             "%(default)s); all: every image of --dataset, an independent test set")
    add("--limit", type=_positive_int, metavar="N", help="use at most N images")
    add("--tta", nargs="?", const="ten", choices=("ten", "flip"),
        help="test-time averaging: ten (plain --tta) = the 4 corner and centre crops and their "
             "mirrors (Section 4.1); flip = the centre and its mirror")
    add = _command_parser(
        commands, "predict", "classify image files", cmd_predict,
        "The most probable classes of each image (softmax of fc8). Files that are not readable "
        "images are reported on stderr; the others are still classified.")
    add("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders (recursive)")
    add("--top-k", type=_positive_int, default=5, metavar="K",
        help="classes shown per image (default: %(default)s, the paper's top-5)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv   # as typed: the resume hint repeats it
    except SystemExit as stop:  # --help (0) or a usage error (2; argparse printed why)
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    try:
        if args.command != "predict":   # the policy, decided here and passed down
            args.profile = getattr(args, "profile", None) or current_profile().name
        return args.run(args)
    # the library's message says what is wrong and what to do; the CLI's own are ValueErrors too
    except (ValueError, OSError, FloatingPointError, OutOfMemory) as err:
        _error(err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say_interrupted(args)
        return EXIT_INTERRUPTED
