"""A progress bar with per-epoch metrics (tqdm on a terminal, one line per epoch otherwise)."""

from __future__ import annotations

import sys
import time

import keras


class EpochProgress(keras.callbacks.Callback):
    def __init__(self, epochs: int, verbose: int | None = None):
        super().__init__()
        self.epochs = epochs
        self.verbose = (1 if sys.stderr.isatty() else 2) if verbose is None else verbose
        self._bar = None
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()
        if self.verbose == 1:
            from tqdm.auto import tqdm

            steps = self.params.get("steps")
            self._bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{self.epochs}", leave=True, file=sys.stderr)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)
            if logs and batch % 20 == 0:
                self._bar.set_postfix(loss=f"{float(logs.get('loss', 0)):.3f}",
                                      acc=f"{float(logs.get('accuracy', 0)):.3f}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        lr = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(lr.numpy() if hasattr(lr, "numpy") else lr)
        msg = (f"epoch {epoch + 1}/{self.epochs} {time.time() - self._t0:.0f}s "
               + " ".join(f"{k}={float(v):.4f}" for k, v in logs.items()))
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)
