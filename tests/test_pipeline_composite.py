from fractions import Fraction

import numpy as np
import pytest

from peanut_server.pipeline.composite import composite, crop_for, dilate, downscale_mask, feather_alpha, working_size


def test_working_size_keeps_aspect_and_even_sizes():
    assert working_size(1920, 1080, 432) == (768, 432)
    assert working_size(3840, 2160, 540) == (960, 540)
    assert working_size(432, 240, 432) == (432, 240)  # never upscales
    assert working_size(1000, 563, 0) == (1000, 563)  # 0 = source


def test_composite_is_bit_exact_outside_the_alpha():
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    filled = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[10:20, 15:30] = True
    alpha = feather_alpha(mask, 3)
    out = composite(source, filled, alpha)
    assert np.array_equal(out[alpha == 0], source[alpha == 0])
    assert np.array_equal(out[mask], filled[mask])  # alpha is 1 on the mask itself
    ring = (alpha > 0) & (alpha < 1)
    assert ring.any() and not ring[mask].any()


def test_feather_reaches_exactly_feather_pixels():
    mask = np.zeros((50, 50), bool)
    mask[25, 25] = True
    alpha = feather_alpha(mask, 4)
    assert alpha[25, 25] == 1.0
    assert alpha[25, 29] > 0 and alpha[25, 30] == 0


def test_downscaled_mask_never_shrinks():
    mask = np.zeros((240, 432), bool)
    mask[100, 200] = True  # one source pixel
    small = downscale_mask(mask, (216, 120))
    assert small.sum() == 1 and small[50, 100]


def test_dilate_grows_by_radius():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    grown = dilate(mask, 3)
    assert grown[10, 13] and not grown[10, 14]


@pytest.mark.parametrize("src,lr", [((1920, 1080), (768, 432)), ((1280, 720), (768, 432)), ((3840, 2160), (960, 540))])
def test_crop_maps_to_whole_source_pixels(src, lr):
    mask = np.zeros(lr[::-1], bool)
    mask[101:133, 207:251] = True
    crop = crop_for(mask, lr, src, margin=5)
    sx, sy = Fraction(src[0], lr[0]), Fraction(src[1], lr[1])
    assert crop.x0 <= 202 and crop.x1 >= 256 and crop.y0 <= 96 and crop.y1 >= 138
    assert crop.sx0 == crop.x0 * sx and crop.sx1 == crop.x1 * sx
    assert crop.sy0 == crop.y0 * sy and crop.sy1 == crop.y1 * sy


def test_crop_of_empty_mask_is_none():
    assert crop_for(np.zeros((10, 10), bool), (10, 10), (20, 20), 2) is None


def test_feather_in_a_box_equals_feather_on_the_frame():
    from peanut_server.pipeline.composite import region_box

    mask = np.zeros((120, 200), bool)
    mask[40:55, 60:90] = True
    mask[70, 150] = True
    box = region_box(mask, 5)
    y0, y1, x0, x1 = box
    full = feather_alpha(mask, 4)
    assert np.array_equal(feather_alpha(mask[y0:y1, x0:x1], 4), full[y0:y1, x0:x1])
    outside = np.ones_like(mask)
    outside[y0:y1, x0:x1] = False
    assert not full[outside].any()
    assert region_box(np.zeros((5, 5), bool), 3) is None


def test_composite_alpha_covers_the_hole_at_source_resolution():
    from peanut_server.pipeline.composite import composite_alpha, hole_region

    mask = np.zeros((240, 432), bool)
    mask[100:130, 200:240] = True
    alpha = composite_alpha(mask, (216, 120), mask_dilation=4, feather=3)
    hole = dilate(downscale_mask(mask, (216, 120)), 4)
    region = hole_region(mask, hole)
    # 1 on the whole hole (4 working pixels = 8 source pixels past the mask), soft beyond, 0 further out.
    assert (alpha[region] == 1).all() and region.sum() > mask.sum()
    assert alpha[mask].min() == 1 and alpha[100, 192] == 1 and 0 < alpha[100, 191] < 1
    ring = (alpha > 0) & (alpha < 1)
    assert ring.any() and not ring[region].any()
    assert np.array_equal(alpha, feather_alpha(region, 3))
    assert not composite_alpha(np.zeros((24, 43), bool), (22, 12), 4, 3).any()
