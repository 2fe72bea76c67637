"""saca-lab: deep-learning quantitative analysis of atomic emission spectra of metals."""

__version__ = "0.1.0"
