"""Lightning data modules: any stored dataset, split by sample, preprocessed once.

``SpectraDataModule`` works for every dataset in the store (simulated or imported);
``SlagDataModule``, ``CarbonSteelDataModule`` and ``StainlessDataModule`` generate their preset
when it is missing and default to the papers' targets and splits.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from saca_lab.data import store
from saca_lab.data.augment import Augment
from saca_lab.data.features import FeatureSpec, dataset_features
from saca_lab.data.splits import Split, make_split
from saca_lab.errors import InputError


def resolve_dataset(spec, data_root: str | None = None) -> store.Dataset:
    """A dataset from a directory path or a ``{preset: NAME, samples:, shots:, seed:}`` mapping."""
    if isinstance(spec, (str, Path)):
        return store.open_dataset(spec)
    if isinstance(spec, dict) and "preset" in spec:
        from saca_lab.spectra.simulate import preset_config, simulate_dataset

        unknown = set(spec) - {"preset", "samples", "shots", "seed", "path"}
        if unknown:
            raise InputError(f"data.dataset: unknown field(s) {sorted(unknown)}")
        cfg = preset_config(spec["preset"], n_samples=spec.get("samples"), n_shots=spec.get("shots"),
                            seed=spec.get("seed", 0))
        name = spec.get("path") or "-".join(
            [spec["preset"]] + [f"{k}{spec[k]}" for k in ("samples", "shots", "seed") if spec.get(k) is not None])
        return simulate_dataset(cfg, store.data_root(data_root) / name)
    raise InputError(f"data.dataset must be a directory or {{preset: NAME}}, got {spec!r}")


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
    augment : ``{jitter, shift_px, scale}`` for training batches, or None.
    """

    def __init__(self, dataset, targets=None, input_kind: str = "spectrum_1d", split=None,
                 shots="average", preprocessing=None, lines=None, half_width: int = 5,
                 augment=None, batch_size: int = 32, num_workers: int = 0,
                 data_root: str | None = None) -> None:
        super().__init__()
        self.dataset_spec = dataset
        self.target_names = list(targets) if targets else None
        prep = {"airpls": {"lam": 1e4, "max_iter": 50}, "minmax": True, **(preprocessing or {})}
        self.feature_spec = FeatureSpec(input_kind=input_kind, airpls=prep["airpls"], minmax=prep["minmax"],
                                        lines=tuple(lines) if lines else None, half_width=half_width)
        self.split_spec = {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 0, **(split or {})}
        if self.split_spec.get("subset_seed") is None:
            self.split_spec.pop("subset_seed", None)
        self.shots = shots
        self.augment = Augment(**augment) if augment else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.data_root = data_root
        self.ds: store.Dataset | None = None

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
        self.y_samples = ds.target_matrix(self.target_names).astype(np.float32)
        self.split: Split = make_split(ds.shape[0], self.split_spec)
        self.features = dataset_features(ds, self.feature_spec, self.shots)
        self.input_shape = tuple(self.features.shape[2:])
        self._ready = True

    def _part(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items (spectra) of the given samples, their targets and their sample indices."""
        per = self.features.shape[1]
        x = np.asarray(self.features[indices]).reshape(len(indices) * per, *self.input_shape)
        y = np.repeat(self.y_samples[indices], per, axis=0)
        return x, y, np.repeat(indices, per)

    def tensors(self, part: str) -> TensorDataset:
        x, y, groups = self._part(getattr(self.split, part))
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(groups))

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        data = self.tensors(part)
        if len(data) == 0:
            raise InputError(f"the {part} split is empty")
        collate = self.augment.collate if (self.augment and part == "train") else None
        gen = torch.Generator().manual_seed(int(self.split_spec.get("seed", 0)))
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=gen,
                          num_workers=self.num_workers, collate_fn=collate, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val" if len(self.split.val) else "test", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

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


class SlagDataModule(SpectraDataModule):
    """TrCSL pre-training: 100 steel slags, targets Mn, Cr, Cu, C, split 7:3."""

    def __init__(self, dataset=None, targets=("C", "Cu", "Mn", "Cr"), **kwargs) -> None:
        super().__init__(dataset or {"preset": "slag"}, targets=targets, **kwargs)


class CarbonSteelDataModule(SpectraDataModule):
    """TrCSL transfer target: 20 carbon steels, targets C, Cu, Mn, Cr, split 7:3."""

    def __init__(self, dataset=None, targets=("C", "Cu", "Mn", "Cr"), **kwargs) -> None:
        super().__init__(dataset or {"preset": "carbon-steel"}, targets=targets, **kwargs)


class StainlessDataModule(SpectraDataModule):
    """SACA: stainless steels with rare earths, 70/15/15, augmentation on training data."""

    def __init__(self, dataset=None,
                 targets=("Fe", "Cr", "Ni", "Mo", "La", "Ce", "Nd", "Pr", "Sm", "Eu"), **kwargs) -> None:
        kwargs.setdefault("split", {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0})
        kwargs.setdefault("shots", "each")
        kwargs.setdefault("augment", {"jitter": 0.01, "shift_px": 2, "scale": 0.05})
        super().__init__(dataset or {"preset": "stainless"}, targets=targets, **kwargs)
