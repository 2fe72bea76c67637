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


def test_plots_leave_pyplot_and_the_backend_alone(tmp_path):
    """Figures are ``matplotlib.figure.Figure`` objects: plotting neither imports pyplot nor
    switches the process's backend, so a caller's own pyplot session is left as it was."""
    import subprocess
    import sys

    code = f"""
import sys
import matplotlib
matplotlib.use("svg")
import numpy as np
from saca_lab.compare.plots import fig14
from saca_lab.training.reporting import plot_pred_vs_true
summary = [dict(model="plsr", dataset="d", size=s, n_fits=2, r2_mean=0.5, r2_std=0.1,
                rmse_mean=1.0, rmse_std=0.2) for s in (10, 20)]
fig14(summary, {str(tmp_path / "a.png")!r}, "Mn", "d")
y = np.arange(8.0).reshape(4, 2)
plot_pred_vs_true(y, y + 0.1, np.array([0, 0, 1, 1]), ["Mn", "Cr"], {str(tmp_path / "b.png")!r})
print("matplotlib.pyplot" in sys.modules, matplotlib.get_backend())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "svg"]
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "b.png").stat().st_size
