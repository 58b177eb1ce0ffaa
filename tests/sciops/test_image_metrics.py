"""PSNR, SSIM and the normalised error: exact values on images whose statistics are known in closed form."""
import numpy as np
import pytest

from sciops.image_metrics import K1, nrmse, psnr, ssim


def test_psnr_of_a_constant_error():
    a = np.random.default_rng(0).random((2, 12, 13, 14))
    assert psnr(a + 0.1, a) == pytest.approx([20.0, 20.0])
    assert psnr(a[0], a[0]) == np.inf
    assert psnr(a[0] * 2, a[0] * 2 + 0.2, data_range=2.0) == pytest.approx(20.0)


def test_nrmse_per_image_of_a_batch():
    a = np.random.default_rng(3).random((3, 6, 7, 8))
    scale = np.array([0.5, 1.0, -2.0])[:, None, None, None]
    np.testing.assert_allclose(nrmse(a * (1 + scale), a), [0.5, 1.0, 2.0], rtol=1e-12)
    assert nrmse(a[0], a[0]) == 0.0


def test_ssim_identity_and_constant_shift():
    a = np.random.default_rng(1).random((14, 13, 12))
    assert ssim(a, a) == pytest.approx(1.0)
    # a constant image and a shifted constant: only the luminance term remains, exactly
    u, c = np.full((12, 12, 12), 0.3), 0.2
    c1 = K1 ** 2
    expected = (2 * 0.3 * 0.5 + c1) / (0.3 ** 2 + 0.5 ** 2 + c1)
    assert ssim(u + c, u) == pytest.approx(expected, rel=1e-12)
    # structure lost: noise against its own negative has strongly negative SSIM
    n = np.random.default_rng(2).standard_normal((14, 14, 14)) * 0.1 + 0.5
    assert ssim(n, 1 - n) < -0.5
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, a[:-1])
    with pytest.raises(ValueError, match="every image side > 10"):
        ssim(np.zeros((5, 20, 20)), np.zeros((5, 20, 20)))


def test_image_comparison_on_grids_too_small_for_ssim():
    # radar allows grids of a few voxels per side: PSNR and the normalised error are still reported,
    # SSIM (whose 11-voxel window does not fit) is NaN instead of failing the evaluation
    from sciops.grid.evaluation import image_comparison

    truth = np.random.default_rng(4).random((2, 8, 8, 8))

    class Stub:
        def baselines(self, outputs):
            return {"adjoint": (outputs["magnitude"] * 0.5, 0.01)}

    table = image_comparison(Stub(), {"magnitude": truth}, truth + 0.1, 0.001, "magnitude")
    assert table["surrogate"]["psnr"] == pytest.approx(20.0) and np.isnan(table["adjoint"]["ssim"])
    assert table["adjoint"]["nrmse"] == pytest.approx(0.5)
