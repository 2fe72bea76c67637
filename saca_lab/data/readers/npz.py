"""NPZ archives of NumPy arrays (:func:`numpy.savez`); :func:`read_npz` lists the keys."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from saca_lab.chemistry import is_species, validate_composition
from saca_lab.data.readers._parse import PathLike, check_grid, err, to_float32
from saca_lab.data.table import SpectralTable


def read_npz(path: PathLike) -> SpectralTable:
    """Read spectra saved with :func:`numpy.savez` (keys listed under Notes).

    Parameters
    ----------
    path : str or PathLike
        The .npz file.

    Returns
    -------
    SpectralTable
        Spectra as float32; one shot per sample where ``spectra`` is 2D.

    Raises
    ------
    InputError
        On a missing or malformed key, non-finite value or bad composition; the message names
        the file and the key (and index).

    Notes
    -----
    Keys of the archive:

    - ``wavelengths``: (P,) float, nm, strictly increasing. Required.
    - ``spectra``: (N, P) or (N, shots, P) float. Required.
    - ``sample_ids``: (N,) str. Optional; default ``<file stem>_<1..N>``.
    - ``targets_names``: (K,) str, with ``targets``: (N, K) float, mass %. Optional, together.
    - ``target_<name>``: (N,) float, mass % of species ``<name>``. Optional, any number of them.

    Pickled (object) arrays are refused, so store strings as a fixed-width string array
    (``np.array(["a", "b"])``, not ``dtype=object``).
    """
    path = Path(path)
    if not path.is_file():
        raise err(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise err(path, f"not a readable .npz file ({exc})") from None
    except AttributeError:
        # np.load returns a bare array (not an archive) for a .npy file renamed to .npz.
        raise err(path, "is a single .npy array, expected an .npz archive") from None
    for key in ("wavelengths", "spectra"):
        if key not in arrays:
            raise err(
                path, f"missing key {key!r} (keys present: {', '.join(sorted(arrays)) or 'none'})"
            )
    wavelengths = _npz_numeric(path, arrays, "wavelengths", ndims=(1,))
    check_grid(path, wavelengths, lambda k: f"{path}: wavelengths[{k}]")
    spectra = _npz_numeric(path, arrays, "spectra", ndims=(2, 3))
    if spectra.ndim == 2:
        spectra = spectra[:, None, :]
    if spectra.shape[-1] != wavelengths.size:
        raise err(
            path,
            f"spectra has {spectra.shape[-1]} points per spectrum but wavelengths has {wavelengths.size}",
        )
    if spectra.shape[0] == 0:
        raise err(path, "spectra holds no samples")
    n = spectra.shape[0]
    sample_ids = _npz_sample_ids(path, arrays, n)
    spectra = to_float32(spectra, lambda idx: f"{path}: spectra[{', '.join(map(str, idx))}]")
    targets = _npz_targets(path, arrays, n)
    for s, sample in enumerate(sample_ids):
        composition = {name: float(values[s]) for name, values in targets.items()}
        validate_composition(composition, where=f"{path}: sample {s} ({sample!r})")
    return SpectralTable(wavelengths, spectra, sample_ids, targets, source=str(path))


def _npz_numeric(
    path: Path, arrays: dict[str, np.ndarray], key: str, ndims: tuple[int, ...]
) -> np.ndarray:
    """A real-valued array of an allowed rank, as float64, with every value finite."""
    array = arrays[key]
    if array.ndim not in ndims:
        shapes = " or ".join(f"{d}D" for d in ndims)
        raise err(path, f"{key} must be {shapes}, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise err(path, f"{key} must hold numbers, got dtype {array.dtype}")
    # float32 data stays float32 until the range check so that big sets are not doubled in memory.
    values = array if array.dtype.kind == "f" else array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise err(
            path, f"{key}[{', '.join(map(str, index))}] is {values[index]}, not a finite number"
        )
    return values.astype(np.float64) if key == "wavelengths" else values


def _npz_strings(path: Path, arrays: dict[str, np.ndarray], key: str, n: int) -> list[str]:
    array = arrays[key]
    if array.dtype.kind not in "US" or array.shape != (n,):
        raise err(path, f"{key} must be {n} strings, got shape {array.shape} dtype {array.dtype}")
    out = [v.decode() if isinstance(v, bytes) else str(v) for v in array.tolist()]
    return [v.strip() for v in out]


def _npz_sample_ids(path: Path, arrays: dict[str, np.ndarray], n: int) -> list[str]:
    if "sample_ids" not in arrays:
        return [f"{path.stem}_{i + 1}" for i in range(n)]
    ids = _npz_strings(path, arrays, "sample_ids", n)
    seen: dict[str, int] = {}
    for i, sample in enumerate(ids):
        if not sample:
            raise err(path, f"sample_ids[{i}] is empty")
        if sample in seen:
            raise err(path, f"sample_ids[{i}] {sample!r} repeats sample_ids[{seen[sample]}]")
        seen[sample] = i
    return ids


def _npz_targets(path: Path, arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    targets: dict[str, np.ndarray] = {}
    if ("targets" in arrays) != ("targets_names" in arrays):
        raise err(path, "keys 'targets' and 'targets_names' must be given together")
    if "targets" in arrays:
        names = _npz_strings(path, arrays, "targets_names", arrays["targets_names"].size)
        matrix = _npz_numeric(path, arrays, "targets", ndims=(2,))
        if matrix.shape != (n, len(names)):
            raise err(
                path,
                f"targets has shape {matrix.shape}, expected ({n}, {len(names)}) from spectra and targets_names",
            )
        for k, name in enumerate(names):
            _add_npz_target(path, targets, name, matrix[:, k], f"targets_names[{k}]")
    for key in sorted(arrays):
        if key.startswith("target_"):
            values = _npz_numeric(path, arrays, key, ndims=(1,))
            if values.shape != (n,):
                raise err(path, f"{key} has {values.size} values, expected {n}")
            _add_npz_target(path, targets, key[len("target_") :], values, key)
    return targets


def _add_npz_target(
    path: Path, targets: dict[str, np.ndarray], name: str, values: np.ndarray, key: str
) -> None:
    if not is_species(name):
        raise err(path, f"{key}: {name!r} is not a known element or oxide")
    if name in targets:
        raise err(path, f"{key}: target {name!r} is given twice")
    targets[name] = np.asarray(values, dtype=np.float64).copy()
