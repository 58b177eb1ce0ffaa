"""Specification of the ``radar`` problem: target synthesizer, noise, fields, datasets, reference solve."""
from __future__ import annotations

import numpy as np
import pytest

import sciops.problems as problems
from sciops.problems.radar import channels_to_complex, complex_to_channels
from sciops.problems.radar_targets import GLYPHS, KINDS, _voxel_centres, primitive_mask, random_scene
from sciops.solvers.radar import reference_grid

SMALL = dict(nz=12, ny=9, nx=9, n_freqs=4)


def radar(**params):
    return problems.get("radar", **{**SMALL, **params})


def test_metadata_and_roles():
    p = radar()
    assert p.input_fields == ["adjoint"] and p.output_fields == ["magnitude"]
    assert {k: f.role for k, f in p.fields.items()} == {"adjoint": "input", "magnitude": "output",
                                                       "reflectivity": "diagnostic", "measurements": "diagnostic"}
    assert p.field_shape("measurements") == (4, 12, 13) and p.field_shape("magnitude") == (12, 9, 9)
    assert p.grid_units["f"] == "Hz" and p.grid["f"][0] == 4e9 and p.grid["f"][-1] == 16e9
    assert len(p.solver_info["tx"]) == 12 and len(p.solver_info["rx"]) == 13
    assert problems.get("radar").operator().image_shape == (49, 25, 25)  # the METHODS.md reference grid


def test_samples_depend_only_on_seed_and_index():
    p = radar()
    i3, o3, _ = p.generate(3, seed=5)
    i1, o1, _ = p.generate(1, seed=5, start=2)
    np.testing.assert_array_equal(i3["adjoint"][2], i1["adjoint"][0])
    for k in o3:
        np.testing.assert_array_equal(o3[k][2], o1[k][0])
    assert not np.array_equal(o3["reflectivity"][0], o3["reflectivity"][1])
    np.testing.assert_array_equal(p.sample_inputs(3, 5), i3["adjoint"])


def test_scenes_are_unions_of_primitives_with_random_phase():
    axes = reference_grid(49, 25, 25)
    rng = np.random.default_rng(0)
    phases, sizes = set(), []
    for _ in range(20):
        x = random_scene(rng, axes, min_shapes=2, max_shapes=4)
        assert np.abs(x).max() == pytest.approx(1.0)
        nz = x[np.abs(x) > 0]
        phases.update(np.round(np.angle(nz), 6))
        sizes.append(nz.size)
    assert len(phases) > 30  # random phase per primitive
    assert min(sizes) >= 2 and max(sizes) < 0.2 * 49 * 25 * 25
    pts, centre = _voxel_centres(axes), np.array([0.0, 0.0, 0.5])
    half = np.array([0.04, 0.03, 0.02])
    for kind in KINDS:
        mask = primitive_mask(kind, np.random.default_rng(1), pts, axes, centre, half)
        assert mask.sum() >= 8, kind
    plate = primitive_mask("plate", np.random.default_rng(1), pts, axes, centre, half)
    assert np.abs(pts[plate][:, 2] - 0.5).max() < 0.03  # thin (tilt <= 30 deg over a 5 cm plate)
    sphere = primitive_mask("sphere", None, pts, axes, centre, half)
    np.testing.assert_array_equal(sphere, np.linalg.norm(pts - centre, axis=-1) <= 0.04)
    # a letter is a glyph: it covers fewer voxels than the plate square around it and is one layer thick
    letter = primitive_mask("letter", np.random.default_rng(2), pts, axes, centre, half)
    assert len(np.unique(np.nonzero(letter)[0])) == 1 and 8 <= letter.sum() < 0.8 * (letter.any(0).shape[0] ** 2)
    assert all(g.shape == (7, 5) for g in GLYPHS.values())


def test_measurements_are_the_born_model_plus_noise_at_the_snr():
    clean = radar(snr_db=None)
    _, o, _ = clean.generate(2, seed=1)
    x = channels_to_complex(o["reflectivity"])
    np.testing.assert_allclose(channels_to_complex(o["measurements"]), clean.operator().forward(x).numpy(), rtol=1e-5,
                               atol=1e-6 * np.abs(channels_to_complex(o["measurements"])).max())
    np.testing.assert_allclose(o["magnitude"], np.abs(x), rtol=1e-6)
    noisy = radar(snr_db=20.0, n_freqs=12)
    i, o, _ = noisy.generate(2, seed=1)
    y, x = channels_to_complex(o["measurements"]), channels_to_complex(o["reflectivity"])
    signal = noisy.operator().forward(x).numpy()
    for k in range(2):
        snr = 10 * np.log10(np.mean(np.abs(signal[k]) ** 2) / np.mean(np.abs(y[k] - signal[k]) ** 2))
        assert snr == pytest.approx(20.0, abs=0.5)
    adj = channels_to_complex(i["adjoint"])
    expected = noisy.operator().adjoint(y).numpy()
    expected /= np.abs(expected).reshape(2, -1).max(1)[:, None, None, None]
    np.testing.assert_allclose(adj, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(adj).reshape(2, -1).max(1) == pytest.approx(1.0)
    assert radar(n_freqs=2).generate(1, 0)[1]["measurements"].shape == (1, 2, 12, 13, 2)  # compressive


def test_reference_solve_and_classical_reconstructions_beat_the_adjoint():
    p = radar(nz=16, ny=11, nx=11, n_freqs=8, snr_db=None, max_shapes=2, cg_iters=15, tikhonov=1e-3)
    i, o, _ = p.generate(2, seed=3)
    truth = o["magnitude"]

    def err(m):
        return np.linalg.norm(m - truth) / np.linalg.norm(truth)

    out = p.solve(i["adjoint"])
    assert out.dtype == np.float32 and out.shape == truth.shape
    assert out.reshape(2, -1).max(1) == pytest.approx(1.0)
    e_adj = err(p.reconstruct(o["measurements"], "adjoint"))
    assert err(out) < 0.8 * e_adj
    assert err(p.reconstruct(o["measurements"], "cgls")) < 0.8 * e_adj
    assert err(p.reconstruct(o["measurements"], "pnp-sparsity", iters=5)) < e_adj
    with pytest.raises(ValueError, match="unknown reconstruction 'music'"):
        p.reconstruct(o["measurements"], "music")
    with pytest.raises(ValueError, match=r"radar.solve expects the adjoint image of shape \(batch, 16, 11, 11, 2\)"):
        p.solve(np.zeros((1, 4, 4, 4, 2)))


def test_dataset_round_trip(tmp_path):
    from sciops.datasets import generate, open_dataset, open_xarray

    p = radar(nz=6, ny=5, nx=5, n_freqs=3)
    path = generate(p, 3, tmp_path / "radar.h5", seed=2, progress=False)
    ds = open_xarray(path)
    assert ds["measurements"].dims == ("sample", "f", "tx", "rx", "channel")
    assert ds["adjoint"].dims == ("sample", "z", "y", "x", "channel") and ds["magnitude"].dims == ("sample", "z", "y", "x")
    assert ds["reflectivity"].attrs["role"] == "diagnostic" and ds["f"].attrs["units"] == "Hz"
    _, o, _ = p.generate(3, seed=2)
    np.testing.assert_array_equal(ds["measurements"].values, o["measurements"])
    torch_ds = open_dataset(path)
    assert torch_ds.in_channels == 2 and torch_ds.out_channels == 1
    x, y = torch_ds[0]
    assert tuple(x.shape) == (2, 6, 5, 5) and tuple(y.shape) == (1, 6, 5, 5)


@pytest.mark.parametrize("params, message", [
    (dict(z_min=0.7, z_max=0.6), "z_max=0.6 must exceed z_min=0.7"),
    (dict(f_min=8e9, f_max=6e9), "f_max=6000000000.0 must exceed f_min"),
    (dict(min_shapes=5, max_shapes=2), "min_shapes=5 must not exceed max_shapes=2"),
    (dict(array="circle"), "expected one of cross, planar"),
    (dict(nz=1000, ny=1000, nx=1000, memory_mib=64), "needs at least .* MiB; the memory budget is 64.0 MiB"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        radar(**params)


def test_complex_channels_round_trip():
    z = (np.arange(6) + 1j * np.arange(6)[::-1]).reshape(2, 3).astype(np.complex64)
    np.testing.assert_array_equal(channels_to_complex(complex_to_channels(z)), z)
    with pytest.raises(ValueError, match="trailing axis of size 2"):
        channels_to_complex(np.zeros((2, 3)))
