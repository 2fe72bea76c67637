"""Simulator realism metric: peak-position agreement between a simulated and a measured spectrum.

The metric follows the project issue. Restrict both spectra to the wavelengths both cover,
remove a slowly varying background from each, find peaks by prominence, leave out atmospheric
O, N, H and Ar lines, then, allowing one global wavelength offset of at most ``max_offset_nm``
(instrument calibration), score

* **peak recall**: the share of the ``n_top`` most prominent measured peaks that have a detected
  simulated peak within ``tol_nm``;
* **top overlap**: the share of the ``n_top`` most prominent simulated peaks that have a
  detected measured peak within ``tol_nm``.

Recall asks "does the simulator produce the lines the instrument sees?", overlap asks "are the
lines the simulator calls strongest really there?".

Detection settings (calibrated on the 12 BHVO-2 files against the issue's reference figures)
----------------------------------------------------------------------------------------------
* background: morphological opening over 5 nm, smoothed over 5 nm (:func:`remove_background`);
  the scores barely move between 3 and 10 nm;
* a peak is *detected* when its prominence exceeds ``max(5 sigma_noise, 0.005 p_max)``, with
  ``p_max`` the largest prominence outside the atmospheric windows. A noise-free simulation
  needs the relative term; 200:1 is about the largest dynamic range every measured file
  supports at 5 sigma (ChemCam 250-310:1, CSA ~1100:1, SuperCam 1300-2600:1), so both sides
  are cut at the same depth and the relative term is the one that binds on all 12 files;
* atmospheric windows: +/-0.3 nm around the strong neutral O, N, H, Ar lines from the NIST list
  in libskit (:func:`atmospheric_lines_air`); O is also the sample's matrix, so O I lines go
  from both sides.

Wavelength media
----------------
libskit and the NIST line list use vacuum wavelengths. The CSA laboratory spectra are
calibrated in standard air; the ChemCam and SuperCam flight spectra are calibrated in *vacuum*:
Mg II 279.55, Si I 288.16, Ca II 393.37/396.85, Ca I 422.67, Fe I 404.58, Al I 394.40,
K I 766.49/769.90, Ca I 616.22/643.91 and H alpha sit within ~0.02-0.05 nm of their vacuum
wavelengths in both, and 0.07-0.25 nm above their air wavelengths, the excess growing with
wavelength as the air-vacuum difference does. :func:`load_measured_air` converts the flight
files to air so that every comparison here is made in air.

The CSA file's channels are calibrated inconsistently: fitted per channel, the offsets are
+0.37 nm (266-294 nm, Mg II 279.55/280.27), +0.37 nm (471-505 nm), +0.61-0.66 nm (587-617 nm,
Na D) and +0.2 nm (798-911 nm, Ca II 854.2) against ~0.0-0.07 nm elsewhere. One global offset
cannot absorb that, which costs the CSA scores about five top peaks on each side.
"""

from __future__ import annotations

from saca_lab.spectra.realism._atmosphere import (
    ATMOSPHERIC_SPECIES,
    atmospheric_lines_air,
    exclusion_windows,
)
from saca_lab.spectra.realism._data import (
    BHVO2_COMPOSITION,
    INSTRUMENT_MEDIUM,
    load_measured,
    load_measured_air,
    plain_lte_spectrum,
)
from saca_lab.spectra.realism._metric import RealismScore, peak_match_scores
from saca_lab.spectra.realism._peaks import (
    DEFAULT_BACKGROUND_WINDOW_NM,
    DEFAULT_NOISE_K,
    DEFAULT_REL_PROMINENCE,
    PeakSet,
    find_prominent_peaks,
    remove_background,
    robust_noise_sigma,
    segment_bounds,
)
from saca_lab.spectra.realism._plot import plot_overlay

__all__ = [
    "ATMOSPHERIC_SPECIES",
    "BHVO2_COMPOSITION",
    "DEFAULT_BACKGROUND_WINDOW_NM",
    "DEFAULT_NOISE_K",
    "DEFAULT_REL_PROMINENCE",
    "INSTRUMENT_MEDIUM",
    "PeakSet",
    "RealismScore",
    "atmospheric_lines_air",
    "exclusion_windows",
    "find_prominent_peaks",
    "load_measured",
    "load_measured_air",
    "peak_match_scores",
    "plain_lte_spectrum",
    "plot_overlay",
    "remove_background",
    "robust_noise_sigma",
    "segment_bounds",
]
