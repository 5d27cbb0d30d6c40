"""Checkpoints of a collection run: partial sums/counts as a GGUF imatrix plus a JSON state record, and resuming.

A checkpoint of OUTPUT is three files beside it, each written atomically, the state record last:
  * OUTPUT.checkpoint.gguf  - the partial statistics as an ordinary imatrix (chunk_count = chunks done), so it can be
    inspected, merged or even quantized with; its in_sum2 and in_sum restore both planes of the accumulators;
  * OUTPUT.checkpoint.npz   - only when the GGUF cannot hold the state exactly (float64 accumulators, or a count
    beyond float32's 2^24 exact integers): the accumulators in their own dtype and int64 counts;
  * OUTPUT.checkpoint.json  - next chunk, the run identity (model, data hash, chunking and collection options),
    the perplexity accumulators (Python floats round-trip exactly through JSON) and the sha256 of the other files.
Resuming restores the accumulators bit for bit and continues with the same batch boundaries, so the final file equals
an uninterrupted run's byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from calibkit.atomic import sha256_file, write_atomic, write_with
from imatrix.collect.accumulators import Accumulators
from imatrix.files.imatrix_file import ImatrixFileError, read_imatrix, write_gguf
from imatrix.runners.base import Perplexity

STATE_VERSION = 1
EXACT_FLOAT32_COUNT = 2**24


class CheckpointError(ImatrixFileError):
    """A checkpoint that cannot be resumed from; the message names the file and the differing option."""


@dataclass(frozen=True)
class CheckpointPaths:
    gguf: Path
    exact: Path
    state: Path
    layers: Path  # --offload sequential: accumulators, energies and hidden states after the last finished layer

    @classmethod
    def beside(cls, output: Path) -> CheckpointPaths:
        """OUTPUT.checkpoint.{gguf,npz,json,pt}."""
        base = Path(output)
        return cls(*(base.with_name(f"{base.name}.checkpoint.{ext}") for ext in ("gguf", "npz", "json", "pt")))

    def remove(self) -> None:
        for path in (self.state, self.gguf, self.exact, self.layers):  # state first: never resume a half-removed one
            path.unlink(missing_ok=True)



def sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RunIdentity:
    """What must not change between a checkpoint and its resume: each field is compared and named on mismatch."""

    model: str  # the model's path as given
    model_config_sha256: str  # the loaded config (architecture, dims, rope, windows) and the dtype
    data_sha256: str  # calibration file bytes
    chunks_sha256: str  # the token chunks (tokenizer, --parse-special, BOS handling)
    ctx_size: int
    n_chunk: int
    skip_chunks: int
    chunks_per_batch: int  # batch boundaries fix the float accumulation order
    accumulate: str
    keys_sha256: str  # imatrix keys and shapes (--process-output, --fuse-*, --skip-unmapped)
    weights_sha256: str = ""  # sizes + fast hash of the weight files: changed weights refuse --resume
    unit: str = "chunks"  # what a checkpoint counts: chunks (resident) or layers (--offload sequential)
    hybrid: bool = False  # --hybrid checkpoints also hold the column energies


def weights_fingerprint(files: list[Path]) -> str:
    """Sizes and a fast hash of the weight files (the first and last MiB: the safetensors/GGUF header and a sample
    of the data), so a checkpoint is not resumed onto changed weights without reading the whole checkpoint."""
    digest = hashlib.sha256()
    for path in sorted(files):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}\n".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def source_weight_files(folder: Path, gguf_path: Path | None) -> list[Path]:
    if gguf_path is not None:
        return [Path(gguf_path)]
    return sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin"))


def run_identity(*, model_label: str, model_config: dict, dtype: str, data: Path, chunks: np.ndarray,
                 skip_chunks: int, chunks_per_batch: int, accumulate: str, shapes: dict[str, tuple[int, int]],
                 weight_files: list[Path] = (), unit: str = "chunks", hybrid: bool = False) -> RunIdentity:
    """The identity of a collection run from its inputs and options."""
    return RunIdentity(
        model=str(model_label), model_config_sha256=sha256_json({"config": model_config, "dtype": dtype}),
        data_sha256=sha256_file(Path(data)), chunks_sha256=hashlib.sha256(np.ascontiguousarray(chunks).tobytes())
        .hexdigest(), ctx_size=int(chunks.shape[1]), n_chunk=int(chunks.shape[0]), skip_chunks=int(skip_chunks),
        chunks_per_batch=int(chunks_per_batch), accumulate=accumulate,
        keys_sha256=sha256_json(sorted((k, list(v)) for k, v in shapes.items())),
        weights_sha256=weights_fingerprint(list(weight_files)), unit=unit, hybrid=hybrid)


def _needs_exact_sidecar(stats: Accumulators) -> bool:
    too_many = any(int(c.max()) >= EXACT_FLOAT32_COUNT for c in stats.counts.values() if c.numel())
    return stats.dtype != torch.float32 or too_many


def save_checkpoint(paths: CheckpointPaths, identity: RunIdentity, stats: Accumulators, next_chunk: int,
                    perplexity: Perplexity | None, datasets: list[str]) -> None:
    """Write the three files atomically (state record last, naming the others' sha256)."""
    imatrix = stats.to_imatrix(datasets, next_chunk, identity.ctx_size)
    write_gguf(imatrix, paths.gguf)
    files = {"gguf": sha256_file(paths.gguf)}
    if _needs_exact_sidecar(stats):
        arrays = {f"sums:{k}": v.detach().cpu().numpy() for k, v in stats.sums.items()}
        arrays.update({f"counts:{k}": v.detach().cpu().numpy() for k, v in stats.counts.items()})
        write_with(paths.exact, lambda tmp: _save_npz(tmp, arrays))
        files["exact"] = sha256_file(paths.exact)
    else:
        paths.exact.unlink(missing_ok=True)
    state = {"version": STATE_VERSION, "next_chunk": int(next_chunk), "identity": asdict(identity), "files": files,
             "perplexity": None if perplexity is None else _perplexity_state(perplexity)}
    write_atomic(paths.state, json.dumps(state, indent=1, sort_keys=True) + "\n")


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:  # a file object: np.savez would append .npz to the temporary name
        np.savez(handle, **arrays)


def _perplexity_state(perplexity: Perplexity) -> dict:
    return {"nll": perplexity.nll, "nll2": perplexity.nll2, "count": perplexity.count,
            "per_chunk": list(perplexity.per_chunk)}


def _read_state(paths: CheckpointPaths) -> dict:
    if not paths.state.is_file():
        raise CheckpointError(f"{paths.state}: no checkpoint to resume from (run with --save-every N first, or "
                              "drop --resume)")
    try:
        state = json.loads(paths.state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{paths.state}: unreadable checkpoint state ({error}); "
                              "delete it to start over") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{paths.state}: not a version-{STATE_VERSION} checkpoint state; delete it to start over")
    return state


def _check_identity(paths: CheckpointPaths, saved: dict, identity: RunIdentity) -> None:
    current = asdict(identity)
    differing = [f"{name}: checkpoint {saved.get(name)!r}, this run {value!r}"
                 for name, value in current.items() if saved.get(name) != value]
    if differing:
        raise CheckpointError(f"{paths.state}: cannot resume, the run differs from the checkpoint's "
                              f"({'; '.join(differing)}). Rerun with the checkpoint's model, data and options, "
                              "or delete the checkpoint files to start over")


def _check_file(paths: CheckpointPaths, path: Path, expected: str | None) -> None:
    if expected is None or not path.is_file() or sha256_file(path) != expected:
        raise CheckpointError(f"{path}: missing or changed since {paths.state} was written; delete the checkpoint "
                              "files to start over")


def load_checkpoint(paths: CheckpointPaths, identity: RunIdentity, stats: Accumulators) -> tuple[int, Perplexity | None]:
    """Restore `stats` from the checkpoint; returns (next chunk, perplexity so far). Refuses a different run."""
    state = _read_state(paths)
    _check_identity(paths, state.get("identity", {}), identity)
    files = state.get("files", {})
    _check_file(paths, paths.gguf, files.get("gguf"))
    if "exact" in files:
        _check_file(paths, paths.exact, files["exact"])
        with np.load(paths.exact) as arrays:
            sums = {k: arrays[f"sums:{k}"] for k in stats.sums}
            counts = {k: arrays[f"counts:{k}"] for k in stats.counts}
    else:
        imatrix = read_imatrix(paths.gguf)
        if set(imatrix.entries) != set(stats.sums):
            raise CheckpointError(f"{paths.gguf}: its entries differ from this run's tensors")
        lacking = imatrix.without_activations()
        if lacking:
            raise CheckpointError(f"{paths.gguf}: {lacking[0]} has no in_sum (a checkpoint of an older calibkit); "
                                  "delete the checkpoint files to start over")
        sums = {k: np.stack((e.sums, e.activation_sums), axis=1).reshape(stats.sums[k].shape)
                for k, e in imatrix.entries.items()}
        counts = {k: np.broadcast_to(e.counts, stats.counts[k].shape) for k, e in imatrix.entries.items()}
    with torch.no_grad():
        for key in stats.sums:
            stats.sums[key].copy_(torch.from_numpy(np.asarray(sums[key])).to(stats.dtype))
            stats.counts[key].copy_(torch.from_numpy(np.asarray(counts[key]).astype(np.int64)))
    saved = state.get("perplexity")
    perplexity = None if saved is None else Perplexity(saved["nll"], saved["nll2"], saved["count"],
                                                       list(saved["per_chunk"]))
    return int(state["next_chunk"]), perplexity


class Checkpointer:
    """Keeps a copy of the statistics at the last completed batch and writes it every `every` chunks or on failure.

    The copy is what makes a Ctrl-C (or any crash) in the middle of a batch safe: the hooks may already have added part
    of that batch, the copy has not. It costs one device-side copy of the accumulators per batch.
    """

    def __init__(self, paths: CheckpointPaths, identity: RunIdentity, stats: Accumulators, datasets: list[str],
                 every: int, start_chunk: int = 0, perplexity: Perplexity | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.paths, self.identity, self.stats, self.datasets = paths, identity, stats, datasets
        self.every, self.log = every, log
        self.done, self.saved_at = start_chunk, start_chunk
        self.perplexity = _copy_perplexity(perplexity)
        self.snapshot = _copy_stats(stats)

    def batch_done(self, next_chunk: int, perplexity: Perplexity | None) -> None:
        """Runner callback after every completed batch."""
        self.done, self.perplexity = next_chunk, _copy_perplexity(perplexity)
        self.snapshot = _copy_stats(self.stats, into=self.snapshot)
        if self.every > 0 and next_chunk - self.saved_at >= self.every and next_chunk < self.identity.n_chunk:
            self.save()

    def save(self) -> None:
        """Write the state of the last completed batch."""
        save_checkpoint(self.paths, self.identity, self.snapshot, self.done, self.perplexity, self.datasets)
        self.saved_at = self.done

    def save_after_failure(self, error: BaseException) -> str | None:
        """On an interrupted run: write the last completed batch (if new) and say where; None if nothing to save."""
        if self.done == 0 and not self.paths.state.exists():
            return None
        if self.done > self.saved_at or not self.paths.state.exists():
            self.save()
        return (f"{type(error).__name__} after chunk {self.done}/{self.identity.n_chunk}; checkpoint "
                f"{self.paths.state} holds chunks 0..{self.done - 1}: rerun with --resume to continue")


def _copy_perplexity(perplexity: Perplexity | None) -> Perplexity | None:
    if perplexity is None:
        return None
    return Perplexity(perplexity.nll, perplexity.nll2, perplexity.count, list(perplexity.per_chunk))


def _copy_stats(stats: Accumulators, into: Accumulators | None = None) -> Accumulators:
    """A copy of the accumulators on their own devices (reusing `into`'s buffers)."""
    if into is None:
        into = Accumulators.__new__(Accumulators)
        into.dtype = stats.dtype
        into.sums = {k: v.clone() for k, v in stats.sums.items()}
        into.counts = {k: v.clone() for k, v in stats.counts.items()}
        return into
    with torch.no_grad():
        for key in stats.sums:
            into.sums[key].copy_(stats.sums[key])
            into.counts[key].copy_(stats.counts[key])
    return into


def run_resumable(run: Callable[[int, Perplexity | None, Callable], Perplexity | None], stats: Accumulators,
                  paths: CheckpointPaths, identity: RunIdentity, datasets: list[str], *, every: int, resume: bool,
                  log: Callable[[str], None] = print) -> Perplexity | None:
    """run(start_chunk, perplexity, on_batch_done) with checkpoints every `every` chunks and on any failure.

    A non-finite sum is not checkpointed (the data up to it would be resumed into the same error).
    """
    from imatrix.runners.base import NonFiniteError

    start, perplexity = load_checkpoint(paths, identity, stats) if resume else (0, None)
    if resume:
        log(f"resuming from {paths.state}: chunks 0..{start - 1} done, {identity.n_chunk - start} to go")
    checkpointer = Checkpointer(paths, identity, stats, datasets, every, start, perplexity, log)
    try:
        return run(start, perplexity, checkpointer.batch_done)
    except NonFiniteError:
        raise
    except BaseException as error:
        message = checkpointer.save_after_failure(error)
        if message is not None:
            log(message)
        raise


class LayerCheckpointer:
    """--offload sequential: a checkpoint after every `every` finished layers (accumulators, --hybrid energies and
    the hidden states leaving that layer); resuming continues at the next layer with bit-identical results."""

    def __init__(self, paths: CheckpointPaths, identity: RunIdentity, every: int, resume: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.paths, self.identity, self.every, self.resume, self.log = paths, identity, every, resume, log
        self.saved_layers = 0

    def layer_done(self, n_done: int, n_layers: int, stats: Accumulators, energy: dict | None,
                   hidden: list[torch.Tensor]) -> None:
        if self.every > 0 and n_done % self.every == 0 and n_done < n_layers:
            self.save(n_done, stats, energy, hidden)

    def save(self, n_done: int, stats: Accumulators, energy: dict | None, hidden: list[torch.Tensor]) -> None:
        payload = {"sums": {k: v.detach().cpu() for k, v in stats.sums.items()},
                   "counts": {k: v.detach().cpu() for k, v in stats.counts.items()},
                   "energy": energy, "hidden": [h.detach().cpu() for h in hidden]}
        write_with(self.paths.layers, lambda tmp: torch.save(payload, tmp))
        state = {"version": STATE_VERSION, "next_layer": int(n_done), "identity": asdict(self.identity),
                 "files": {"layers": sha256_file(self.paths.layers)}, "perplexity": None}
        write_atomic(self.paths.state, json.dumps(state, indent=1, sort_keys=True) + "\n")
        self.saved_layers = n_done

    def load(self, stats: Accumulators, energy: dict | None) -> tuple[int, list[torch.Tensor]]:
        """Restore stats (and energies); returns (next layer, hidden states leaving the last finished layer)."""
        state = _read_state(self.paths)
        _check_identity(self.paths, state.get("identity", {}), self.identity)
        _check_file(self.paths, self.paths.layers, state.get("files", {}).get("layers"))
        payload = torch.load(self.paths.layers, weights_only=False)
        with torch.no_grad():
            for key in stats.sums:
                stats.sums[key].copy_(payload["sums"][key])
                stats.counts[key].copy_(payload["counts"][key])
        if energy is not None:
            energy.update(payload["energy"] or {})
        self.saved_layers = int(state["next_layer"])
        self.log(f"resuming from {self.paths.state}: layers 0..{self.saved_layers - 1} done")
        return self.saved_layers, payload["hidden"]

    def failure_message(self, error: BaseException) -> str | None:
        if not self.saved_layers:
            return None
        return (f"{type(error).__name__}; checkpoint {self.paths.state} holds layers 0..{self.saved_layers - 1}: "
                "rerun with --resume to continue at the next layer")
