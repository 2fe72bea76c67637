"""Lightning data modules: any stored dataset, split by sample, preprocessed once.

``SpectraDataModule`` works for every dataset in the store (simulated or imported); a preset
spec (``{preset: slag}``) is generated when it is missing.
"""

from __future__ import annotations

import copy
import dataclasses
import sys

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from saca_lab.config import DEFAULTS
from saca_lab.data import store
from saca_lab.datasets.augment import Augment
from saca_lab.datasets.features import FeatureSpec, dataset_features
from saca_lab.datasets.resolve import resolve_dataset
from saca_lab.datasets.splits import Split, make_split
from saca_lab.errors import InputError
from saca_lab.preprocessing.line_selection import (
    LINES_PER_ELEMENT,
    LineSelection,
    select_lines,
    target_element,
)

#: Largest share of a GPU's free memory the data of one loader may take when kept on the device;
#: the rest is for the model's weights and activations. Our largest (the full slag preset as 2D
#: images, ~65 MB) takes well under 1 % of any current GPU.
DEVICE_DATA_SHARE = 0.25


class BatchedTensors(TensorDataset):
    """A TensorDataset that hands a DataLoader whole batches: one index operation per tensor
    (``__getitems__``), not one per item followed by a stack. On a GPU that is one gather
    kernel per batch instead of ``batch_size`` slices; the items and their order are the same."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long, device=self.tensors[0].device)
        return [t[index] for t in self.tensors]


def collate_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """``collate_fn`` for :class:`BatchedTensors`: its batches are already stacked."""
    return batch


def loader_placement(device: torch.device | None, nbytes: int, num_workers: int = 0,
                     world_size: int = 1) -> dict[str, bool]:
    """Where a loader's tensors live for training on ``device``.

    Returns ``{"pin_memory": ..., "on_device": ...}``. On a CPU (or with no device known)
    neither: the tensors are already where the model runs. On a CUDA device the tensors are
    copied to it once (``on_device``) when they take at most :data:`DEVICE_DATA_SHARE` of its
    free memory, in one process (under DDP the sampler shards the items per rank) and without
    workers (a worker cannot share CUDA memory); batches are then gathered on the GPU and no
    host-to-device copy happens per step. Otherwise batches come from page-locked host memory
    (``pin_memory``), whose copies to the GPU are faster and can overlap compute.
    """
    if device is None or device.type != "cuda" or not torch.cuda.is_available():
        return {"pin_memory": False, "on_device": False}
    free = torch.cuda.mem_get_info(device)[0]
    on_device = num_workers == 0 and world_size == 1 and nbytes <= DEVICE_DATA_SHARE * free
    return {"pin_memory": not on_device, "on_device": on_device}


class SpectraDataModule(pl.LightningDataModule):
    """Train/val/test loaders over any dataset, with the split made over samples.

    Parameters
    ----------
    dataset : directory, :class:`~saca_lab.data.store.Dataset`, or ``{preset: ...}`` mapping.
    targets : target names (element or oxide); ``None`` takes all of the dataset's targets.
    input_kind : ``spectrum_1d``, ``lines_1d`` or ``image_2d`` (from the model's registry entry).
    split : ``{train, val, test, seed}`` fractions or ``{folds, fold, seed, val}``.
    shots : ``"average"``, ``"each"`` or k (mean of each k consecutive shots).
    preprocessing : ``{airpls: {lam, max_iter} | None, minmax: bool}``.
    lines : ``lines_1d`` inputs: ``"nist"`` (strongest unblended NIST lines of the target
        elements; a target without one is left out, with a message), ``"paper"`` (TrCSL's
        printed lines), wavelengths in nm, or None (``DEFAULTS["data"]["lines"]``, i.e. nist); see
        :func:`~saca_lab.preprocessing.line_selection.select_lines`. Resolved in :meth:`setup`, after
        which :attr:`feature_spec` holds the wavelengths and :attr:`line_selection` the choice.
    lines_per_element : lines per target element for ``lines="nist"``.
    augment : ``{shift_nm, jitter}`` for training spectra, or None (:mod:`saca_lab.datasets.augment`).
        Held as :attr:`augment`; the LightningModule applies it in its training step, because the
        jitter belongs after the per-pixel input standardisation.
    """

    def __init__(self, dataset, targets=None, input_kind: str = "spectrum_1d", split=None,
                 shots=DEFAULTS["data"]["shots"], preprocessing=None, lines=None,
                 half_width: int = DEFAULTS["data"]["half_width"],
                 lines_per_element: int = LINES_PER_ELEMENT, augment=None,
                 batch_size: int = DEFAULTS["data"]["batch_size"],
                 num_workers: int = DEFAULTS["data"]["num_workers"],
                 data_root: str | None = None) -> None:
        super().__init__()
        if lines is None:
            lines = DEFAULTS["data"]["lines"]
        self.dataset_spec = dataset
        self.target_names = list(targets) if targets else None
        prep = copy.deepcopy({**DEFAULTS["data"]["preprocessing"], **(preprocessing or {})})
        self.feature_spec = FeatureSpec(input_kind=input_kind, airpls=prep["airpls"], minmax=prep["minmax"],
                                        lines=None if isinstance(lines, str) else tuple(lines),
                                        half_width=half_width)
        # "nist" / "paper" resolve to wavelengths in setup: NIST lines need the training samples
        self.lines_source = lines if isinstance(lines, str) else None
        self.lines_per_element = lines_per_element
        self.line_selection: LineSelection | None = None
        self.split_spec = copy.deepcopy({**DEFAULTS["data"]["split"], **(split or {})})
        if self.split_spec.get("subset_seed") is None:
            self.split_spec.pop("subset_seed", None)
        self.shots = shots
        # validated now (before any data is read); the grid step is set from the dataset in setup
        self.augment = Augment.from_config(augment, step_nm=0.1) if augment else None
        if self.augment and self.augment.shift_nm and input_kind != "spectrum_1d":
            raise InputError(f"data.augment.shift_nm applies to full spectra only, not {input_kind!r} inputs")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.data_root = data_root
        self.ds: store.Dataset | None = None
        self._train_generator: torch.Generator | None = None
        self._resumed_generator: torch.Tensor | None = None

    def prepare_data(self) -> None:
        self._load()

    def _load(self) -> store.Dataset:
        if self.ds is None:
            spec = self.dataset_spec
            self.ds = spec if isinstance(spec, store.Dataset) else resolve_dataset(spec, self.data_root)
            if self.target_names is None:
                self.target_names = list(self.ds.targets)
        return self.ds

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "_ready", False):
            return
        ds = self._load()
        self.split: Split = make_split(ds.shape[0], self.split_spec)
        if self.lines_source is not None and self.feature_spec.input_kind == "lines_1d":
            self._select_lines(ds)
        self.y_samples = ds.target_matrix(self.target_names).astype(np.float32)
        self.features = dataset_features(ds, self.feature_spec, self.shots)
        self.input_shape = tuple(self.features.shape[2:])
        if self.augment is not None and len(ds.wavelengths) > 1:
            self.augment.step_nm = float(np.median(np.diff(ds.wavelengths)))
        self._ready = True

    def _select_lines(self, ds: store.Dataset) -> None:
        """Resolve ``lines: nist | paper`` to wavelengths; drop targets left without a line.

        The matrix's major elements come from the mean composition of the training samples
        only (element columns of the targets table), so no choice reads a test sample.
        """
        train = self.split.train
        composition = {k: float(np.mean(v[train])) for k, v in ds.targets.items()}
        sel = select_lines(self.lines_source, self.target_names, ds.wavelengths, composition,
                           self.lines_per_element, self.feature_spec.half_width)
        kept = [t for t in self.target_names if target_element(t) not in sel.dropped]
        for element, why in sel.dropped.items():
            print(f"data.lines=nist: {element} is left out of the targets: {why}", file=sys.stderr)
        self.target_names = kept
        self.line_selection = sel
        self.feature_spec = dataclasses.replace(self.feature_spec, lines=sel.lines)

    def _part(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items (spectra) of the given samples, their targets and their sample indices."""
        per = self.features.shape[1]
        x = np.asarray(self.features[indices]).reshape(len(indices) * per, *self.input_shape)
        y = np.repeat(self.y_samples[indices], per, axis=0)
        return x, y, np.repeat(indices, per)

    def tensors(self, part: str) -> TensorDataset:
        x, y, groups = self._part(getattr(self.split, part))
        # train_inputs: the training items' frozen features while a fine-tune caches them
        # (saca_lab/training/transfer.py, CacheFrozenFeatures), in the items' order
        train_inputs = getattr(self, "train_inputs", None)
        inputs = train_inputs if part == "train" and train_inputs is not None else torch.from_numpy(x)
        return BatchedTensors(inputs, torch.from_numpy(y), torch.from_numpy(groups))

    def _placement(self, data: TensorDataset) -> dict[str, bool]:
        """:func:`loader_placement` for the device of the attached Trainer (host defaults
        when the loader is built without one)."""
        trainer = self.trainer  # set by Lightning while it fits or tests with this module
        device = trainer.strategy.root_device if trainer is not None else None
        nbytes = sum(t.element_size() * t.nelement() for t in data.tensors)
        return loader_placement(device, nbytes, self.num_workers,
                                trainer.world_size if trainer is not None else 1)

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        data = self.tensors(part)
        if len(data) == 0:
            raise InputError(f"the {part} split is empty")
        place = self._placement(data)
        if place["on_device"]:
            data = BatchedTensors(*(t.to(self.trainer.strategy.root_device) for t in data.tensors))
        gen = torch.Generator().manual_seed(int(self.split_spec.get("seed", 0)))
        if part == "train":
            if self._resumed_generator is not None:
                gen.set_state(self._resumed_generator)
                self._resumed_generator = None
            self._train_generator = gen
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=gen,
                          num_workers=self.num_workers, drop_last=False,
                          collate_fn=collate_batch, pin_memory=place["pin_memory"],
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def state_dict(self) -> dict:
        """The training loader's shuffling generator, saved in Lightning checkpoints so a
        resumed run draws the epochs' orders the uninterrupted run would have drawn
        (:mod:`saca_lab.training.resume`). Lightning keeps a stateful loader's state only for a
        checkpoint written mid-epoch, and ours are written at an epoch's end."""
        return {"train_generator": self._train_generator.get_state()} if self._train_generator else {}

    def load_state_dict(self, state: dict) -> None:
        # Lightning restores this before it asks for the loaders
        self._resumed_generator = state.get("train_generator")

    def val_dataloader(self) -> DataLoader | list:
        """The validation samples, or no loader at all when the split has none.

        Never the test samples: what validation sees may choose a checkpoint, stop training or
        rank sweep trials, and a choice made on test samples makes their score optimistic.
        """
        if not len(self.split.val):
            return []  # Lightning then runs no validation loop
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def calibration_dataloader(self) -> DataLoader:
        """The calibration samples (``data.split.calibration``), for the scores after the fit."""
        return self._loader("calibration", shuffle=False)

    def input_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and std of the training inputs (for standardisation).

        The std has a floor of 1 % of its median so near-constant pixels are not blown up.
        """
        x, _, _ = self._part(self.split.train)
        mean, std = x.mean(axis=0), x.std(axis=0)
        return mean, np.maximum(std, 0.01 * float(np.median(std)) + 1e-12)

    def target_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the training targets (for standardisation)."""
        y = self.y_samples[self.split.train]
        std = y.std(axis=0)
        return y.mean(axis=0), np.where(std > 0, std, 1.0)

