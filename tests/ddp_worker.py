"""Run by tests/test_distributed.py in each torchrun process: `train.fit` on test_train's tiny
learnable set and network (crops, flips and dropout: every random stream matters), optionally
with Ctrl-C (SIGINT) in the given training step, in every process (as a terminal's Ctrl-C reaches
torchrun's processes) or in one alone; each process that finishes writes its history and a hash
of its generator's state to OUT/rank<r>.json. An interrupted process exits with 130."""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_train import Tiny, _splits  # noqa: E402

from alexnet_edu import distributed  # noqa: E402
from alexnet_edu.train import TrainConfig, fit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--plain", action="store_true", help="no augmentation, no dropout")
    parser.add_argument("--stop-at", type=int, default=0, help="Ctrl-C in this training step")
    parser.add_argument("--stop-rank", type=int, default=-1, help="-1: every process")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    distributed.start("cpu")
    torch.manual_seed(0)
    model = Tiny(dropout=0.0 if args.plain else 0.5)
    if args.stop_at and args.stop_rank in (-1, distributed.rank()):
        steps = [0]

        def ctrl_c(module, inputs):
            if module.training:
                steps[0] += 1
                if steps[0] == args.stop_at:
                    signal.raise_signal(signal.SIGINT)

        model.register_forward_pre_hook(ctrl_c)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch, augment=not args.plain,
                         warmup_epochs=0.5, progress=False)
    try:
        history = fit(model, _splits(n_train=args.images), config, args.out, "cpu",
                      resume=args.resume)
    except KeyboardInterrupt as stopped:
        print(stopped, flush=True)   # rank 0's says what last.pt holds; the others' are empty
        sys.exit(130)
    state = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
    (args.out / f"rank{distributed.rank()}.json").write_text(
        json.dumps({"history": history, "rng": state}))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
