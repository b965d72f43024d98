"""Install a trained embedder as one this package ships: the transformer's compact delta
(``ship``) or the static model (``ship --static``, ``localizer/models/static``).

``localize --model localizer-cornstack`` loads ``localizer/models/cornstack``
(``localizer.embedding.shipped.shipped_model_dir``), which is package data: by default
``ship`` writes into the source tree of the checkout it runs from (or into site-packages
of a non-editable install), and the release carries what is there. ``--into DIR`` installs
elsewhere (a scratch copy, a harness run). What goes there is checked here, not copied by
hand: the delta must fit the package's 25 MB budget, must rebuild on the packaged MiniLM it
was made for (its base and delta hashes are verified by loading it), and carries its model
card (training config, data stats and hashes, written by ``train``) plus the run's training
and held-out figures, so the weights in a release say where they came from.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from indexer.storage.atomic import atomic_replace_dir
from localizer.embedding.shipped import (
    CARD_FILE,
    DELTA_FILE,
    MANIFEST_FILE,
    CompactError,
    is_compact_dir,
    load_compact,
    read_manifest,
    sha256_file,
    shipped_model_dir,
    shipped_static_dir,
)
from localizer.embedding.static import CONFIG_FILE as STATIC_CONFIG
from localizer.embedding.static import TOKENIZER_FILE as STATIC_TOKENIZER
from localizer.embedding.static import WEIGHTS_FILE as STATIC_WEIGHTS
from localizer.embedding.static import StaticModel, is_static_dir

MAX_SHIPPED_BYTES = 25_000_000  # the budget for weights inside the package
# Files of a training run that travel with the delta: its full record and its held-out eval.
RUN_RECORDS = {"train_stats.json": "train_stats.json", "eval/metrics.json": "heldout_eval.json",
               "eval-registry/metrics.json": "heldout_eval_registry.json"}


@dataclass(frozen=True)
class ShipReport:
    target: Path
    delta_bytes: int
    delta_sha256: str
    files: tuple[str, ...]


def install_package_data(target: Path, weights: dict[str, Path], run: Path) -> None:
    """Copy the weights and the run's records (:data:`RUN_RECORDS`) into ``target``, replacing it atomically."""
    records = {name: run / source for source, name in RUN_RECORDS.items() if (run / source).is_file()}

    def write(tmp: Path) -> None:
        for name, source in {**weights, **records}.items():
            shutil.copy2(source, tmp / name)

    atomic_replace_dir(target, write, public=True)


def delta_dir_of(run: str | Path) -> Path:
    """A training run's ``delta/``, or the path itself when it is a delta directory."""
    run = Path(run)
    for candidate in (run / "delta", run):
        if is_compact_dir(candidate):
            return candidate
    raise CompactError(f"{run} holds no compact delta ({MANIFEST_FILE} and {DELTA_FILE}); is it a `train` output?")


def ship(run: str | Path, target: str | Path | None = None, max_bytes: int = MAX_SHIPPED_BYTES) -> ShipReport:
    """Check the run's delta and install it (with its card and records) at ``target``, atomically.

    ``target`` defaults to the package's own ``models/cornstack`` (:func:`shipped_model_dir`).
    """
    run = Path(run)
    delta = delta_dir_of(run)
    size = (delta / DELTA_FILE).stat().st_size + (delta / MANIFEST_FILE).stat().st_size
    if size > max_bytes:
        raise CompactError(f"{delta} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB the package may ship "
                           "(train with frozen embeddings, or LoRA, for a smaller delta)")
    if not (delta / CARD_FILE).is_file():
        raise CompactError(f"{delta} has no model card ({CARD_FILE}); ship the delta `train` wrote, which has one")
    load_compact(delta)  # refuses another base model or a corrupt delta before anything is replaced
    target = Path(target) if target is not None else shipped_model_dir()

    install_package_data(target, {name: delta / name for name in (DELTA_FILE, MANIFEST_FILE, CARD_FILE)}, run)
    manifest = read_manifest(target)
    return ShipReport(target=target, delta_bytes=size, delta_sha256=manifest.get("delta_sha256", ""),
                      files=tuple(sorted(p.name for p in target.iterdir())))


def static_dir_of(run: str | Path) -> Path:
    """A static training run's ``static/``, or the path itself when it is a static model directory."""
    run = Path(run)
    for candidate in (run / "static", run):
        if is_static_dir(candidate):
            return candidate
    raise CompactError(f"{run} holds no static model ({STATIC_CONFIG} with model_type model2vec, {STATIC_WEIGHTS}); "
                       "is it a static `train` output?")


def ship_static(run: str | Path, target: str | Path | None = None, max_bytes: int = MAX_SHIPPED_BYTES) -> ShipReport:
    """Check a static run's model and install it (with its card and records) at ``target``, atomically.

    ``target`` defaults to the package's ``models/static`` (:func:`shipped_static_dir`), where
    ``--model localizer-static`` finds it (never a default: benchmarks/RESULTS.md, "Static
    embedder"). The model must fit the budget, load in the runtime's numpy loader, and carry the
    model card ``train`` wrote.
    """
    run = Path(run)
    model = static_dir_of(run)
    files = [model / name for name in (STATIC_CONFIG, STATIC_WEIGHTS, STATIC_TOKENIZER)]
    size = sum(f.stat().st_size for f in files)
    if size > max_bytes:
        raise CompactError(f"{model} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB the package may ship "
                           "(distil with fewer --dims)")
    if not (model / CARD_FILE).is_file():
        raise CompactError(f"{model} has no model card ({CARD_FILE}); ship the static/ directory `train` wrote")
    StaticModel.load(model)  # refuses a corrupt table before anything is replaced
    target = Path(target) if target is not None else shipped_static_dir()

    install_package_data(target, {f.name: f for f in (*files, model / CARD_FILE)}, run)
    return ShipReport(target=target, delta_bytes=size, delta_sha256=sha256_file(target / STATIC_WEIGHTS),
                      files=tuple(sorted(p.name for p in target.iterdir())))
