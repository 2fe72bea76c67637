"""Simulate datasets and single spectra from compositions.

The expensive part (libskit, a few plasma states per sample) runs in worker processes; the parent
derives every shot from those states with its own seeded generator and streams samples to disk in
order, so the output is byte-identical whatever the number of workers and memory stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from saca_lab import __version__
from saca_lab.chemistry import fill_balance, parse_formula
from saca_lab.data.store import Dataset, DatasetWriter, is_dataset
from saca_lab.errors import InputError
from saca_lab.locking import file_lock
from saca_lab.spectra.instruments import Instrument, get_instrument
from saca_lab.spectra.matrices import AIR, Matrix, get_matrix
from saca_lab.spectra.nuisance import NuisanceLevels, SampleNuisance, describe, resolve_nuisance
from saca_lab.spectra.plasma import element_shares, emission, libskit_version
from saca_lab.spectra.presets import element_compositions, get_preset
from saca_lab.spectra.shots import NODES, derive_shots, draw_shot_parameters

# Bump when a change alters generated spectra or designs: cached datasets are then regenerated.
# 2: stainless preset with absent rare earths (exactly 0 % in about half the samples) and Mo-free
# grades.
GENERATOR_VERSION = "2"


@dataclass
class SimulationConfig:
    """Everything that determines a simulated dataset (and so its cache key)."""

    name: str
    matrix: Matrix
    instrument: Instrument
    n_shots: int
    seed: int
    design: dict[str, np.ndarray]
    extra: dict = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return len(next(iter(self.design.values())))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "generator": "saca_lab.spectra.simulate",
            "generator_version": GENERATOR_VERSION,
            "saca_lab_version": __version__,
            "libskit_version": libskit_version(),
            "numpy_version": np.__version__,
            "seed": self.seed,
            "n_samples": self.n_samples,
            "n_shots": self.n_shots,
            "matrix": self.matrix.to_dict(),
            "instrument": self.instrument.to_dict(),
            "plasma_nodes_sigma": list(NODES),
            "ambient_composition_pct": AIR,
            "design_species": list(self.design),
            **self.extra,
        }

    def cache_key(self) -> str:
        d = self.describe()
        d["design_sha256"] = hashlib.sha256(
            np.stack([np.asarray(v, np.float64) for v in self.design.values()]).tobytes()).hexdigest()
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def preset_config(preset: str, *, n_samples: int | None = None, n_shots: int | None = None,
                  seed: int = 0, instrument: str | None = None, nuisance=None) -> SimulationConfig:
    """Configuration of a preset with optional overrides.

    ``nuisance`` is ``"none"``, ``"calibrated"`` or a mapping of levels
    (:mod:`saca_lab.spectra.nuisance`); None takes the preset's own setting.
    """
    p = get_preset(preset)
    n = p.n_samples if n_samples is None else int(n_samples)
    shots = p.n_shots if n_shots is None else int(n_shots)
    if n < 1 or shots < 1:
        raise InputError(f"--samples and --shots must be >= 1 (got {n}, {shots})")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xD5,)))
    design = p.design(n, rng)
    spec = p.nuisance if nuisance is None else nuisance
    levels = resolve_nuisance(spec, preset)
    # only a nuisance enters the manifest, so `none` keeps today's configuration hash (and caches)
    extra = {"preset": preset} if levels is None else {"preset": preset, "nuisance": describe(spec, levels)}
    return SimulationConfig(name=preset, matrix=get_matrix(p.matrix),
                            instrument=get_instrument(instrument or p.instrument),
                            n_shots=shots, seed=seed, design=design, extra=extra)


def _sample_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _node_spectra(args) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Emission at the node temperatures, and per-element shares at the central one."""
    composition, matrix, instrument, temperature = args
    temps = temperature * (1.0 + matrix.shot_temperature_rsd * np.asarray(NODES))
    nodes = np.stack([emission(composition, matrix.state_at(t), instrument) for t in temps])
    elements, shares = element_shares(composition, matrix.state_at(temperature), instrument)
    return nodes, elements, shares


def _node_tasks(config: SimulationConfig, compositions: Sequence[Mapping[str, float]],
                sample_temps: Sequence[float], matrices: Sequence[Matrix] | None = None) -> Iterable:
    matrices = matrices or [config.matrix] * len(compositions)
    return ((c, m, config.instrument, t) for c, m, t in zip(compositions, matrices, sample_temps, strict=True))


def _map(fn, tasks: Iterable, n_jobs: int):
    if n_jobs <= 1:
        yield from map(fn, tasks)
        return
    # spawn: forking a parent that may hold torch/OpenMP threads can deadlock.
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context("spawn")) as ex:
        yield from ex.map(fn, tasks)


def default_jobs() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def _is_stale_cache(existing: Dataset, config: SimulationConfig) -> bool:
    """Whether ``existing`` is an older simulation of the same preset (a cache saca-lab wrote)."""
    prov, want = existing.provenance, config.describe()
    preset = config.extra.get("preset")
    # Same preset, size, seed and nuisance: only the generator version, the design or the
    # calibrated nuisance levels moved. A folder holding another size, seed or nuisance setting
    # is a different dataset, never silently replaced.
    same = ("seed", "n_samples", "n_shots")
    return (preset is not None and prov.get("kind") == "simulation"
            and prov.get("generator") == "saca_lab.spectra.simulate" and prov.get("preset") == preset
            and all(prov.get(k) == want.get(k) for k in same)
            and _nuisance_setting(prov.get("nuisance")) == _nuisance_setting(want.get("nuisance")))


def _nuisance_setting(entry: dict | None):
    """What a cache folder stands for: ``calibrated`` whatever its levels (a new calibration is
    like a new generator version), an explicit setting with its levels, or None for ``none``."""
    if not entry:
        return None
    return "calibrated" if entry.get("spec") == "calibrated" else entry


def simulate_dataset(config: SimulationConfig, out_dir: str | os.PathLike, *, n_jobs: int | None = None,
                     overwrite: bool = False, progress: bool = True, refresh_cache: bool = False,
                     ) -> Dataset:
    """Simulate ``config`` into ``out_dir``, or reuse it if it holds the same configuration.

    "Is it there? else generate it and rename it into place" runs under a file lock beside
    ``out_dir`` (``.NAME.lock``, :mod:`saca_lab.locking`): a second process asking for the same
    folder at once waits, then reuses the first one's dataset instead of generating it again.
    Temporary folders left by a process killed mid-generation are removed under that lock.

    Parameters
    ----------
    overwrite : bool
        Replace whatever dataset ``out_dir`` holds.
    refresh_cache : bool
        ``out_dir`` is a cache of a preset (``data.dataset: {preset: ...}``): replace it when it
        holds a simulation of the same preset with another configuration hash (an older
        generator version or design). Any other dataset there is still refused.
    """
    out_dir = Path(out_dir)
    kwargs = {"n_jobs": n_jobs, "overwrite": overwrite, "progress": progress, "refresh_cache": refresh_cache}
    if is_dataset(out_dir) and not os.access(out_dir.parent, os.W_OK):
        return _simulate_locked(config, out_dir, **kwargs)  # a read-only root: nothing to write, no lock
    with file_lock(out_dir.parent / f".{out_dir.name}.lock",
                   waiting=f"another process is generating {out_dir}"):
        _remove_orphans(out_dir)
        return _simulate_locked(config, out_dir, **kwargs)


def _remove_orphans(out_dir: Path) -> None:
    """Remove the temporary folders of an earlier generation of ``out_dir`` that was killed
    (``DatasetWriter`` names them ``.NAME.XXXXXXXX.tmp`` and ``.NAME.old``); the caller holds the
    folder's lock, so no live process is writing them."""
    pattern = re.compile(rf"\.{re.escape(out_dir.name)}\.[a-z0-9_]{{8}}\.tmp|\.{re.escape(out_dir.name)}\.old")
    if not out_dir.parent.is_dir():
        return
    for p in out_dir.parent.iterdir():
        if p.is_dir() and pattern.fullmatch(p.name):
            print(f"removing {p}, left by an interrupted generation", file=sys.stderr)
            shutil.rmtree(p, ignore_errors=True)


def _simulate_locked(config: SimulationConfig, out_dir: Path, *, n_jobs: int | None, overwrite: bool,
                     progress: bool, refresh_cache: bool) -> Dataset:
    """:func:`simulate_dataset` once the caller holds the folder's lock."""
    key = config.cache_key()
    if is_dataset(out_dir) and not overwrite:
        existing = Dataset(out_dir)
        if existing.provenance.get("config_hash") == key:
            if progress:
                print(f"reusing cached dataset {out_dir} (config {key})", file=sys.stderr)
            return existing
        if refresh_cache and _is_stale_cache(existing, config):
            print(f"regenerating {out_dir}: cached config {existing.provenance.get('config_hash')} "
                  f"(generator {existing.provenance.get('generator_version')}) != {key} "
                  f"(generator {GENERATOR_VERSION})", file=sys.stderr)
            return _simulate_locked(config, out_dir, n_jobs=n_jobs, overwrite=True, progress=progress,
                                    refresh_cache=False)
        raise InputError(f"{out_dir} holds a different dataset (config "
                         f"{existing.provenance.get('config_hash')} != {key}); use --overwrite")
    t0 = time.perf_counter()
    matrix, instrument = config.matrix, config.instrument
    wavelengths = instrument.wavelengths()
    compositions = element_compositions(config.design, matrix.balance)
    rngs = [_sample_rng(config.seed, i) for i in range(config.n_samples)]
    sample_z = np.array([rng.standard_normal() for rng in rngs])
    levels = config.extra.get("nuisance")
    nz = None if levels is None else SampleNuisance(NuisanceLevels(**levels["levels"]), config.seed, config.n_samples,
                                                    len(instrument.channels))
    matrices = [matrix if nz is None else nz.matrix(i, matrix) for i in range(config.n_samples)]
    states = [m.sample_state(c, z) for m, c, z in zip(matrices, compositions, sample_z, strict=True)]
    ambient = _ambient_nodes(matrix, instrument)
    shot_tables = {k: np.empty((config.n_samples, config.n_shots)) for k in
                   ("temperature", "mass", "jitter_nm", "background")}
    ids = [f"{config.name}-{i + 1:04d}" for i in range(config.n_samples)]
    # more workers than samples only costs their start-up (a spawned worker imports libskit)
    n_jobs = min(default_jobs() if n_jobs is None else n_jobs, config.n_samples)
    if progress:
        print(f"simulating {config.n_samples} samples into {out_dir} (config {key})", file=sys.stderr)
    bar = tqdm(total=config.n_samples, desc=f"simulate {config.name}", unit="sample",
               disable=not progress, file=sys.stderr)
    with DatasetWriter(out_dir, wavelengths, config.n_samples, config.n_shots, overwrite=True) as w:
        temps = [s.temperature for s in states]
        tasks = _node_tasks(config, compositions, temps, matrices)
        for i, (nodes, elements, shares) in enumerate(_map(_node_spectra, tasks, n_jobs)):
            het = matrix.heterogeneity_rsd(compositions[i], elements)
            z, params = draw_shot_parameters(rngs[i], config.n_shots, temps[i], matrix, instrument, het)
            if nz is not None:
                nz.apply_to_shots(i, params, compositions[i], elements)
            w.append(derive_shots(nodes, shares, ambient, z, params, matrix,
                                  instrument if nz is None else nz.instrument(i, instrument),
                                  wavelengths, rngs[i]))
            for k, v in params.as_dict().items():
                shot_tables[k][i] = v
            bar.update()
        bar.close()
        elements = sorted({el for c in compositions for el in c})
        targets = {el: np.array([c.get(el, 0.0) for c in compositions]) for el in elements}
        if nz is not None:
            w.add_table("bulk_targets", ids, targets)
            w.add_table("nuisance", ids, nz.table())
            targets = nz.reference_labels(targets, matrix.balance)
        w.add_table("targets", ids, targets)
        w.add_table("design", ids, config.design)
        w.add_table("plasma", ids, {
            "temperature_K": np.array([s.temperature for s in states]),
            "electron_density_m3": np.array([s.electron_density for s in states]),
            "length_m": np.array([s.length for s in states]),
            "sample_effect_z": sample_z,
        })
        for k, v in shot_tables.items():
            w.add_array(f"shot_{k}", v)
        provenance = {"kind": "simulation", "config_hash": key, **config.describe(),
                      "wall_time_s": round(time.perf_counter() - t0, 2), "n_jobs": n_jobs}
        w.close(provenance)
    return Dataset(out_dir)


def _ambient_nodes(matrix: Matrix, instrument: Instrument) -> np.ndarray:
    if matrix.ambient <= 0:
        return np.zeros((len(NODES), instrument.n_points))
    return _node_spectra((AIR, matrix, instrument, matrix.temperature))[0]


def infer_matrix(composition: Mapping[str, float]) -> str:
    """Oxygen-bearing (oxide) compositions are slag-like; everything else is treated as steel."""
    return "slag" if any("O" in parse_formula(k) for k in composition) else "steel"


def simulate_shots(composition: Mapping[str, float], *, instrument: str | Instrument = "trcsl",
                   matrix: str | Matrix | None = None, n_shots: int = 1, seed: int = 0,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Shots of one sample of a composition in mass % (balance filled by the matrix).

    Returns air wavelengths (nm) and detector counts, shape (n_shots, n_points).
    """
    inst = get_instrument(instrument) if isinstance(instrument, str) else instrument
    mat = matrix if isinstance(matrix, Matrix) else get_matrix(matrix or infer_matrix(composition))
    comp = fill_balance(composition, mat.balance)
    rng = _sample_rng(seed, 0)
    state = mat.sample_state(comp, rng.standard_normal())
    wavelengths = inst.wavelengths()
    nodes, elements, shares = _node_spectra((comp, mat, inst, state.temperature))
    z, params = draw_shot_parameters(rng, n_shots, state.temperature, mat, inst,
                                     mat.heterogeneity_rsd(comp, elements))
    shots = derive_shots(nodes, shares, _ambient_nodes(mat, inst), z, params, mat, inst,
                         wavelengths, rng)
    return wavelengths, shots


def simulate_spectrum(composition: Mapping[str, float], *, n_shots: int = 1, **kwargs,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One spectrum: the mean of ``n_shots`` shots (see :func:`simulate_shots`)."""
    wavelengths, shots = simulate_shots(composition, n_shots=n_shots, **kwargs)
    return wavelengths, shots.mean(axis=0)
