import numpy as np

from saca_lab.plots import mean_spectra, plot_fig8
from saca_lab.preprocessing import airpls_batch


def test_fig8_written(tiny_slag, tiny_steel, tmp_path):
    out = plot_fig8(tiny_slag, tiny_steel, tmp_path / "fig8.png", n_samples=3)
    assert out.stat().st_size > 50_000
    assert [p.name for p in tmp_path.iterdir()] == ["fig8.png"]


def test_airpls_removes_the_matrix_backgrounds(tiny_slag, tiny_steel):
    wl = tiny_slag.wavelengths
    for ds, (lo, hi) in ((tiny_slag, (615, 640)), (tiny_steel, (520, 580))):
        raw = mean_spectra(ds, 2)
        corrected = raw - airpls_batch(raw, lam=1e4, max_iter=50)
        band = (wl > lo) & (wl < hi)
        raw_floor = np.percentile(raw[:, band], 20, axis=1)
        corrected_floor = np.percentile(corrected[:, band], 20, axis=1)
        assert np.all(np.abs(corrected_floor) < 0.1 * raw_floor)
