"""Preprocessing of atomic emission spectra as scikit-learn transformers.

One module per family, each following the paper it reproduces:

* :mod:`~saca_lab.preprocessing.scaling`: per-spectrum min-max (TrCSL eq. 1).
* :mod:`~saca_lab.preprocessing.baseline`: airPLS baseline correction (Zhang et al. 2010),
  batched, equal to pybaselines to round-off.
* :mod:`~saca_lab.preprocessing.windows`: windows around characteristic lines (TrCSL 1D input);
  :mod:`~saca_lab.preprocessing.line_selection`: which lines (the paper's, or NIST's unblended).
* :mod:`~saca_lab.preprocessing.reshape`: 16,375 points -> 125 x 131 (TrCSL 2D input).
* :mod:`~saca_lab.preprocessing.shots`: averaging of laser shots.

Example: the TrCSL 1D input from raw spectra on a known grid, in the order training applies
the steps (:func:`saca_lab.datasets.features.transform_spectra`: baseline first, so min-max scales
the net lines, not the background)::

    from sklearn.pipeline import make_pipeline
    pipe = make_pipeline(AirPLS(), MinMaxPerSpectrum(), LineWindows(wavelengths=grid))
"""

from saca_lab.preprocessing.baseline import AirPLS, AirPLSWarning, airpls_batch
from saca_lab.preprocessing.line_selection import (
    TRCSL_LINES,
    CharacteristicLine,
    strongest_lines,
)
from saca_lab.preprocessing.reshape import To2D
from saca_lab.preprocessing.scaling import MinMaxPerSpectrum, minmax_per_spectrum
from saca_lab.preprocessing.shots import ShotAverager, average_shots
from saca_lab.preprocessing.windows import LineWindows

__all__ = [
    "TRCSL_LINES",
    "AirPLS",
    "AirPLSWarning",
    "CharacteristicLine",
    "LineWindows",
    "MinMaxPerSpectrum",
    "ShotAverager",
    "To2D",
    "airpls_batch",
    "average_shots",
    "minmax_per_spectrum",
    "strongest_lines",
]
