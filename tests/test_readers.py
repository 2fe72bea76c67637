"""Readers for real spectra files, the import function, resampling and every bad-input path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from saca_lab.data.importer import import_files
from saca_lab.data.readers import (
    concat_tables,
    read_any,
    read_npz,
    read_pyhat_csv,
    read_two_column_csv,
    read_two_column_folder,
    read_wide_csv,
    resample,
    sniff_kind,
)
from saca_lab.data.store import open_dataset
from saca_lab.data.table import SpectralTable
from saca_lab.errors import InputError

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
PYHAT = REAL / "libs_geostandards_sio2.csv"
BHVO2 = REAL / "bhvo2"
CHEMCAM1 = BHVO2 / "chemcam_bhvo2_loc1_spectrum.csv"


@pytest.fixture
def real() -> Path:
    if not (PYHAT.is_file() and BHVO2.is_dir()):
        pytest.skip(f"real spectra not found under {REAL}")
    return REAL


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def wide_text(header: str = "sample_id,SiO2,500.0,500.5,501.0", *rows: str) -> str:
    rows = rows or ("a,50,1,2,3", "b,40,4,5,6")
    return "\n".join([header, *rows]) + "\n"


# --------------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------------


def test_pyhat_real_file(real: Path) -> None:
    table = read_pyhat_csv(PYHAT)
    assert table.spectra.shape == (103, 1, 44)
    assert table.spectra.dtype == np.float32
    assert table.wavelengths[0] == pytest.approx(585.149)
    assert table.wavelengths[-1] == pytest.approx(594.806)
    assert np.all(np.diff(table.wavelengths) > 0)
    assert table.sample_ids[0] == "LIB00041"
    assert list(table.targets) == ["SiO2"]
    assert table.targets["SiO2"][0] == pytest.approx(76.9)
    # The README rounds the range to "0 to 98.6"; the file's largest value is 98.57.
    assert table.targets["SiO2"].min() == 0 and table.targets["SiO2"].max() == pytest.approx(98.57)
    assert table.spectra[0, 0, 0] == pytest.approx(823.06)
    assert table.spectra[0, 0, -1] == pytest.approx(890.06)


def test_two_column_real_file(real: Path) -> None:
    table = read_two_column_csv(CHEMCAM1)
    assert table.spectra.shape == (1, 1, 6144)
    assert table.sample_ids == ["chemcam_bhvo2_loc1_spectrum"]
    assert table.wavelengths[0] == pytest.approx(240.811)
    assert table.wavelengths[-1] == pytest.approx(905.57349)
    assert table.targets == {}
    assert table.spectra[0, 0, 0] == pytest.approx(1.61e11, rel=1e-6)


def test_two_column_folder_on_shared_grid(real: Path, tmp_path: Path) -> None:
    for path in sorted(BHVO2.glob("chemcam_*.csv")):
        shutil.copy(path, tmp_path)
    (tmp_path / "README.md").write_text("not a spectrum")
    table = read_two_column_folder(tmp_path)
    assert table.spectra.shape == (4, 1, 6144)
    assert table.sample_ids == [f"chemcam_bhvo2_loc{i}_spectrum" for i in range(1, 5)]
    single = read_two_column_csv(CHEMCAM1)
    np.testing.assert_array_equal(table.spectra[0], single.spectra[0])


def test_two_column_folder_resamples_onto_first_grid(real: Path, tmp_path: Path) -> None:
    # The lab (CSA) spectrum covers 198-970 nm, so it fits onto the ChemCam grid (241-906 nm).
    shutil.copy(CHEMCAM1, tmp_path / "a_chemcam.csv")
    shutil.copy(BHVO2 / "csa_bhvo2_200pulse_spectrum.csv", tmp_path / "b_csa.csv")
    table = read_two_column_folder(tmp_path)
    csa = read_two_column_csv(tmp_path / "b_csa.csv")
    np.testing.assert_array_equal(table.wavelengths, read_two_column_csv(CHEMCAM1).wavelengths)
    expected = np.interp(table.wavelengths, csa.wavelengths, csa.spectra[0, 0].astype(np.float64))
    np.testing.assert_allclose(table.spectra[1, 0], expected, rtol=1e-5, atol=1e-6)


def test_real_folder_of_three_instruments_refuses_extrapolation(real: Path) -> None:
    # SuperCam stops at 852.8 nm, short of the first (ChemCam) file's 905.6 nm.
    with pytest.raises(InputError) as info:
        read_two_column_folder(BHVO2)
    message = str(info.value)
    assert "supercam_1545mm_loc1_spectrum.csv" in message
    assert "243.7894-852.7723" in message and "240.8110-905.5735" in message


def test_real_folder_onto_common_grid(real: Path) -> None:
    grid = np.arange(250.0, 850.0, 0.5)
    table = read_any(BHVO2, grid=grid)
    assert table.spectra.shape == (12, 1, grid.size)
    assert np.isfinite(table.spectra).all()


def test_sniff_kind(real: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", wavelengths=np.arange(3.0) + 1, spectra=np.ones((1, 3)))
    assert sniff_kind(PYHAT) == "pyhat"
    assert sniff_kind(CHEMCAM1) == "two_column"
    assert sniff_kind(BHVO2) == "folder"
    assert sniff_kind(write(tmp_path / "w.csv", wide_text())) == "wide"
    assert sniff_kind(tmp_path / "x.npz") == "npz"
    with pytest.raises(InputError, match="unsupported file type"):
        sniff_kind(write(tmp_path / "x.xlsx", "x"))


def test_import_round_trip(real: Path, tmp_path: Path) -> None:
    out = import_files([PYHAT], out_dir=tmp_path / "ds")
    dataset = open_dataset(out)
    table = read_pyhat_csv(PYHAT)
    np.testing.assert_array_equal(np.asarray(dataset.spectra), table.spectra)
    np.testing.assert_array_equal(dataset.wavelengths, table.wavelengths)
    assert dataset.sample_ids == table.sample_ids
    np.testing.assert_allclose(dataset.targets["SiO2"], table.targets["SiO2"])
    provenance = dataset.manifest["provenance"]
    assert provenance["kind"] == "import"
    key = str(PYHAT.resolve())
    assert provenance["files"] == [key]
    assert len(provenance["sha256"][key]) == 64


def test_import_with_labels_csv_and_grid(real: Path, tmp_path: Path) -> None:
    labels = write(
        tmp_path / "labels.csv",
        "sample_id,SiO2,CaO\nchemcam_bhvo2_loc1_spectrum,49.9,11.4\n"
        "chemcam_bhvo2_loc2_spectrum,49.9,11.4\nunused_extra_row,1,1\n",
    )
    files = sorted(BHVO2.glob("chemcam_bhvo2_loc[12]_*.csv"))
    grid = np.linspace(300.0, 800.0, 101)
    out = import_files(files, out_dir=tmp_path / "ds", targets_csv=labels, grid=grid)
    dataset = open_dataset(out)
    assert dataset.shape == (2, 1, 101)
    np.testing.assert_allclose(dataset.wavelengths, grid)
    np.testing.assert_allclose(dataset.targets["CaO"], [11.4, 11.4])
    assert str(labels.resolve()) in dataset.manifest["provenance"]["sha256"]


def test_labels_csv_missing_rows_named_and_nothing_written(real: Path, tmp_path: Path) -> None:
    labels = write(tmp_path / "labels.csv", "sample_id,SiO2\nLIB00041,76.9\n")
    out = tmp_path / "ds"
    with pytest.raises(InputError) as info:
        import_files([PYHAT], out_dir=out, targets_csv=labels)
    message = str(info.value)
    assert "labels.csv" in message and "102 sample(s)" in message and "'LIB00042'" in message
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# Synthetic files: wide, NPZ, PyHAT and multi-file reads
# --------------------------------------------------------------------------------------------


def test_wide_csv_groups_shots(tmp_path: Path) -> None:
    text = wide_text(
        "sample_id,shot,SiO2,CaO,500.0,500.5,501.0",
        "b,2,40,10,7,8,9",
        "a,1,50,5,1,2,3",
        "b,1,40,10,4,5,6",
        "a,2,50,5,10,11,12",
    )
    table = read_wide_csv(write(tmp_path / "w.csv", text))
    assert table.sample_ids == ["b", "a"]
    assert table.spectra.shape == (2, 2, 3)
    np.testing.assert_array_equal(table.spectra[0], [[4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(table.targets["CaO"], [10, 5])
    only_sio2 = read_wide_csv(tmp_path / "w.csv", label_columns=["SiO2"])
    assert list(only_sio2.targets) == ["SiO2"]


def test_wide_csv_quoted_cells_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", 'sample_id,500.0,"501.0"\n\n"x, 1",1,"2"\r\ny,3,4\r\n')
    table = read_wide_csv(path)
    assert table.sample_ids == ["x, 1", "y"]
    np.testing.assert_array_equal(table.spectra[:, 0], [[1, 2], [3, 4]])


def test_wide_csv_shot_errors(tmp_path: Path) -> None:
    uneven = write(
        tmp_path / "uneven.csv",
        wide_text("sample_id,shot,500.0,501.0", "a,1,1,2", "a,2,1,2", "b,1,1,2"),
    )
    with pytest.raises(InputError, match=r"uneven\.csv: line 4: sample 'b' has 1 shots"):
        read_wide_csv(uneven)
    repeated = write(tmp_path / "rep.csv", wide_text("sample_id,500.0,501.0", "a,1,2", "a,3,4"))
    with pytest.raises(InputError, match=r"rep\.csv: line 3: sample id 'a' repeats line 2"):
        read_wide_csv(repeated)
    labels = write(tmp_path / "lab.csv", wide_text("sample_id,shot,Fe,500.0", "a,1,5,1", "a,2,6,1"))
    with pytest.raises(InputError, match=r"lab\.csv: line 3: labels differ"):
        read_wide_csv(labels)


def test_npz_both_target_forms(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    np.savez(
        path,
        wavelengths=np.array([400.0, 401.0, 402.0]),
        spectra=np.arange(12.0).reshape(2, 2, 3),
        sample_ids=np.array(["s1", "s2"]),
        targets_names=np.array(["Fe", "Mn"]),
        targets=np.array([[90.0, 1.0], [80.0, 2.0]]),
        target_C=np.array([0.1, 0.2]),
    )
    table = read_npz(path)
    assert table.spectra.shape == (2, 2, 3) and table.spectra.dtype == np.float32
    assert table.sample_ids == ["s1", "s2"]
    assert sorted(table.targets) == ["C", "Fe", "Mn"]
    np.testing.assert_array_equal(table.targets["Mn"], [1.0, 2.0])
    np.savez(tmp_path / "plain.npz", wavelengths=np.array([1.0, 2.0]), spectra=np.ones((3, 2)))
    plain = read_npz(tmp_path / "plain.npz")
    assert plain.sample_ids == ["plain_1", "plain_2", "plain_3"] and plain.n_shots == 1


def test_read_any_concatenates_and_checks_ids(tmp_path: Path) -> None:
    first = write(tmp_path / "one.csv", wide_text())
    second = write(
        tmp_path / "two.csv", wide_text("sample_id,SiO2,500.0,500.5,501.0", "c,30,7,8,9")
    )
    table = read_any([first, second])
    assert table.sample_ids == ["a", "b", "c"]
    np.testing.assert_array_equal(table.targets["SiO2"], [50, 40, 30])
    with pytest.raises(InputError, match=r"one\.csv: sample id 'a' is also in .*one\.csv"):
        read_any([first, first])
    unlabelled = write(tmp_path / "three.csv", wide_text("sample_id,500.0,500.5,501.0", "d,1,2,3"))
    with pytest.raises(InputError, match=r"no SiO2 value for 1 sample\(s\): 'd'"):
        read_any([first, unlabelled])


def test_pyhat_id_column_fallback_and_bad_group(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv", "meta,meta,comp,wvl,wvl\nrun,Target,MgO,300,301\n7,rock1,3.5,1,2\n"
    )
    table = read_pyhat_csv(path)
    assert table.sample_ids == ["7"]  # no id-like name: the first meta column
    path = write(
        tmp_path / "q.csv", "meta,meta,comp,wvl,wvl\nrun,Sample,MgO,300,301\n7,rock1,3.5,1,2\n"
    )
    assert read_pyhat_csv(path).sample_ids == ["rock1"]
    bad = write(tmp_path / "g.csv", "meta,misc,wvl\nid,x,300\na,1,2\n")
    with pytest.raises(InputError, match=r"g\.csv: line 1, column 2: group 'misc'"):
        read_pyhat_csv(bad)


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


def test_resample_reproduces_linear_function() -> None:
    src = np.sort(np.random.default_rng(0).uniform(200.0, 900.0, 500))
    spectra = np.stack([3.0 * src - 7.0, -0.5 * src + 1000.0])[:, None, :]
    grid = np.linspace(src[0], src[-1], 1234)
    out = resample((src, spectra), grid)
    assert out.shape == (2, 1, 1234)
    np.testing.assert_allclose(out[0, 0], 3.0 * grid - 7.0, rtol=1e-12)
    np.testing.assert_allclose(out[1, 0], -0.5 * grid + 1000.0, rtol=1e-12)


def test_resample_table_float32_matches_interp() -> None:
    src = np.linspace(300.0, 400.0, 101)
    rng = np.random.default_rng(1)
    table = SpectralTable(
        src, rng.random((3, 2, 101)).astype(np.float32), ["a", "b", "c"], source="t.csv"
    )
    grid = np.linspace(300.2, 399.7, 57)
    out = resample(table, grid)
    assert isinstance(out, SpectralTable) and out.spectra.dtype == np.float32
    for s in range(3):
        for k in range(2):
            expected = np.interp(grid, src, table.spectra[s, k].astype(np.float64))
            np.testing.assert_allclose(out.spectra[s, k], expected, rtol=1e-6)


def test_resample_refuses_extrapolation_with_half_step_tolerance() -> None:
    src = np.arange(100.0, 200.0 + 1e-9, 1.0)
    spectra = np.ones((1, src.size))
    inside = resample((src, spectra), np.array([99.6, 150.0, 200.4]), source="s.csv")
    np.testing.assert_array_equal(inside, np.ones((1, 3)))
    with pytest.raises(InputError) as info:
        resample((src, spectra), np.array([150.0, 201.0]), source="s.csv")
    assert "s.csv" in str(info.value) and "100.0000-200.0000" in str(info.value)
    assert "150.0000-201.0000" in str(info.value)
    with pytest.raises(InputError, match="s.csv"):
        resample((src, spectra), np.array([99.0, 150.0]), source="s.csv")
    with pytest.raises(InputError, match="not sorted"):
        resample((src, spectra), np.array([150.0, 120.0]))


def test_concat_refuses_different_shot_counts() -> None:
    one = SpectralTable(np.array([1.0, 2.0]), np.ones((1, 1, 2), np.float32), ["a"], source="one")
    two = SpectralTable(np.array([1.0, 2.0]), np.ones((1, 2, 2), np.float32), ["b"], source="two")
    with pytest.raises(InputError, match="two: 2 shots per sample but one has 1"):
        concat_tables([one, two])


# --------------------------------------------------------------------------------------------
# Bad input: each error names the file and the line/column or field; nothing is written
# --------------------------------------------------------------------------------------------

H = "sample_id,SiO2,500.0,500.5,501.0"
BAD_WIDE = {
    "nan": (
        wide_text(H, "a,50,1,2,3", "b,40,4,nan,6"),
        ["line 3", "column 4", "'500.5'", "not a finite"],
    ),
    "inf": (wide_text(H, "a,50,1,2,3", "b,40,inf,5,6"), ["line 3", "column 3", "not a finite"]),
    "unsorted": (
        wide_text("sample_id,SiO2,500.0,501.0,500.5"),
        ["line 1", "column 5", "not sorted"],
    ),
    "duplicate_wl": (
        wide_text("sample_id,SiO2,500.0,500,501.0"),
        ["line 1", "column 4", "duplicate wavelength", "column 3"],
    ),
    "duplicate_name": (wide_text("sample_id,SiO2,SiO2,500.0"), ["line 1", "'SiO2' appears twice"]),
    "ragged": (wide_text(H, "a,50,1,2,3", "b,40,4,5"), ["line 3", "4 cells, expected 5"]),
    "non_numeric": (wide_text(H, "a,50,1,2,3", "b,40,4,x5,6"), ["line 3", "column 4", "'x5'"]),
    "empty_cell": (wide_text(H, "a,50,1,2,3", "b,40,4,,6"), ["line 3", "column 4", "empty cell"]),
    "blank_lines_keep_numbering": (H + "\na,50,1,2,3\n\n\nb,40,4,oops,6\n", ["line 5", "'oops'"]),
    "empty_file": ("", ["file is empty"]),
    "header_only": (H + "\n", ["no data rows"]),
    "unknown_element": (
        wide_text("sample_id,Xy2O,500.0,500.5,501.0"),
        ["line 1", "column 2", "'Xy2O'", "not a known element"],
    ),
    "negative_percent": (
        wide_text(H, "a,50,1,2,3", "b,-4,4,5,6"),
        ["line 3", "'b'", "SiO2 is negative"],
    ),
    "over_100_percent": (
        wide_text("sample_id,SiO2,CaO,500.0,500.5", "a,60,30,1,2", "b,70,40,4,5"),
        ["line 3", "'b'", "over 100"],
    ),
    "too_big_for_float32": (wide_text(H, "a,50,1,2,3e39"), ["line 2", "column 5", "too large"]),
    "no_spectral_columns": (wide_text("sample_id,SiO2", "a,50"), ["line 1", "no spectral columns"]),
}


@pytest.mark.parametrize("case", sorted(BAD_WIDE))
def test_bad_wide_csv(case: str, tmp_path: Path) -> None:
    text, expected = BAD_WIDE[case]
    path = write(tmp_path / f"bad_{case}.csv", text)
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        import_files([path], out_dir=out)
    message = str(info.value)
    assert path.name in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp dirs left either


def test_bulk_parse_fallback_names_row_in_later_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("saca_lab.data.readers._parse._CHUNK_BYTES", 64)  # a few rows per numpy block
    rows = [f"s{i},{i % 50},1,2,3" for i in range(200)]
    rows[150] = "s150,1,2,3,zz"
    path = write(tmp_path / "long.csv", wide_text(H, *rows))
    with pytest.raises(
        InputError, match=r"long\.csv: line 152, column 5 \('501\.0'\): non-numeric value 'zz'"
    ):
        read_wide_csv(path)
    rows[150] = "s150,1,2,3,4"
    assert read_wide_csv(write(tmp_path / "long.csv", wide_text(H, *rows))).n_samples == 200


def test_missing_label_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", wide_text())
    with pytest.raises(InputError) as info:
        read_wide_csv(path, label_columns=["SiO2", "CaO"])
    assert (
        "w.csv" in str(info.value) and "'CaO'" in str(info.value) and "not found" in str(info.value)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wavelength,intensity\n300,1\n299,2\n", ["line 3", "not sorted"]),
        ("wavelength,intensity\n300,1\n300,2\n", ["line 3", "duplicate wavelength", "line 2"]),
        ("wavelength,intensity\n300,1\n301,abc\n", ["line 3", "column 2", "'abc'"]),
        ("wavelength,intensity\n300,1\n301,nan\n", ["line 3", "not a finite"]),
        ("wavelength,intensity\n300,1,5\n", ["line 2", "3 cells, expected 2"]),
        ("wavelength,intensity\n", ["no data rows"]),
    ],
)
def test_bad_two_column_csv(text: str, expected: list[str], tmp_path: Path) -> None:
    path = write(tmp_path / "spec.csv", text)
    with pytest.raises(InputError) as info:
        import_files(path, out_dir=tmp_path / "out")
    for part in ["spec.csv", *expected]:
        assert part in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_header_in_folder_names_file(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "wavelength,intensity\n300,1\n301,2\n")
    write(tmp_path / "b.csv", "lambda,counts\n300,1\n301,2\n")
    with pytest.raises(
        InputError, match=r"b\.csv: line 1: expected the header 'wavelength,intensity'"
    ):
        read_two_column_folder(tmp_path)


def test_bad_npz(tmp_path: Path) -> None:
    wl = np.array([400.0, 401.0, 402.0])
    path = tmp_path / "n.npz"
    spectra = np.ones((2, 3))
    spectra[1, 2] = np.nan
    np.savez(path, wavelengths=wl, spectra=spectra)
    with pytest.raises(InputError, match=r"n\.npz: spectra\[1, 2\] is nan"):
        read_npz(path)
    np.savez(path, wavelengths=wl)
    with pytest.raises(InputError, match=r"n\.npz: missing key 'spectra'"):
        read_npz(path)
    np.savez(path, wavelengths=wl[::-1], spectra=np.ones((2, 3)))
    with pytest.raises(InputError, match=r"n\.npz: wavelengths\[1\]: wavelengths are not sorted"):
        read_npz(path)
    np.savez(path, wavelengths=wl, spectra=np.ones((2, 3)), target_Qq=np.ones(2))
    with pytest.raises(InputError, match=r"n\.npz: target_Qq: 'Qq' is not a known element"):
        read_npz(path)
    np.savez(path, wavelengths=wl, spectra=np.ones((2, 3)), target_Fe=np.array([50.0, 101.0]))
    with pytest.raises(InputError, match=r"n\.npz: sample 1 \('n_2'\): composition sums to 101"):
        read_npz(path)
    write(path, "not a zip")
    with pytest.raises(InputError, match=r"n\.npz: not a readable \.npz file"):
        read_npz(path)


def test_bad_labels_csv(tmp_path: Path) -> None:
    spectra = write(tmp_path / "w.csv", wide_text("sample_id,500.0,501.0", "a,1,2", "b,3,4"))
    cases = {
        "sample_id,Fe\na,5\nb,-1\n": ["line 3", "negative"],
        "sample_id,Fe\na,5\nb,x\n": ["line 3", "'x'"],
        "sample_id,Fe,Mn\na,5,1\nb,99,2\n": ["line 3", "over 100"],
        "sample_id,Zz\na,5\nb,1\n": ["line 1", "'Zz'"],
        "name_of_thing,Fe\na,5\n": ["no 'sample_id' column"],
        "sample_id,Fe\na,5\na,6\nb,1\n": ["line 3", "repeats line 2"],
    }
    for text, expected in cases.items():
        labels = write(tmp_path / "labels.csv", text)
        with pytest.raises(InputError) as info:
            import_files(spectra, out_dir=tmp_path / "out", targets_csv=labels)
        for part in ["labels.csv", *expected]:
            assert part in str(info.value), (text, str(info.value))
        assert not (tmp_path / "out").exists()


def test_import_refuses_existing_or_input_out_dir(tmp_path: Path) -> None:
    folder = tmp_path / "spectra"
    folder.mkdir()
    write(folder / "a.csv", "wavelength,intensity\n300,1\n301,2\n")
    with pytest.raises(InputError, match="would replace the input"):
        import_files(folder, out_dir=folder, overwrite=True)
    assert (folder / "a.csv").is_file()
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="already exists"):
        import_files(folder, out_dir=tmp_path / "taken")
    with pytest.raises(InputError, match=r"grid\[2\]"):
        import_files(folder, out_dir=tmp_path / "new", grid=[300.0, 300.5, 300.2])
    assert not (tmp_path / "new").exists()
