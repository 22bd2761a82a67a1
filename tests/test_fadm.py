"""FADM (Lin et al.): the entropy guidance against finite differences, the VP-SDE kernel, the
meta-objective, a deterministic sampler returning valid rows of the requested labels, the fairness
effect of λ_z on a biased dataset, and clear errors."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from fedfair import fadm, metrics, model
from fedfair.data import load_dataset
from fedfair.data.schema import Binary, Categorical, Numeric, Schema
from fedfair.errors import FedFairError
from fedfair.fadm.generator import requested_labels
from fedfair.fadm.networks import classifier
from fedfair.fadm.sampling import binary_entropy, entropy_gradient
from fedfair.fadm.sde import VPSDE
from fedfair.fadm.training import Batch, meta_objective, score_loss

MIXED = Schema(
    "mixed",
    sensitive=Binary("g", one=(1,), zero=(0,), role="sensitive"),
    label=Binary("y", one=(1,), zero=(0,), role="label"),
    features=(Numeric("age", 0, 100), Categorical("colour", ("red", "green", "blue")), Binary("flag", one=(1,))),
)


def _mixed(n=300, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    frame = pd.DataFrame({
        "age": rng.uniform(0, 100, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "flag": rng.integers(0, 2, n),
        "g": g,
        "y": (rng.random(n) < 0.3 + 0.4 * g).astype(int),
    })
    return MIXED.encode(frame)


def test_entropy_gradient_matches_finite_differences():
    torch.manual_seed(0)
    net = classifier(3, hidden=16, layers=2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.full((5,), 0.3, dtype=torch.float64)
    grad = entropy_gradient(net, x, t)
    h, fd = 1e-6, torch.zeros_like(x)
    for i in range(5):
        for j in range(3):
            e = torch.zeros_like(x)
            e[i, j] = h
            with torch.no_grad():
                up = binary_entropy(net(x + e, t)[:, 0])[i]
                down = binary_entropy(net(x - e, t)[:, 0])[i]
            fd[i, j] = (up - down) / (2 * h)
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_binary_entropy_is_stable_and_exact():
    logit = torch.tensor([-800.0, -2.0, 0.0, 3.0, 800.0], dtype=torch.float64)
    p = torch.sigmoid(logit[1:4])
    exact = -(p * p.log() + (1 - p) * (1 - p).log())
    h = binary_entropy(logit)
    assert torch.isfinite(h).all() and h[0] == 0 and h[-1] == 0
    assert torch.allclose(h[1:4], exact)
    assert torch.isclose(h[2], torch.log(torch.tensor(2.0, dtype=torch.float64)))


def test_vpsde_kernel_preserves_variance_and_reaches_noise():
    sde = VPSDE()
    t = torch.tensor([1e-3, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(sde.mean_coef(t) ** 2 + sde.std(t) ** 2, torch.ones(3, dtype=torch.float64))
    assert sde.mean_coef(t)[-1] < 7e-3 and sde.std(t)[0] < 0.02
    # m(t) = exp(-1/2 ∫ beta): its log-derivative is -beta/2
    h = 1e-6
    dlog = (sde.mean_coef(t + h).log() - sde.mean_coef(t - h).log()) / (2 * h)
    assert torch.allclose(dlog, -0.5 * sde.beta(t), rtol=1e-6)


def test_meta_objective_is_inner_loss_without_meta_weight_or_held_out_domain():
    torch.manual_seed(0)
    net = fadm.networks.score_net(3, hidden=8, layers=1).double()
    gen = torch.Generator().manual_seed(0)
    b = Batch(torch.randn(6, 3, generator=gen, dtype=torch.float64), torch.zeros(6), torch.zeros(6),
              torch.full((6,), 0.5, dtype=torch.float64), torch.randn(6, 3, generator=gen, dtype=torch.float64))
    sde = VPSDE()
    loss = lambda p, batch: score_loss(net, p, sde, batch)  # noqa: E731
    inner = loss(dict(net.named_parameters()), b)
    assert torch.isclose(meta_objective(net, loss, b, None, 0.1, 1.0), inner)
    assert torch.isclose(meta_objective(net, loss, b, b, 0.1, 0.0), inner)
    # with beta > 0 the held-out loss is taken at the adapted parameters: one SGD step lowers it on B_in = B_out
    both = meta_objective(net, loss, b, b, 0.01, 1.0)
    assert inner < both < 2 * inner


@pytest.fixture(scope="module")
def mixed_generator():
    table = _mixed()
    cfg = fadm.FADMConfig(iterations=60, hidden=32, layers=2, progress=False, seed=3)
    return table, fadm.train(table, fadm.Layout.from_schema(MIXED), cfg)


@pytest.mark.slow
def test_sampler_is_deterministic_and_returns_valid_rows_with_requested_labels(mixed_generator):
    table, gen = mixed_generator
    labels = np.array([1, -1, 1, 1, -1, -1, 1, -1] * 5)
    a = gen.generate(labels, seed=7, lambda_y=2.0, lambda_z=1.0, steps=30)
    b = gen.generate(labels, seed=7, lambda_y=2.0, lambda_z=1.0, steps=30)
    c = gen.generate(labels, seed=8, lambda_y=2.0, lambda_z=1.0, steps=30)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.s, b.s) and not np.array_equal(a.x, c.x)
    assert np.array_equal(a.y, labels) and a.feature_names == table.feature_names
    assert ((a.x[:, 0] >= 0) & (a.x[:, 0] <= 1)).all()
    assert np.array_equal(a.x[:, 1:4].sum(axis=1), np.ones(len(labels)))  # one colour each
    assert np.isin(a.x[:, 1:5], (0.0, 1.0)).all()


def test_plain_ddpm_takes_the_label_classifiers_labels(mixed_generator):
    _, trained = mixed_generator
    gen = copy.deepcopy(trained)
    last = gen.label.body[-1]
    with torch.no_grad():  # a label classifier that says y = -1 everywhere
        last.weight.zero_()
        last.bias.fill_(-50.0)
    asked = np.ones(20, dtype=int)
    assert np.array_equal(gen.generate(asked, seed=1, lambda_y=0.0, lambda_z=0.0, steps=10).y, -asked)
    assert np.array_equal(gen.generate(asked, seed=1, lambda_y=1.0, lambda_z=0.0, steps=10).y, asked)


@pytest.mark.slow
def test_entropy_guidance_hides_the_sensitive_attribute_on_biased_data():
    data = load_dataset("synthetic", rows=2000, seed=0, shift=1.5).table
    cfg = fadm.FADMConfig(iterations=400, hidden=64, layers=2, progress=False, seed=0)
    gen = fadm.train(data, fadm.Layout.from_schema(load_dataset("synthetic", rows=10).schema), cfg)
    labels = requested_labels(data, 1500, "match")
    fresh = LogisticRegression(max_iter=1000).fit(data.x, data.s)  # a sensitive classifier, real rows

    def leak(lambda_z):
        out = gen.generate(labels, seed=1, lambda_y=2.0, lambda_z=lambda_z, steps=100)
        p = fresh.predict_proba(out.x)[:, 1]
        theta = model.fit(out)
        spd = metrics.evaluate(data.y, model.predict(theta, data), data.s)["abs_spd"]
        return np.maximum(p, 1 - p).mean(), spd  # the classifier's expected accuracy on the samples

    (acc0, spd0), (acc1, spd1) = leak(0.0), leak(10.0)
    assert acc1 < acc0 - 0.01
    assert spd1 < spd0


def test_requested_labels_match_or_balance_the_classes():
    table = _mixed()
    match = requested_labels(table, 200, "match")
    assert len(match) == 200 and abs((match == 1).mean() - (table.y == 1).mean()) <= 0.005
    assert (requested_labels(table, 11, "balanced") == 1).sum() in (5, 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"lambda_z": -1.0}, "lambda_z must be a finite number >= 0"),
        ({"labels": "odd"}, "labels must be one of match, balanced"),
        ({"beta_max": 0.05}, "beta_max must exceed beta_min"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(FedFairError, match=message):
        fadm.FADMConfig(**kwargs)


def test_domains_come_from_a_categorical_or_binary_feature():
    table, layout = _mixed(), fadm.Layout.from_schema(MIXED)
    colours = layout.domains(table.x, "colour")
    assert set(np.unique(colours)) <= {0, 1, 2} and np.array_equal(colours, table.x[:, 1:4].argmax(axis=1))
    with pytest.raises(FedFairError, match="domain column 'age' is numeric"):
        layout.domains(table.x, "age")
    with pytest.raises(FedFairError, match="no feature column 'race'"):
        layout.domains(table.x, "race")
    with pytest.raises(FedFairError, match="labels to generate must be"):
        fadm.train(table, layout, fadm.FADMConfig(iterations=1, hidden=4, layers=1, progress=False)).generate(
            np.array([0, 1]), 0, 1.0, 1.0
        )
