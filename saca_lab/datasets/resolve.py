"""Dataset specs -> stored datasets: the one place that names, finds and generates presets.

A spec is a dataset folder, a preset name (``"slag"``) or a preset mapping
(``{preset: slag, samples: 100, shots: 20, seed: 0, nuisance: calibrated, path: NAME}``).
A preset's dataset is cached under the data root in the folder :func:`preset_folder` names;
training (``data.dataset``), ``saca-lab simulate``, ``saca-lab plot``, ``compare`` and
``reproduce`` all find it there, so a preset is generated once whichever command asks first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from saca_lab.data import store
from saca_lab.errors import InputError

#: Fields of a preset mapping. ``instrument`` is for ``saca-lab simulate --instrument``.
PRESET_FIELDS = ("preset", "samples", "shots", "seed", "instrument", "nuisance", "path")
#: Fields named in a cache folder, in this order (each only when given).
_NAMED_FIELDS = ("samples", "shots", "seed", "instrument")


def _check(spec: Mapping) -> None:
    unknown = set(spec) - set(PRESET_FIELDS)
    if unknown:
        raise InputError(f"data.dataset: unknown field(s) {sorted(unknown)}")
    if not isinstance(spec.get("preset"), str):
        raise InputError(f"data.dataset.preset must be a preset name, got {spec.get('preset')!r}")


def _nuisance(spec: Mapping):
    """The spec's nuisance setting; the preset's own when absent or null (as the simulator
    reads ``nuisance=None``, so the folder's name and its data agree)."""
    from saca_lab.spectra.presets import get_preset

    given = spec.get("nuisance")
    return get_preset(spec["preset"]).nuisance if given is None else given


def preset_folder(spec: Mapping) -> str:
    """Folder name, under the data root, of a preset mapping's cached dataset.

    ``path`` when given; otherwise the preset, then ``samplesN``, ``shotsN``, ``seedN`` and
    ``instrumentNAME`` for each field the spec gives, then the nuisance tag unless the
    nuisance is ``none``: ``{preset: slag, samples: 100, shots: 20}`` ->
    ``slag-samples100-shots20-nuisance-calibrated``. Only given fields are named, so
    ``{preset: slag}`` and ``{preset: slag, seed: 0}`` are two folders of the same data.
    """
    _check(spec)
    if spec.get("path"):
        return str(spec["path"])
    from saca_lab.spectra.nuisance import nuisance_tag

    tag = nuisance_tag(_nuisance(spec))
    return "-".join([spec["preset"]] + [f"{k}{spec[k]}" for k in _NAMED_FIELDS if spec.get(k) is not None]
                    + ([tag] if tag else []))


def legacy_folders(spec: Mapping) -> list[str]:
    """Cache folders that earlier versions gave the same spec, still read when they hold it.

    ``saca-lab simulate --preset P`` wrote ``P`` whatever its options, ``saca-lab plot`` wrote
    ``P`` or ``P-shotsN``, and training named a spec with ``nuisance: null`` without the
    nuisance tag it was generated with. Such a folder is used only when it holds exactly the
    spec's dataset (same configuration hash), so reading it cannot change a result.
    """
    if spec.get("path"):
        return []
    names = [spec["preset"]]
    if spec.get("shots") is not None:
        names.append(f"{spec['preset']}-shots{spec['shots']}")
    names.append(preset_folder({**spec, "nuisance": "none"}))
    current = preset_folder(spec)
    return [n for n in dict.fromkeys(names) if n != current]


def preset_simulation(spec: Mapping):
    """The :class:`~saca_lab.spectra.simulate.SimulationConfig` of a preset mapping."""
    from saca_lab.spectra.simulate import preset_config

    _check(spec)
    seed = spec.get("seed")
    return preset_config(spec["preset"], n_samples=spec.get("samples"), n_shots=spec.get("shots"),
                         seed=0 if seed is None else seed, instrument=spec.get("instrument"),
                         nuisance=_nuisance(spec))


def resolve_dataset(spec, data_root: str | os.PathLike | None = None, *, n_jobs: int | None = None,
                    overwrite: bool = False, progress: bool = True) -> store.Dataset:
    """The stored dataset of ``spec``, generated into the data root when it is a preset not there yet.

    Parameters
    ----------
    spec : str, path, :class:`~saca_lab.data.store.Dataset` or mapping
        A dataset (or its folder), a preset name, or a preset mapping (see the module docstring).
    data_root : str or path, optional
        Where presets are cached (:func:`saca_lab.data.store.data_root` resolves the default).
    n_jobs, overwrite, progress
        Passed to :func:`~saca_lab.spectra.simulate.simulate_dataset` when a preset is generated.
    """
    if isinstance(spec, store.Dataset):
        return spec
    if isinstance(spec, (str, Path)):
        from saca_lab.spectra.presets import PRESETS

        if not store.is_dataset(spec) and str(spec) in PRESETS:
            spec = {"preset": str(spec)}
        else:
            return store.open_dataset(spec)
    if not isinstance(spec, Mapping) or "preset" not in spec:
        raise InputError(f"data.dataset must be a directory or {{preset: NAME}}, got {spec!r}")
    from saca_lab.spectra.simulate import simulate_dataset

    config = preset_simulation(spec)
    root = store.data_root(data_root)
    if not overwrite and not store.is_dataset(root / preset_folder(spec)):
        for name in legacy_folders(spec):
            if store.is_dataset(root / name):
                old = store.Dataset(root / name)
                if old.provenance.get("config_hash") == config.cache_key():
                    if progress:
                        print(f"reusing cached dataset {old.path} (named by an earlier saca-lab)",
                              file=sys.stderr)
                    return old
    # A folder named by saca-lab is its own cache of the preset: a new generator version
    # replaces it. A folder the user named (``path``) is never replaced silently.
    return simulate_dataset(config, root / preset_folder(spec), n_jobs=n_jobs, overwrite=overwrite,
                            progress=progress, refresh_cache=not spec.get("path"))
