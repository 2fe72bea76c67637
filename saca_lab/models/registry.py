"""A timm-style model registry: named factories, keyword overrides, and the model contract.

Every registered model is an :class:`torch.nn.Module` with

* ``features``: the feature extractor (convolutions, SE blocks, LSTM, dropout): the part
  TrCSL freezes when it transfers a pre-trained model (Ma et al., JAAS 2025, 40, 1810,
  Sec. 2.4 and Fig. 7);
* ``head``: the fully connected layers that fine-tuning trains;
* ``forward(x) == head(features(x))``;
* ``n_outputs``, ``input_kind`` and ``config``, a JSON-serialisable dict of the resolved
  constructor arguments, so that ``create_model(name, **model.config)`` rebuilds it from a
  checkpoint.

Input kinds
-----------
``"spectrum_1d"``
    A full spectrum, ``(B, L)`` or ``(B, 1, L)`` (SACA, Sec. 3 "Input Layer").
``"lines_1d"``
    Characteristic-line windows concatenated, ``(B, L)`` or ``(B, 1, L)`` (TrCSL 1D input,
    Sec. 2.3.1).
``"image_2d"``
    A spectrum folded into a matrix, 125 x 131 for TrCSL, ``(B, H, W)`` or ``(B, 1, H, W)``
    (TrCSL 2D input, Sec. 2.3.1 and Fig. 3).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from saca_lab import typecheck
from saca_lab.errors import InputError

#: Model input layouts, with the number of spatial dimensions of each. Defined here, the lowest
#: layer that needs it (tests/test_layers.py); datasets/features.py builds the inputs it names.
INPUT_KINDS: dict[str, int] = {"spectrum_1d": 1, "lines_1d": 1, "image_2d": 2}


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model without building it.

    Attributes
    ----------
    name : str
        Registered name.
    input_kind : str
        One of :data:`INPUT_KINDS`.
    default_input : tuple of int
        Shape of one input sample at the paper's size, without batch or channel dimension:
        ``(L,)`` for 1D kinds, ``(H, W)`` for ``"image_2d"``.
    description : str
        One line: what the model is and which paper it reproduces.
    """

    name: str
    input_kind: str
    default_input: tuple[int, ...]
    description: str


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    factory: Callable[..., nn.Module]
    # None when the factory takes **kwargs: the registry then cannot check names itself
    accepted: tuple[str, ...] | None


_REGISTRY: dict[str, _Entry] = {}


def _accepted_keywords(factory: Callable[..., Any]) -> tuple[str, ...] | None:
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in params if p.kind in keyword_kinds)


def register_model(
    name: str, *, input_kind: str, default_input: tuple[int, ...], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory under ``name`` (decorator).

    Parameters
    ----------
    name : str
        Name for :func:`create_model`. Registering a different factory under a taken name is
        an error; re-registering the same function (a module reload) replaces it.
    input_kind : {"spectrum_1d", "lines_1d", "image_2d"}
        What the model reads; see the module docstring.
    default_input : tuple of int
        Per-sample input shape at the paper's size, without batch or channel dimension.
    description : str
        One-line description citing the paper.

    Returns
    -------
    callable
        A decorator that registers the factory and returns it unchanged. The factory's
        keyword parameters are the overrides :func:`create_model` accepts; give it an explicit
        signature (or ``__signature__``, as :func:`preset` does) so unknown keywords are
        caught by name.

    Examples
    --------
    >>> from torch import nn
    >>> @register_model("doc_linear", input_kind="lines_1d", default_input=(8,),
    ...                 description="doctest example")
    ... def doc_linear(n_outputs=1):
    ...     return nn.Linear(8, n_outputs)
    >>> "doc_linear" in list_models()
    True
    >>> _ = _REGISTRY.pop("doc_linear")
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind {input_kind!r} is not one of {sorted(INPUT_KINDS)}")
    shape = tuple(int(s) for s in default_input)
    if len(shape) != INPUT_KINDS[input_kind] or min(shape) < 1:
        raise ValueError(f"default_input {default_input!r} does not fit input_kind {input_kind!r}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        old = _REGISTRY.get(name)
        if old is not None and (
            (old.factory.__module__, old.factory.__qualname__)
            != (factory.__module__, factory.__qualname__)
        ):
            raise ValueError(f"model name {name!r} is already registered by {old.factory!r}")
        info = ModelInfo(name, input_kind, shape, description)
        _REGISTRY[name] = _Entry(info, factory, _accepted_keywords(factory))
        return factory

    return decorator


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(
            f"unknown model {name!r}{hint}; registered models: {', '.join(list_models())}"
        ) from None


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, sorted.

    Parameters
    ----------
    pattern : str, optional
        Shell-style wildcard (``"trcnn*"``) to filter the names, as in timm.

    Returns
    -------
    list of str
    """
    names = sorted(_REGISTRY)
    return names if pattern is None else fnmatch.filter(names, pattern)


def accepted_arguments(name: str) -> tuple[str, ...] | None:
    """Constructor arguments the model ``name`` accepts (None: its factory takes ``**kwargs``).

    Raises
    ------
    InputError
        If ``name`` is unknown.
    """
    return _entry(name).accepted


def model_info(name: str) -> ModelInfo:
    """Registry metadata of ``name``.

    Raises
    ------
    InputError
        If ``name`` is not registered; the message lists the registered names.
    """
    return _entry(name).info


def argument_types(name: str) -> dict[str, Any]:
    """Annotated types of the constructor arguments of ``name`` (preset factories: the class's).

    A factory whose annotations cannot be resolved gives ``{}``: its arguments are then checked
    by its own code only.
    """
    factory = _entry(name).factory
    target = getattr(factory, "__saca_class__", None)
    try:
        types = dict(typecheck.hints(target.__init__ if target is not None else factory))
    except (NameError, TypeError):
        return {}
    types.pop("return", None)
    return types


def check_arguments(name: str, arguments: dict[str, Any], where: str | None = None) -> None:
    """Refuse constructor arguments of ``name`` that it does not take or of the wrong type.

    Parameters
    ----------
    name : str
        A registered model.
    arguments : dict
        Overrides, as for :func:`create_model`.
    where : str, optional
        Dotted config path of ``arguments`` (``model.overrides``) for the messages.

    Raises
    ------
    InputError
        Naming the unknown argument(s) and the accepted ones, or the argument, its value and
        the type its constructor annotates (``model.overrides.n_units must be an integer``).
    """
    entry = _entry(name)
    prefix = f"{where}: " if where else ""
    if not isinstance(arguments, dict):
        raise InputError(f"{where or 'model overrides'} must be a mapping, got {arguments!r}")
    if entry.accepted is not None:
        unknown = sorted(set(arguments) - set(entry.accepted))
        if unknown:
            raise InputError(
                f"{prefix}model {name!r} got unknown argument(s) {', '.join(map(str, unknown))}; "
                f"accepted: {', '.join(entry.accepted)}"
            )
    types = argument_types(name)
    for key, value in arguments.items():
        if key in types:
            typecheck.check_value(value, types[key], None,
                                  f"{where}.{key}" if where else f"model {name!r} argument {key}")


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``, with keyword overrides of its defaults.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    **overrides
        Constructor arguments replacing the preset's (``n_outputs=4``, ``width=0.0625``...).
        ``create_model(name, **model.config)`` rebuilds a model saved in a checkpoint.

    Returns
    -------
    torch.nn.Module
        A freshly initialised model in training mode.

    Raises
    ------
    InputError
        If ``name`` is unknown (the message lists the registered names), an override keyword
        is unknown (the message names it and lists the accepted ones), or an override changes
        the preset's input kind (build the preset of the other kind instead).
    """
    entry = _entry(name)
    check_arguments(name, overrides)
    model = entry.factory(**overrides)
    kind = getattr(model, "input_kind", entry.info.input_kind)
    if kind != entry.info.input_kind:
        others = [n for n in list_models() if _REGISTRY[n].info.input_kind == kind]
        raise InputError(
            f"the overrides turn {name!r} from {entry.info.input_kind!r} into {kind!r} input; "
            f"use a model registered for {kind!r}: {', '.join(others) or 'none'}"
        )
    return model


def preset(cls: type[nn.Module], name: str, doc: str, **defaults: Any) -> Callable[..., nn.Module]:
    """A factory building ``cls`` with ``defaults`` and a signature :func:`create_model` reads.

    The returned function's ``__signature__`` is the constructor's with ``defaults`` filled
    in, so overrides are checked by name and ``help()`` shows the preset's values.

    Parameters
    ----------
    cls : type
        Model class.
    name : str
        ``__name__`` of the factory (normally the registered name).
    doc : str
        Docstring of the factory.
    **defaults
        Constructor arguments of the preset.
    """
    sig = inspect.signature(cls)
    unknown = set(defaults) - set(sig.parameters)
    if unknown:
        raise TypeError(f"{cls.__name__} has no argument(s) {sorted(unknown)}")

    def factory(**overrides: Any) -> nn.Module:
        return cls(**{**defaults, **overrides})

    factory.__saca_class__ = cls  # type: ignore[attr-defined]  # its annotations type the overrides

    params = [p.replace(default=defaults.get(p.name, p.default)) for p in sig.parameters.values()]
    factory.__signature__ = sig.replace(parameters=params, return_annotation=cls)  # type: ignore[attr-defined]
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return factory


class ChannelInput(nn.Module):
    """Accept input with or without its channel dimension and check it is large enough.

    ``(B, *spatial)`` becomes ``(B, 1, *spatial)``; ``(B, 1, *spatial)`` passes unchanged, so
    a ``channels_last`` image keeps its memory format.

    Parameters
    ----------
    input_kind : str
        One of :data:`INPUT_KINDS`; fixes the number of spatial dimensions.
    min_size : int
        Smallest spatial size every dimension needs (``2 ** n_pools`` for a network that
        halves its input ``n_pools`` times).
    """

    def __init__(self, input_kind: str, min_size: int = 1) -> None:
        super().__init__()
        self.input_kind = input_kind
        self.spatial_dims = INPUT_KINDS[input_kind]
        self.min_size = int(min_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.spatial_dims + 1:
            x = x.unsqueeze(1)
        elif x.dim() != self.spatial_dims + 2 or x.shape[1] != 1:
            raise InputError(
                f"{self.input_kind} input must be (batch, {'H, W' if self.spatial_dims == 2 else 'L'})"
                f" with an optional channel dimension of 1; got shape {tuple(x.shape)}"
            )
        if min(x.shape[2:]) < self.min_size:
            raise InputError(
                f"{self.input_kind} input of spatial shape {tuple(x.shape[2:])} is too small: "
                f"this network needs at least {self.min_size} points per dimension"
            )
        return x

    def extra_repr(self) -> str:
        return f"input_kind={self.input_kind!r}, min_size={self.min_size}"
