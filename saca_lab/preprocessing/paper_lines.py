"""The emission lines the TrCSL paper names (:data:`TRCSL_LINES`), as printed there."""

from __future__ import annotations

from typing import NamedTuple


class CharacteristicLine(NamedTuple):
    """An emission line named in a paper: element, air wavelength in nm, where it is named."""

    element: str
    wavelength_nm: float
    source: str


# Every line the TrCSL paper (Ma et al., JAAS 2025, 40, 1810) names in its text and figures;
# its full selection (Table S3 of the supplement) is not public. Air wavelengths, as printed.
TRCSL_LINES: tuple[CharacteristicLine, ...] = (
    CharacteristicLine("Mn", 441.488, "Sec. 3.2, Fig. 10(b, e): clean in carbon steel and slag"),
    CharacteristicLine("Mn", 383.386, "Sec. 3.2, Fig. 10(a): usable in carbon steel only"),
    CharacteristicLine("Mn", 384.108, "Sec. 3.2, Fig. 10(a): usable in carbon steel only"),
    CharacteristicLine("Mn", 475.404, "Sec. 3.2, Fig. 10(f): prominent in slag only"),
    CharacteristicLine("Mn", 476.153, "Sec. 3.2, Fig. 10(f): prominent in slag only"),
    CharacteristicLine("C", 414.626, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
    CharacteristicLine("C", 426.902, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
    CharacteristicLine("Cu", 316.420, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
    CharacteristicLine("Cu", 386.046, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
    CharacteristicLine("Mn", 404.136, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
    CharacteristicLine("Mn", 407.028, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
    CharacteristicLine("Cr", 363.146, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
    CharacteristicLine("Cr", 399.112, "Sec. 3.4, Fig. 13: RSD of sample no. 1"),
)
