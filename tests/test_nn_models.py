"""C2D / I3D builders: the paper's layout, non-local placement, inflation, end-to-end gradients."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.gradcheck import gradcheck
from nlref.nn.video import (
    MODEL_LAYERS,
    build_model,
    c2d,
    count_nonlocal,
    feature_shapes,
    i3d,
    inflate_2d_to_3d,
    inflation_table,
    model_backward,
    model_forward,
    nonlocal_positions,
    temporal_receptive_field,
)


def _clip(rng, shape=(2, 3, 8, 16, 16), dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _randomise_bn(params, state, rng):
    """Non-trivial BN scales, shifts and running statistics (the non-local BN gamma starts at 0)."""
    for k in params:
        if k.endswith(".gamma"):
            params[k] = (0.5 + rng.random(params[k].shape)).astype(params[k].dtype)
        elif k.endswith(".beta"):
            params[k] = (0.1 * rng.standard_normal(params[k].shape)).astype(params[k].dtype)
    for k in state:
        if k.endswith("running_mean"):
            state[k] = (0.1 * rng.standard_normal(state[k].shape)).astype(state[k].dtype)
        else:
            state[k] = (0.5 + rng.random(state[k].shape)).astype(state[k].dtype)


# ----------------------------------------------------------------------------- layout


def test_resnet50_c2d_has_paper_stage_sizes_and_2d_kernels_only():
    model, params, _ = c2d(layout="resnet50", width=4)
    blocks = [s["name"] for s in model if s["op"] == "block"]
    assert [sum(b.startswith(f"res{s}.") for b in blocks) for s in (2, 3, 4, 5)] == [3, 4, 6, 3]
    assert params["conv1.w"].shape == (4, 3, 1, 7, 7)
    assert params["res3.1.conv2.w"].shape == (8, 8, 1, 3, 3)  # bottleneck: inner width 2 * 4
    assert params["res5.2.conv3.w"].shape == (128, 32, 1, 1, 1)  # 4x expansion of 8 * 4
    assert params["fc.w"].shape == (2, 128)
    assert all(v.shape[2] == 1 for k, v in params.items() if k.endswith(".w") and v.ndim == 5)


@pytest.mark.parametrize("inflate, conv", [("3x3x3", "conv2"), ("3x1x1", "conv1")])
def test_i3d_inflates_one_kernel_every_two_blocks_as_the_official_code(inflate, conv):
    _, params, _ = i3d(layout="resnet50", width=4, inflate=inflate)
    assert params["conv1.w"].shape[2:] == (5, 7, 7)
    inflated = {
        k.rsplit(".", 2)[0]
        for k, v in params.items()
        if k.startswith("res") and v.ndim == 5 and v.shape[2] == 3
    }
    expected = {"res2.0", "res2.2", "res3.0", "res3.2", "res4.0", "res4.2", "res4.4", "res5.1"}
    assert inflated == expected
    assert all(params[f"{b}.{conv}.w"].shape[2] == 3 for b in expected)


def test_tiny_layout_follows_paper_notes():
    model, params, state = c2d(width=8)
    assert params["conv1.w"].shape == (8, 3, 1, 5, 5)
    assert params["res4.0.conv2.w"].shape == (32, 32, 1, 3, 3)
    x = np.zeros((2, 3, 16, 32, 32), np.float32)
    logits, _, _ = model_forward(x, params, state, model, train=False)
    assert logits.shape == (2, 2)


def test_temporal_receptive_fields_match_hand_computation():
    # C2D: pool1 (3 frames, stride 1) -> 3, pool2 (3, stride 2) -> 5.
    m, p, _ = c2d()
    assert temporal_receptive_field(m, p) == 5
    # I3D: stem 3 -> 3, pool1 -> 5, res2 conv1 -> 7, pool2 -> 9 (jump 2), res3 -> 13, res4 -> 17.
    m, p, _ = i3d()
    assert temporal_receptive_field(m, p) == 17


# Table 1 of Wang et al. (CVPR 2018), C2D ResNet-50 on 32 x 224 x 224 clips: (channels, T, H, W).
PAPER_TABLE_1 = {
    "conv1": (64, 16, 112, 112),
    "pool1": (64, 8, 56, 56),
    "res2": (256, 8, 56, 56),
    "pool2": (256, 4, 56, 56),
    "res3": (512, 4, 28, 28),
    "res4": (1024, 4, 14, 14),
    "res5": (2048, 4, 7, 7),
}


@pytest.mark.parametrize("builder", [c2d, i3d])
def test_feature_shapes_of_resnet50_are_the_papers_table_1(builder):
    model, params, _ = builder(layout="resnet50", width=4, nl_blocks=5)  # channels: the paper's / 16
    shapes = feature_shapes(model, params, (32, 224, 224))
    assert shapes == {k: (c // 16, *size) for k, (c, *size) in PAPER_TABLE_1.items()}


def test_feature_shapes_are_the_shapes_a_forward_pass_produces(rng):
    model, params, state = c2d(nl_blocks=1, dtype=np.float64)
    x = _clip(rng, (1, 3, 16, 16, 16))
    shapes = feature_shapes(model, params, (16, 16, 16))
    seen, n_pool = {}, 0
    for k, spec in enumerate(model[:-1]):  # the head pools the map away
        out, _, _ = model_forward(x, params, state, model[: k + 1], train=False)
        n_pool += spec["op"] == "max_pool"
        name = {"stem": "conv1", "max_pool": f"pool{n_pool}"}.get(spec["op"]) or spec["name"].split(".")[0]
        seen[name] = out.shape[1:]
    assert shapes == seen and shapes["res3"] == (16, 8, 2, 2)  # notebook 5's block input
    with pytest.raises(ValueError, match="clip must be"):
        feature_shapes(model, params, (16, 16))


def test_nonlocal_placement_matches_the_paper_for_resnet50_depths():
    depth = (3, 4, 6, 3)
    assert nonlocal_positions(depth, 0) == []
    assert nonlocal_positions(depth, 1) == ["res4.4"]  # right before the last block of res4
    assert nonlocal_positions(depth, 5) == ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"]
    assert nonlocal_positions(depth, 10) == [f"res3.{i}" for i in range(4)] + [f"res4.{i}" for i in range(6)]


def test_nonlocal_placement_scales_to_small_depths():
    assert nonlocal_positions((1, 1, 1), 1) == ["res3.0"]
    assert nonlocal_positions((1, 1, 1), 5) == ["res3.0", "res4.0"]
    assert nonlocal_positions((1, 2, 2), 1) == ["res4.0"]
    assert nonlocal_positions((1, 2, 2), 5) == ["res3.1", "res4.1"]
    assert len(nonlocal_positions((1, 2, 2), 10)) == 4
    with pytest.raises(ValueError, match="nl_blocks"):
        nonlocal_positions((1, 1, 1), 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"arch": "r3d"}, "arch"),
        ({"depth": (1, 1)}, "depth"),
        ({"width": 0}, "width"),
        ({"arch": "i3d", "inflate": "3x1x1", "block": "basic"}, "3x1x1"),
        ({"nl_space_time": "both"}, "nl_space_time"),
        ({"nl_mode": "cosine"}, "nl_mode"),
        ({"layout": "resnet101"}, "layout"),
    ],
)
def test_bad_builder_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)


def test_forward_rejects_wrong_input_shape():
    m, p, s = c2d(width=2)
    with pytest.raises(ValueError, match="x"):
        model_forward(np.zeros((2, 3, 16, 16), np.float32), p, s, m, train=False)
    with pytest.raises(ValueError, match="channels"):
        model_forward(np.zeros((2, 1, 8, 16, 16), np.float32), p, s, m, train=False)


# ----------------------------------------------------------------------------- forward behaviour


def test_train_mode_returns_new_running_stats_and_leaves_state_untouched(rng):
    m, p, s = c2d(width=2)
    before = {k: v.copy() for k, v in s.items()}
    _, _, new = model_forward(_clip(rng, dtype=np.float32), p, s, m, train=True)
    assert set(new) == set(s)
    assert all(np.array_equal(s[k], before[k]) for k in s)
    assert not np.allclose(new["bn1.running_mean"], s["bn1.running_mean"])
    _, _, same = model_forward(_clip(rng, dtype=np.float32), p, s, m, train=False)
    assert all(same[k] is s[k] for k in s)


def test_c2d_features_ignore_frames_outside_their_temporal_receptive_field(rng):
    # Oracle: hand-computed receptive fields. pool1 (3 frames, stride 1, pad 1) then pool2
    # (3 frames, stride 2, pad 1): feature time t sees input frames 2t - 2 .. 2t + 2, so
    # changing frame 0 changes t = 0, 1 only. Eval-mode BN: no coupling through the batch.
    m, p, s = c2d(width=4, dtype=np.float64)
    _randomise_bn(p, s, rng)
    x = _clip(rng, (1, 3, 16, 16, 16))
    y = x.copy()
    y[:, :, 0] += 1.0
    fx, _, _ = model_forward(x, p, s, m[:-1], train=False)  # the model without its head: features
    fy, _, _ = model_forward(y, p, s, m[:-1], train=False)
    assert fx.shape[2] == 8
    assert not np.allclose(fx[:, :, :2], fy[:, :, :2])
    np.testing.assert_array_equal(fx[:, :, 2:], fy[:, :, 2:])


# ----------------------------------------------------------------------------- inflation


@pytest.mark.parametrize("nl_blocks", [0, 1])
def test_inflated_i3d_gives_exactly_the_c2d_output_on_a_static_clip(rng, nl_blocks):
    kw = dict(width=4, dtype=np.float64, nl_blocks=nl_blocks, temporal_padding="replicate")
    m2, p2, s2 = c2d(**kw, rng=1)
    m3, p3, s3 = i3d(**kw, rng=2)
    _randomise_bn(p2, s2, rng)
    p3 = inflate_2d_to_3d(p2, p3)
    frame = rng.standard_normal((2, 3, 1, 16, 16))
    static = np.repeat(frame, 8, axis=2)
    for train in (False, True):
        l2, _, _ = model_forward(static, p2, s2, m2, train=train)
        l3, _, _ = model_forward(static, p3, s2, m3, train=train)
        np.testing.assert_allclose(l3, l2, rtol=1e-12, atol=1e-12)


def test_inflation_repeats_over_time_and_divides_by_t(rng):
    w = rng.standard_normal((4, 3, 1, 3, 3))
    out = inflate_2d_to_3d({"a.w": w, "b": np.ones(2)}, {"a.w": np.zeros((4, 3, 5, 3, 3)), "b": np.zeros(2)})
    for t in range(5):
        np.testing.assert_allclose(out["a.w"][:, :, t], w[:, :, 0] / 5)
    np.testing.assert_array_equal(out["b"], np.ones(2))
    w2d = rng.standard_normal((4, 3, 3, 3))  # a genuinely 2-D kernel (image ResNet)
    out = inflate_2d_to_3d({"a.w": w2d}, {"a.w": np.zeros((4, 3, 3, 3, 3))})
    np.testing.assert_allclose(out["a.w"].sum(axis=2), w2d)


def test_zero_temporal_padding_changes_the_border_frames_of_a_static_clip(rng):
    m2, p2, s2 = c2d(width=4, dtype=np.float64)
    m3, p3, _ = i3d(width=4, dtype=np.float64)
    p3 = inflate_2d_to_3d(p2, p3)
    static = np.repeat(rng.standard_normal((2, 3, 1, 16, 16)), 8, axis=2)
    l2, _, _ = model_forward(static, p2, s2, m2, train=False)
    l3, _, _ = model_forward(static, p3, s2, m3, train=False)
    assert not np.allclose(l2, l3)


def test_inflation_rejects_mismatched_keys_or_shapes():
    with pytest.raises(ValueError, match="same keys"):
        inflate_2d_to_3d({"a.w": np.zeros((1, 1, 1, 3, 3))}, {"b.w": np.zeros((1, 1, 3, 3, 3))})
    with pytest.raises(ValueError, match="a.w"):
        inflate_2d_to_3d({"a.w": np.zeros((1, 1, 1, 3, 3))}, {"a.w": np.zeros((2, 1, 3, 3, 3))})


# ----------------------------------------------------------------------------- gradients


def _gradcheck_model(model, params, state, x, seed=0):
    def forward(x, p):
        logits, cache, _ = model_forward(x, p, state, model, train=True, rng=7)
        return logits, cache

    def backward(dout, cache):
        return model_backward(dout, cache, return_dx=True)

    return gradcheck(forward, backward, x, params, mode="random", n_directions=2, seed=seed, rtol=1e-6)


@pytest.mark.parametrize("arch", ["c2d", "i3d"])
def test_whole_network_passes_gradcheck(rng, arch):
    m, p, s = build_model(arch, width=2, dtype=np.float64, dropout=0.3)
    _randomise_bn(p, s, rng)
    report = _gradcheck_model(m, p, s, _clip(rng, (2, 3, 8, 8, 8)))
    assert report.passed, str(report)


@pytest.mark.parametrize(
    "arch, kw",
    [
        ("c2d", dict(nl_blocks=5, nl_mode="embedded_gaussian", nl_subsample=True)),
        ("i3d", dict(nl_blocks=1, nl_mode="dot_product", nl_space_time="space")),
        ("c2d", dict(nl_blocks=1, nl_mode="concatenation", nl_space_time="time")),
    ],
)
def test_whole_network_with_nonlocal_blocks_passes_gradcheck(rng, arch, kw):
    m, p, s = build_model(arch, width=4, dtype=np.float64, **kw)
    assert count_nonlocal(m) >= 1
    _randomise_bn(p, s, rng)  # non-zero gamma after W_z, so the block contributes
    report = _gradcheck_model(m, p, s, _clip(rng, (2, 3, 8, 16, 16)))
    assert report.passed, str(report)


def test_model_runs_on_the_requested_backend(xp, rng):
    m, p, s = c2d(width=2, xp=xp)
    x = xp.asarray(_clip(rng, (2, 3, 8, 8, 8), np.float32))
    logits, cache, new = model_forward(x, p, s, m, train=True)
    grads = model_backward(logits, cache)
    assert isinstance(logits, xp.ndarray) and isinstance(grads["conv1.w"], xp.ndarray)
    assert np.isfinite(to_numpy(logits)).all()


# ----------------------------------------------------------------------------- the model is data


def test_inflation_table_is_the_official_use_temp_convs_lists():
    # facebookresearch/video-nonlocal-net, resnet_video.py: use_temp_convs_2 .. use_temp_convs_5
    assert inflation_table((3, 4, 6, 3)) == {
        "res2": [1, 0, 1],
        "res3": [1, 0, 1, 0],
        "res4": [1, 0, 1, 0, 1, 0],
        "res5": [0, 1, 0],
    }
    assert inflation_table((1, 1, 1)) == {"res2": [1], "res3": [1], "res4": [1]}


def test_every_layer_of_a_model_has_a_forward_and_backward_in_the_table():
    assert set(MODEL_LAYERS) == {"stem", "max_pool", "block", "nonlocal", "head"}
    assert all(callable(f) and callable(b) for f, b in MODEL_LAYERS.values())
    m, _, _ = i3d(width=2, nl_blocks=1)
    assert {spec["op"] for spec in m} == set(MODEL_LAYERS)


def test_unknown_layer_kind_is_an_error_not_skipped(rng):
    m, p, s = c2d(width=2)
    x = _clip(rng, (2, 3, 8, 8, 8), np.float32)
    bad = m[:2] + [{"op": "avg_pool", "kernel_size": (1, 2, 2)}] + m[2:]
    with pytest.raises(ValueError, match="unknown layer kind 'avg_pool'"):
        model_forward(x, p, s, bad, train=False)
    with pytest.raises(ValueError, match="unknown layer kind 'avg_pool'"):
        temporal_receptive_field(bad, p)
    _, cache, _ = model_forward(x, p, s, m, train=False)
    cache[1] = ({"op": "avg_pool"}, cache[1][1])
    with pytest.raises(ValueError, match="unknown layer kind"):
        model_backward(np.ones((2, 2), np.float32), cache)
    bad_block = [dict(spec, block="wide") if spec["op"] == "block" else spec for spec in m]
    with pytest.raises(ValueError, match="unknown residual block 'wide'"):
        model_forward(x, p, s, bad_block, train=False)


def test_forward_checks_the_clip_against_the_parameters_once(rng, fake_cupy_array):
    m, p, s = c2d(width=2)
    x = _clip(rng, (2, 3, 8, 8, 8))
    with pytest.raises(TypeError, match="dtype"):  # float64 clip, float32 model
        model_forward(x, p, s, m, train=False)
    with pytest.raises(TypeError, match="mixed array backends"):
        model_forward(fake_cupy_array(x.astype(np.float32)), p, s, m, train=False)
    with pytest.raises(TypeError, match="train"):
        model_forward(x.astype(np.float32), p, s, m, train="yes")


# ----------------------------------------------------------------------------- non-local init and window


def test_models_initialise_the_blocks_by_fan_in_and_keep_the_official_init_as_an_option():
    _, fan_in, _ = build_model("c2d", width=32, nl_blocks=1, nl_mode="concatenation", rng=0)
    _, official, _ = build_model(
        "c2d", width=32, nl_blocks=1, nl_mode="concatenation", nl_init="official", rng=0
    )
    c, ci = 64, 32  # the block after res3: 2 * width channels, half of them inner
    for name, fan in (("theta.w", c), ("phi.w", c), ("g.w", c), ("w_z.w", ci), ("concat.w", 2 * ci)):
        w = fan_in[f"res3.0.nl.{name}"]
        assert abs(float(w.std()) * np.sqrt(fan) - 1) < 0.15, name  # LeCun normal: std 1 / sqrt(fan_in)
        assert abs(float(official[f"res3.0.nl.{name}"].std()) / 0.01 - 1) < 0.15, name
    assert not fan_in["res3.0.nl.bn.gamma"].any()  # either way the fresh block is the identity
    with pytest.raises(ValueError, match="nl_init"):
        build_model("c2d", nl_blocks=1, nl_init="xavier")


def test_a_window_of_zero_frames_is_the_space_only_block():
    kw = dict(width=4, nl_blocks=1, dtype=np.float64, rng=3)
    m_win, p, s = build_model("c2d", nl_window=(0, None, None), **kw)
    m_space, p_space, _ = build_model("c2d", nl_space_time="space", **kw)
    assert [spec.get("window") for spec in m_win if spec["op"] == "nonlocal"] == [[0, None, None]]
    for k in p:
        if k.endswith("nl.bn.gamma"):
            p[k] = p[k] + 1.0  # open the block's branch
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 16, 16))
    windowed, _, _ = model_forward(x, p, s, m_win, train=True)
    space_only, _, _ = model_forward(x, p, s, m_space, train=True)
    full, _, _ = model_forward(x, p, s, build_model("c2d", **kw)[0], train=True)
    np.testing.assert_allclose(windowed, space_only, rtol=1e-10, atol=1e-12)
    assert np.abs(windowed - full).max() > 1e-6  # the window changes the output
    wide, _, _ = model_forward(x, p, s, build_model("c2d", nl_window=(7, None, None), **kw)[0], train=True)
    np.testing.assert_allclose(wide, full, rtol=1e-10, atol=1e-12)  # +-7 of 8 frames: every key
    with pytest.raises((ValueError, TypeError), match="window"):
        build_model("c2d", nl_blocks=1, nl_window=(-1, None, None))
