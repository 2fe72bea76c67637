"""Atomic writes keep the mode a plain open()/mkdir() would give (not mkstemp's 0600)."""

import os
import stat

import numpy as np

from saca_lab.data.store import DatasetWriter
from saca_lab.io import DIR_MODE, FILE_MODE, write_text


def test_atomic_file_gets_the_umask_mode(tmp_path):
    out = write_text(tmp_path / "report.md", "x")
    assert stat.S_IMODE(os.stat(out).st_mode) == FILE_MODE


def test_dataset_folder_gets_the_umask_mode(tmp_path):
    w = DatasetWriter(tmp_path / "ds", np.linspace(200, 300, 5), n_samples=1, n_shots=1)
    w.append(np.ones((1, 1, 5)))
    w.add_table("targets", ["s0"], {"Fe": np.array([1.0])})
    out = w.close({"source": "test"})
    assert stat.S_IMODE(os.stat(out).st_mode) == DIR_MODE
