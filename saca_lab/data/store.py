"""On-disk dataset format: one directory per dataset, written atomically, read lazily.

Layout of a dataset directory::

    spectra.npy       float32 (n_samples, n_shots, n_points), memory-mapped on read
    wavelengths.npy   float64 (n_points,), nm in air
    targets.csv       sample_id + one column per element/oxide (mass %)
    tables/*.csv      optional extra per-sample tables (design, plasma parameters)
    manifest.json     schema version, provenance, shapes, sha256 of every file

The manifest is written last and the directory is renamed into place only when complete,
so a directory with a manifest is always a whole dataset.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from saca_lab import __version__
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError
from saca_lab.io import DIR_MODE

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
DATA_ROOT_ENV = "SACA_LAB_DATA"


def data_root(override: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``override``, else ``$SACA_LAB_DATA``, else ``./data``."""
    return Path(override or os.environ.get(DATA_ROOT_ENV) or "data")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_csv(path: Path, header: Sequence[str], columns: Sequence[Sequence]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in zip(*columns, strict=True):
            w.writerow([f"{v:.9g}" if isinstance(v, (float, np.floating)) else v for v in row])


def _read_csv_columns(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    ids = [r[0] for r in body]
    cols = {name: np.array([float(r[i]) for r in body]) for i, name in enumerate(header) if i > 0}
    return ids, cols


class DatasetWriter:
    """Stream a dataset to disk sample by sample; nothing appears at ``out_dir`` until ``close``.

    Use as a context manager: an exception inside the block removes the temporary directory,
    so an interrupted run leaves nothing that looks like a dataset.
    """

    def __init__(self, out_dir: str | os.PathLike, wavelengths: np.ndarray, n_samples: int,
                 n_shots: int, *, overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not overwrite:
            raise InputError(f"{self.out_dir} already exists (use --overwrite to replace it)")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.wavelengths = np.asarray(wavelengths, dtype=np.float64)
        self.shape = (int(n_samples), int(n_shots), int(self.wavelengths.size))
        self.overwrite = overwrite
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.", suffix=".tmp",
                                          dir=self.out_dir.parent))
        self._written = 0
        self._hash = hashlib.sha256()
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                  "fortran_order": False, "shape": self.shape}
        self._f = open(self._tmp / "spectra.npy", "wb")
        np.lib.format.write_array_header_1_0(self._f, header)
        self._f.flush()
        self._hash.update((self._tmp / "spectra.npy").read_bytes())
        self._tables: dict[str, tuple[list[str], dict[str, np.ndarray]]] = {}

    def append(self, block: np.ndarray) -> None:
        """Append spectra of one or more samples, shape (k, n_shots, n_points) or (n_shots, n_points)."""
        block = np.ascontiguousarray(block, dtype="<f4")
        if block.ndim == 2:
            block = block[None]
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"block shape {block.shape[1:]} != dataset shape {self.shape[1:]}")
        if not np.isfinite(block).all():
            raise ValueError("spectra contain NaN or inf")
        if self._written + block.shape[0] > self.shape[0]:
            raise ValueError("more samples appended than declared")
        data = block.tobytes()
        self._f.write(data)
        self._hash.update(data)
        self._written += block.shape[0]

    def add_table(self, name: str, sample_ids: Sequence[str], columns: Mapping[str, np.ndarray]) -> None:
        """Store a per-sample table; ``targets`` is the label table every dataset has."""
        self._tables[name] = (list(sample_ids), {k: np.asarray(v) for k, v in columns.items()})

    def add_array(self, name: str, array: np.ndarray) -> None:
        """Store an extra array (e.g. per-shot plasma parameters) as ``arrays/<name>.npy``."""
        (self._tmp / "arrays").mkdir(exist_ok=True)
        np.save(self._tmp / "arrays" / f"{name}.npy", np.asarray(array))

    def close(self, provenance: Mapping) -> Path:
        """Finish: write wavelengths, tables and manifest, then rename into place."""
        self._f.close()
        if self._written != self.shape[0]:
            raise ValueError(f"{self._written} of {self.shape[0]} samples written")
        if "targets" not in self._tables:
            raise ValueError("a dataset needs a targets table (it may have no columns)")
        np.save(self._tmp / "wavelengths.npy", self.wavelengths)
        files = {"spectra.npy": self._hash.hexdigest()}
        for name, (ids, cols) in self._tables.items():
            rel = "targets.csv" if name == "targets" else f"tables/{name}.csv"
            (self._tmp / rel).parent.mkdir(exist_ok=True)
            _write_csv(self._tmp / rel, ["sample_id", *cols], [ids, *cols.values()])
        for p in sorted(self._tmp.rglob("*")):
            rel = p.relative_to(self._tmp).as_posix()
            if p.is_file() and rel not in files:
                files[rel] = _sha256_file(p)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "saca_lab_version": __version__,
            "shape": list(self.shape),
            "dtype": "float32",
            "wavelength_range_nm": [float(self.wavelengths[0]), float(self.wavelengths[-1])],
            "targets": list(self._tables["targets"][1]),
            "provenance": dict(provenance),
            "sha256": files,
        }
        with open(self._tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, default=_json_default)
        os.chmod(self._tmp, DIR_MODE)  # mkdtemp's 0700 would hide a shared dataset from the group
        if self.out_dir.exists():
            # Swap rather than delete-then-rename so a crash never leaves no dataset at all.
            old = self.out_dir.with_name(f".{self.out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            self.out_dir.rename(old)
            self._tmp.rename(self.out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self._tmp.rename(self.out_dir)
        return self.out_dir

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self._tmp.exists():
            self.abort()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_dataset(table: SpectralTable, out_dir: str | os.PathLike, *, provenance: Mapping,
                  overwrite: bool = False, tables: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> Path:
    """Write an in-memory table as a dataset directory (atomically)."""
    with DatasetWriter(out_dir, table.wavelengths, table.n_samples, table.n_shots,
                       overwrite=overwrite) as w:
        w.append(table.spectra)
        w.add_table("targets", table.sample_ids, table.targets)
        for name, cols in (tables or {}).items():
            w.add_table(name, table.sample_ids, cols)
        return w.close({"source": table.source, **provenance})


class Dataset:
    """A dataset directory opened lazily: spectra are a read-only memory map."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise InputError(f"{self.path} is not a saca-lab dataset (no {MANIFEST})")
        with open(manifest_path) as f:
            self.manifest: dict = json.load(f)
        if self.manifest.get("schema_version") != SCHEMA_VERSION:
            raise InputError(f"{manifest_path}: schema version {self.manifest.get('schema_version')}"
                             f" is not supported (expected {SCHEMA_VERSION})")
        self.spectra: np.ndarray = np.load(self.path / "spectra.npy", mmap_mode="r")
        self.wavelengths: np.ndarray = np.load(self.path / "wavelengths.npy")
        self.sample_ids, self.targets = _read_csv_columns(self.path / "targets.csv")

    def table(self, name: str) -> dict[str, np.ndarray]:
        """An extra per-sample table written with ``add_table`` (e.g. ``design``)."""
        path = self.path / "tables" / f"{name}.csv"
        if not path.is_file():
            raise InputError(f"{self.path}: no table {name!r}")
        return _read_csv_columns(path)[1]

    def array(self, name: str) -> np.ndarray:
        """An extra array written with ``add_array`` (e.g. ``shot_temperature``)."""
        path = self.path / "arrays" / f"{name}.npy"
        if not path.is_file():
            raise InputError(f"{self.path}: no array {name!r}")
        return np.load(path)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.spectra.shape)  # type: ignore[return-value]

    @property
    def provenance(self) -> dict:
        return self.manifest["provenance"]

    def verify(self) -> None:
        """Re-hash every file and compare with the manifest (reads the whole dataset)."""
        for rel, digest in self.manifest["sha256"].items():
            if _sha256_file(self.path / rel) != digest:
                raise InputError(f"{self.path / rel}: checksum mismatch, the dataset is corrupted")

    def target_matrix(self, names: Sequence[str]) -> np.ndarray:
        missing = [n for n in names if n not in self.targets]
        if missing:
            raise InputError(f"{self.path}: no target column(s) {missing}; has {list(self.targets)}")
        return np.stack([self.targets[n] for n in names], axis=1)

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, shape={self.shape}, targets={list(self.targets)})"


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a dataset directory without reading the spectra into memory."""
    return Dataset(path)


def is_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()
