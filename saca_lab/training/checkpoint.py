"""The one way saca-lab reads a model checkpoint: no code in the file can run.

A ``.ckpt`` is a pickle, and a pickle can name any importable callable to run while it is read
(``os.system``, ``builtins.open``, ...). Checkpoints are what people share, so every load goes
through :func:`load_checkpoint`, which reads with ``torch.load(weights_only=True)``: PyTorch's
restricted unpickler, which rebuilds tensors, storages, ``OrderedDict`` and plain containers
(dict, list, tuple, str, numbers, bool, None) and refuses any other global *before* calling
anything.

What a saca-lab checkpoint holds, checked on files written by ``trainer.save_checkpoint`` for
the 2D and 1D networks, a transfer run (the ``FreezeFeatures`` callback's state) and a run with
early stopping: tensors, ``OrderedDict`` state dicts and plain containers. The hyper-parameters
are plain too: ``SpectraRegressor`` receives lists (``ndarray.tolist()``), YAML scalars and
dicts, and keeps its arrays (input statistics, the wavelength grid) in buffers, not in
``hparams``. So the project adds no type of its own to PyTorch's allowlist:
:data:`SAFE_GLOBALS` is empty on purpose. A new non-plain value in a checkpoint (say a numpy
scalar in a hyper-parameter) makes its own loads fail loudly in the tests, and then belongs either
converted to a plain value where it is saved or, if it is a pure data type, in this tuple.

The MLflow pyfunc model is a different matter: MLflow stores it with cloudpickle, which runs
code when loaded. Load pyfunc models only from MLflow stores you trust; ``saca-lab predict``
reads the checkpoint through this module instead.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from saca_lab.errors import InputError

#: Globals allowed on top of PyTorch's weights-only set (see the module docstring: none needed).
SAFE_GLOBALS: tuple[Any, ...] = ()

_REFUSED = re.compile(r"GLOBAL ([\w.]+)")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a saca-lab checkpoint without running any code it may carry.

    Parameters
    ----------
    path : str or path-like
        A ``.ckpt`` file written by ``Trainer.save_checkpoint`` for a
        :class:`~saca_lab.training.module.SpectraRegressor`.

    Returns
    -------
    dict
        The checkpoint, on the CPU, with at least ``state_dict`` and ``hyper_parameters``
        (which names ``model_name``).

    Raises
    ------
    InputError
        If the file does not exist, asks to import anything outside the allowlist (refused
        before any of it runs), cannot be read, or is not a saca-lab checkpoint. The message
        names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} not found")
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)), warnings.catch_warnings():
            # a foreign pickle protocol is refused or read below; the warning would only add noise
            warnings.filterwarnings("ignore", "Detected pickle protocol")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = _REFUSED.search(str(e))
        if found:
            raise InputError(
                f"{path}: refused to load: the file asks to import {found.group(1)!r}, which a "
                "saca-lab checkpoint never contains, and loading it could run code on this "
                "machine; only use model files from sources you trust") from None
        raise InputError(f"{path} is not a saca-lab checkpoint (unreadable pickle: "
                         f"{_unpickler_reason(e)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, zipfile.BadZipFile) as e:
        raise InputError(f"{path} is not a saca-lab checkpoint ({type(e).__name__}: "
                         f"{_first_line(e)})") from None
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict)
            and isinstance(ckpt.get("hyper_parameters"), dict)
            and "model_name" in ckpt["hyper_parameters"]):
        raise InputError(f"{path} is not a saca-lab checkpoint (no state_dict and "
                         "hyper_parameters with a model_name)")
    fill_legacy_model_config(ckpt["hyper_parameters"])
    return ckpt


#: Model settings added after checkpoints were first written -> the behaviour of the code
#: before the setting existed. Their defaults changed when they were added, so a checkpoint
#: without them must not take today's default: the network would differ from the one trained
#: (``lstm_output="sequence"`` widens the head from 32 to 544 inputs, and the old head's
#: weights no longer load).
LEGACY_MODEL_SETTINGS: dict[str, Any] = {"lstm_output": "last", "dropout_position": "features"}


def fill_legacy_model_config(hyper_parameters: dict) -> dict:
    """Give a checkpoint's ``model_config`` the settings it was trained with but lacks.

    Checkpoints written before :data:`LEGACY_MODEL_SETTINGS` existed (and before the whole
    resolved config was saved) hold only the run's overrides; each missing setting the model
    accepts is set to its behaviour before the option existed. Changed in place and returned.
    """
    from saca_lab.models.registry import accepted_arguments

    config = hyper_parameters.get("model_config")
    if not isinstance(config, dict):
        return hyper_parameters
    try:
        accepted = accepted_arguments(hyper_parameters["model_name"])
    except InputError:  # an unknown model: building it fails later, with its own message
        return hyper_parameters
    for key, legacy in LEGACY_MODEL_SETTINGS.items():
        if key not in config and (accepted is None or key in accepted):
            config[key] = legacy
    return hyper_parameters


def _unpickler_reason(exc: BaseException) -> str:
    """The specific part of PyTorch's weights-only error (its boilerplate suggests loading with
    ``weights_only=False``, which is exactly what must not happen here)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [ln.strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(boilerplate)]
    return " ".join(lines) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
