"""``train_step``: one pure step whose update follows the true gradient of the batch loss."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np

from nlref.data.synthetic_video import make_clips
from nlref.nn.layers import softmax_cross_entropy
from nlref.nn.train import build_from_config, get_preset, optimizer_init, step_rng, train_step
from nlref.nn.video import model_forward

ROOT = Path(__file__).resolve().parent.parent
# float64, no dropout, plain SGD without momentum or weight decay: new_params = params - lr * grad
CFG = get_preset("quick").replace(
    width=2, size=16, nl_blocks=1, dtype="float64", optimizer="sgd", momentum=0.0, weight_decay=0.0, lr_step=0
)


def _batch():
    x, y = make_clips(4, seed=0, size=CFG.size, dtype=np.float64)
    return x, y


def _loss(model, params, state, x, y):
    logits, _, _ = model_forward(x, params, state, model, train=True)
    return float(softmax_cross_entropy(logits, y)[0])


def test_train_step_leaves_its_inputs_untouched_and_reports_the_loss_before_the_update():
    model, params, state = build_from_config(CFG)
    opt_state = optimizer_init(CFG, params)
    copies = [{k: np.copy(v) for k, v in d.items()} for d in (params, state, opt_state)]
    x, y = _batch()
    loss, correct, new_params, new_state, new_opt = train_step(
        model, params, state, opt_state, x, y, cfg=CFG, lr=0.1, rng=step_rng(0, 102, 0)
    )
    for before, d in zip(copies, (params, state, opt_state)):
        for k in before:
            np.testing.assert_array_equal(d[k], before[k], err_msg=k)
    assert loss == _loss(model, params, state, x, y)
    logits, _, _ = model_forward(x, params, state, model, train=True)
    assert correct == int((logits.argmax(axis=1) == y).sum())
    assert int(new_opt["step"]) == 1
    assert not np.array_equal(new_state["bn1.running_mean"], state["bn1.running_mean"])


def test_train_step_moves_the_parameters_along_the_finite_difference_gradient():
    model, params, state = build_from_config(CFG)
    x, y = _batch()
    lr = 1e-3
    _, _, new_params, _, _ = train_step(
        model, params, state, optimizer_init(CFG, params), x, y, cfg=CFG, lr=lr, rng=step_rng(0, 102, 0)
    )
    rng = np.random.default_rng(0)
    for name in ("fc.w", "conv1.w", "res3.0.nl.theta.w", "res2.0.bn1.gamma"):
        grad = (params[name] - new_params[name]) / lr
        d = rng.standard_normal(params[name].shape)
        eps = 1e-5
        plus = _loss(model, {**params, name: params[name] + eps * d}, state, x, y)
        minus = _loss(model, {**params, name: params[name] - eps * d}, state, x, y)
        numeric, analytic = (plus - minus) / (2 * eps), float((grad * d).sum())
        rel = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12)
        assert rel < 1e-6, f"{name}: finite differences {numeric:.6e}, train_step {analytic:.6e}"


def test_public_names_stay_importable_from_nlref_nn_train():
    import nlref.nn.train as train_package

    for name in (
        "TrainConfig",
        "PRESETS",
        "get_preset",
        "load_config",
        "save_checkpoint",
        "load_checkpoint",
        "random_crop_flip",
        "step_rng",
        "build_from_config",
        "evaluate",
        "train_summary",
        "train_step",
    ):
        assert name in train_package.__all__, name
        obj = getattr(train_package, name)
        assert not callable(obj) or obj.__module__.startswith("nlref.nn.train."), name
    assert callable(train_package.train)


def test_the_library_never_imports_the_face_or_benchmarks():
    for path in sorted((ROOT / "nlref" / "nn").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                forbidden = ("..cli", "nlref.cli", "benchmarks")
                assert not target.startswith(forbidden), f"{path.name} imports {target}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith(("nlref.cli", "benchmarks")) for a in node.names), path.name


def test_building_the_command_line_runs_nothing_from_benchmarks():
    code = (
        "import sys; from nlref.cli import build_parser; build_parser(); "
        "print([m for m, mod in list(sys.modules.items()) "
        "if 'benchmarks' in str(getattr(mod, '__file__', ''))])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
