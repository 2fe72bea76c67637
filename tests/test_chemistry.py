import pytest

from saca_lab.chemistry import fill_balance, mass_fractions_of, parse_composition, to_elements
from saca_lab.errors import InputError


def test_oxide_split_conserves_mass():
    el = to_elements({"SiO2": 50.0, "Fe2O3": 50.0})
    assert sum(el.values()) == pytest.approx(100.0)
    assert el["Si"] == pytest.approx(50.0 * 28.085 / 60.083, rel=1e-4)
    assert mass_fractions_of("MnO")["Mn"] == pytest.approx(54.938 / 70.937, rel=1e-4)


def test_balance_filled_and_not_doubled():
    steel = fill_balance({"C": 0.4, "Mn": 0.8}, "Fe")
    assert steel["Fe"] == pytest.approx(98.8)
    slag = fill_balance({"CaO": 60.0, "SiO2": 40.0}, "O")
    assert sum(slag.values()) == pytest.approx(100.0)
    rock = fill_balance({"Si": 23.33, "Ca": 8.15}, "O")
    assert rock["O"] == pytest.approx(100 - 23.33 - 8.15)


@pytest.mark.parametrize("text, message", [
    ("Fe=98,Xx=1", "unknown element"),
    ("Fe=98,Mn=-1", "negative"),
    ("Fe=98,Mn=5", "over 100"),
    ("Fe=98,Mn=abc", "non-numeric"),
    ("Fe98", "NAME=PERCENT"),
    ("", "empty"),
])
def test_bad_compositions(text, message):
    with pytest.raises(InputError, match=message):
        parse_composition(text)
