"""Critic normalizations checked against brute-force operator norms on small sizes."""

import copy
import functools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancli import api
from gancli.errors import ConfigError
from gancli.nn import (
    CRITIC_NORMS,
    ExactSpectralNorm,
    SparsityAwareNorm,
    apply_critic_norm,
    count_critic_updates,
    exact_conv_sigma,
    mark_critic_updated,
    san_compensation,
    sparsity_aware_sigma,
    sparsity_aware_sigma_dense,
)
from gancli.train import checkpoint as ckpt

# (out, in, kh, kw, H, W): odd and even kernels, square and non-square inputs.
SHAPES = [(3, 2, 3, 3, 5, 7), (2, 3, 2, 2, 4, 6), (2, 2, 3, 1, 6, 6)]


def circular_conv(x, weight):
    """Stride-1 circular convolution whose output has the input's size, for any kernel size."""
    kh, kw = weight.shape[-2:]
    return F.conv2d(F.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="circular"), weight)


def dense_matrix(op, in_shape):
    """The matrix of a linear map on tensors of in_shape, built from its action on the basis vectors."""
    n = torch.Size(in_shape).numel()
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    return op(basis).reshape(n, -1).T


def brute_operator_norm(weight, size):
    return torch.linalg.svdvals(dense_matrix(lambda x: circular_conv(x, weight), (weight.shape[1], *size)))[0]


def brute_siso_norms(weight, size):
    """Top singular value of each single-input-single-output circulant operator w_ij, as an out × in table."""
    return torch.tensor(
        [[brute_operator_norm(w_ij[None, None], size).item() for w_ij in row] for row in weight],
        dtype=torch.float64,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_exact_conv_sigma_is_the_circular_conv_operator_norm(shape):
    torch.manual_seed(0)
    weight = torch.randn(shape[:4], dtype=torch.float64)
    size = shape[4:]
    torch.testing.assert_close(exact_conv_sigma(weight, size), brute_operator_norm(weight, size), rtol=1e-5, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_sparsity_aware_sigma_is_eq6_norm(shape):
    torch.manual_seed(1)
    weight = torch.randn(shape[:4], dtype=torch.float64)
    size = shape[4:]
    siso = brute_siso_norms(weight, size)
    sigma = sparsity_aware_sigma(weight, size)
    torch.testing.assert_close(sigma, siso.max(), rtol=1e-5, atol=0)

    # Eq. 6 sup: the top right singular vector of the largest w_ij, placed in input channel j,
    # is a 1-sparse input of channel norm 1 whose output channel i has norm σ ...
    i, j = divmod(int(siso.argmax()), weight.shape[1])
    _, _, vh = torch.linalg.svd(dense_matrix(lambda x: circular_conv(x, weight[i : i + 1, j : j + 1]), (1, *size)))
    x = torch.zeros(1, weight.shape[1], *size, dtype=torch.float64)
    x[0, j] = vh[0].reshape(size)
    channel_norms = circular_conv(x, weight).flatten(2).norm(dim=2)
    torch.testing.assert_close(channel_norms.max(), sigma, rtol=1e-5, atol=0)
    # ... and no random 1-sparse input of channel norm 1 exceeds it.
    x = torch.zeros(256, weight.shape[1], *size, dtype=torch.float64)
    x[torch.arange(256), torch.randint(weight.shape[1], (256,))] = torch.randn(256, *size, dtype=torch.float64)
    x = x / x.flatten(1).norm(dim=1)[:, None, None, None]
    assert circular_conv(x, weight).flatten(2).norm(dim=2).max() <= sigma * (1 + 1e-9)


def test_sn_underestimates_and_san_is_below_the_exact_norm():
    torch.manual_seed(2)
    weight = torch.randn(8, 8, 3, 3, dtype=torch.float64)
    san, exact = sparsity_aware_sigma(weight, (8, 8)), exact_conv_sigma(weight, (8, 8))
    assert torch.linalg.svdvals(weight.reshape(8, -1))[0] < exact
    assert san < exact


@pytest.mark.parametrize("shape", [(2, 2, 3, 3, 2, 2), (2, 3, 3, 3, 1, 2), (1, 2, 5, 3, 2, 3)])
def test_kernel_larger_than_input_wraps_around_like_circular_padding(shape):
    torch.manual_seed(3)
    weight = torch.randn(shape[:4], dtype=torch.float64)
    size = shape[4:]
    brute = brute_operator_norm(weight, size)
    torch.testing.assert_close(exact_conv_sigma(weight, size), brute, rtol=1e-5, atol=0)
    torch.testing.assert_close(sparsity_aware_sigma(weight, size), brute_siso_norms(weight, size).max(),
                               rtol=1e-5, atol=0)


def test_ratio_searches_a_random_subset_of_kernels():
    torch.manual_seed(3)
    weight = torch.randn(6, 5, 3, 3, dtype=torch.float64)
    full = sparsity_aware_sigma(weight, (6, 6))
    subsets = [sparsity_aware_sigma(weight, (6, 6), 0.2, torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(s <= full for s in subsets)
    assert any(s < full for s in subsets)
    again = sparsity_aware_sigma(weight, (6, 6), 0.2, torch.Generator().manual_seed(7))
    assert torch.equal(again, subsets[7])
    with pytest.raises(ConfigError, match="ratio"):
        sparsity_aware_sigma(weight, (6, 6), 0.0)


def test_san_compensation_is_eq9():
    assert san_compensation(100, 1.0) == 1.0
    # H(4) / H(2) = (25/12) / (3/2)
    assert san_compensation(4, 0.5) == pytest.approx(25 / 18)
    # The paper: g ≈ 1.2 for r = 25% with 64² filters, and below 1.3 at 25% in general.
    assert 1.15 < san_compensation(64 * 64, 0.25) < 1.25
    assert san_compensation(64 * 64, 0.5) < san_compensation(64 * 64, 0.25)
    with pytest.raises(ConfigError, match="ratio"):
        san_compensation(10, 1.5)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(4, 6, 4, 2, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(6, 5, 1),
        )
        self.head = nn.Linear(5 * 4 * 4, 1)
        self.embed = nn.Embedding(3, 5 * 4 * 4)

    def forward(self, x, y=None):
        h = self.features(x).flatten(1)
        out = self.head(h)
        return out if y is None else out + (self.embed(y) * h).sum(1, keepdim=True)


def convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def input_sizes(model, x):
    """The spatial size of the input each conv sees."""
    sizes = {}

    def record(conv, args):
        sizes[conv] = tuple(args[0].shape[-2:])

    hooks = [c.register_forward_pre_hook(record) for c in convs(model)]
    model(x)
    for h in hooks:
        h.remove()
    return [sizes[c] for c in convs(model)]


def normalized(name, **options):
    """A reparam critic unless `mode` says otherwise (the project form has its own tests below)."""
    torch.manual_seed(4)
    return apply_critic_norm(Critic().double(), name, **{"mode": "reparam", **options})


def batch(n=2):
    return torch.randn(n, 3, 8, 8, dtype=torch.float64)


def test_san_makes_every_conv_unit_norm_with_circular_padding():
    critic = normalized("san")
    critic(batch())
    sizes = input_sizes(critic, batch())
    for conv, size in zip(convs(critic), sizes):
        assert isinstance(conv.parametrizations.weight[0], SparsityAwareNorm)
        assert conv.padding_mode == ("zeros" if conv.padding == (0, 0) else "circular")
        torch.testing.assert_close(sparsity_aware_sigma(conv.weight, size), torch.tensor(1.0, dtype=torch.float64))
    assert sizes == [(8, 8), (8, 8), (4, 4)]
    # Fully-connected layers use the spectral norm (SAN §3.1).
    assert hasattr(critic.head.parametrizations.weight[0], "_u")
    assert hasattr(critic.embed.parametrizations.weight[0], "_u")


def test_san_gain_divides_the_weight():
    critic = normalized("san", gain=1.3)
    critic(batch())
    conv = convs(critic)[0]
    sigma = sparsity_aware_sigma(conv.weight, (8, 8))
    torch.testing.assert_close(sigma, torch.tensor(1 / 1.3, dtype=torch.float64))
    assert normalized("san", ratio=0.25).features[2].parametrizations.weight[0].gain == san_compensation(24, 0.25)


def test_san_recomputes_sigma_every_k_training_forwards_only():
    critic = normalized("san", every=3)
    conv = critic.features[0]
    norm, original = conv.parametrizations.weight[0], conv.parametrizations.weight.original
    seen = []
    for _ in range(5):
        critic(batch())
        seen.append(norm.sigma.item())
        with torch.no_grad():
            original.mul_(2)
    assert seen[0] == seen[1] == seen[2] != seen[3] == seen[4]
    assert seen[3] == pytest.approx(8 * seen[0])
    assert norm.step.item() == 5
    critic.eval()
    critic(batch())
    assert norm.sigma.item() == seen[4] and norm.step.item() == 5


def test_eval_before_any_training_forward_computes_sigma_once():
    critic = normalized("san").eval()
    critic(batch())
    conv = critic.features[0]
    torch.testing.assert_close(sparsity_aware_sigma(conv.weight, (8, 8)), torch.tensor(1.0, dtype=torch.float64))
    assert conv.parametrizations.weight[0].step.item() == 0


def test_counted_updates_recompute_sigma_once_per_critic_update():
    from gancli.nn import count_critic_updates, mark_critic_updated

    critic = normalized("san", every=2)
    count_critic_updates(critic)
    norm = critic.features[0].parametrizations.weight[0]
    computed = []
    original_sigma_of = norm.sigma_of
    norm.sigma_of = lambda *a: computed.append(1) or original_sigma_of(*a)
    for _ in range(4):  # one critic update, three forwards each (real, fake, generator step)
        for _ in range(3):
            critic(batch())
        update(critic)
        mark_critic_updated(critic)
    critic(batch())
    assert len(computed) == 3  # first forward, then after updates 1 and 3 (every=2)
    assert norm.step.item() == 4


def update(model):
    """A stand-in for an optimizer step: change every weight in place."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)


def test_state_dict_round_trip_restores_sigma_and_step_exactly():
    critic = normalized("san", ratio=0.5, every=2)
    critic(batch())
    state = critic.state_dict()
    assert any(k.endswith("weight.0.sigma") for k in state) and any(k.endswith("weight.0.step") for k in state)

    torch.manual_seed(5)
    restored = apply_critic_norm(Critic().double(), "san", ratio=0.5, every=2, mode="reparam")
    restored.load_state_dict(state)
    x = batch()
    for i in range(3):
        # Forward 2 of every=2 reuses the loaded σ; forward 3 redraws the kernel subset (the trainer restores the RNG).
        torch.manual_seed(i)
        expected = critic(x)
        torch.manual_seed(i)
        assert torch.equal(restored(x), expected)
        update(critic), update(restored)
    for a, b in zip(convs(critic), convs(restored)):
        assert torch.equal(a.parametrizations.weight[0].sigma, b.parametrizations.weight[0].sigma)
        assert a.parametrizations.weight[0].step.item() == b.parametrizations.weight[0].step.item() == 4
    assert torch.equal(restored.eval()(x), critic.eval()(x))


def test_sn_normalizes_the_reshaped_matrix():
    critic = normalized("sn", n_power_iterations=30)
    critic(batch())
    for conv in convs(critic):
        top = torch.linalg.svdvals(conv.weight.reshape(conv.out_channels, -1))[0]
        torch.testing.assert_close(top, torch.tensor(1.0, dtype=torch.float64), rtol=1e-3, atol=0)


def test_sn_exact_makes_every_conv_operator_norm_one():
    critic = normalized("sn-exact")
    critic(batch())
    for conv, size in zip(convs(critic), input_sizes(critic, batch())):
        assert isinstance(conv.parametrizations.weight[0], ExactSpectralNorm)
        torch.testing.assert_close(exact_conv_sigma(conv.weight, size), torch.tensor(1.0, dtype=torch.float64))
    # The first layer is a stride-1 circular conv: its brute-force norm is exactly 1.
    first = critic.features[0]
    torch.testing.assert_close(
        brute_operator_norm(first.weight.detach(), (8, 8)), torch.tensor(1.0, dtype=torch.float64)
    )


def test_wn_and_none_keep_the_function():
    torch.manual_seed(4)
    plain = Critic().double()
    x = batch()
    expected = plain(x)
    assert apply_critic_norm(plain, "none") is plain
    weighted = apply_critic_norm(plain, "wn")
    torch.testing.assert_close(weighted(x), expected)
    assert {"original0", "original1"} <= set(dict(weighted.head.parametrizations.weight.named_parameters()))


@pytest.mark.parametrize("name", ["sn", "san", "sn-exact", "wn"])
def test_gradients_reach_the_original_weights(name):
    critic = normalized(name)
    critic(batch(), torch.tensor([0, 2])).sum().backward()
    for layer in [*convs(critic), critic.head, critic.embed]:
        for p in layer.parametrizations.weight.parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0


def test_conv_transpose_is_left_alone():
    model = apply_critic_norm(nn.Sequential(nn.ConvTranspose2d(2, 2, 3)), "san")
    assert not hasattr(model[0], "parametrizations") and not hasattr(model[0], "weight_projection")


def test_unknown_name_and_bad_options_are_config_errors():
    with pytest.raises(ConfigError) as error:
        apply_critic_norm(Critic(), "spectral")
    assert all(name in str(error.value) for name in CRITIC_NORMS)
    for options in [{"ratio": 0}, {"ratio": 1.5}, {"every": 0}, {"gain": 0}, {"gain": -1.0}, {"mode": "inplace"}]:
        with pytest.raises(ConfigError):
            apply_critic_norm(Critic(), "san", **options)


@pytest.mark.parametrize("mode", ["project", "reparam"])
@pytest.mark.parametrize("name", ["san", "sn-exact"])
@pytest.mark.parametrize("layout", [{"padding": 2, "dilation": 2}, {"padding": 1, "groups": 2}])
def test_dilated_and_grouped_convs_are_normalized_as_the_layers_they_are(name, layout, mode):
    torch.manual_seed(6)
    conv = apply_critic_norm(nn.Conv2d(4, 6, 3, bias=False, **layout).double(), name, mode=mode)
    with torch.no_grad():
        matrix = dense_matrix(conv, (4, 6, 7))
    if name == "sn-exact":
        torch.testing.assert_close(torch.linalg.svdvals(matrix)[0], torch.tensor(1.0, dtype=torch.float64))
    else:
        # Eq. 6: the largest single-input-single-output block of the layer has norm 1.
        blocks = matrix.reshape(6, 42, 4, 42).permute(0, 2, 1, 3)
        torch.testing.assert_close(torch.linalg.svdvals(blocks)[..., 0].max(), torch.tensor(1.0, dtype=torch.float64))


# ---- σ pruned by the ℓ1 bound equals the dense computation (issue 20) ----------------------------------------


@functools.cache
def trained_conv_weights():
    """The conv weights of a tiny critic after a few Adam steps of a hinge loss (no longer i.i.d.)."""
    torch.manual_seed(7)
    critic = Critic()
    optimizer = torch.optim.Adam(critic.parameters(), 1e-2)
    real, fake = torch.randn(8, 3, 8, 8) + 1, torch.randn(8, 3, 8, 8)
    for _ in range(20):
        optimizer.zero_grad()
        loss = F.relu(1 - critic(real)).mean() + F.relu(1 + critic(fake)).mean()
        loss.backward()
        optimizer.step()
    return [conv.weight.detach() for conv in convs(critic)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "shape",
    [(64, 48, 3, 3, 16, 16), (16, 16, 3, 3, 32, 32), (8, 8, 1, 1, 4, 4), (24, 12, 4, 4, 8, 6),
     (6, 5, 3, 3, 2, 2), (4, 3, 5, 3, 2, 3), (3, 2, 7, 7, 3, 4)],  # the last three: kernels larger than the input
)
def test_pruned_sigma_equals_the_dense_sigma_on_random_kernels(shape, dtype):
    torch.manual_seed(8)
    weight = nn.init.kaiming_normal_(torch.empty(shape[:4], dtype=dtype))
    size = shape[4:]
    torch.testing.assert_close(sparsity_aware_sigma(weight, size), sparsity_aware_sigma_dense(weight, size),
                               rtol=1e-6, atol=0)
    # ratio < 1 draws the same kernels from the same generator state, so the two still agree.
    for seed in range(3):
        pruned = sparsity_aware_sigma(weight, size, 0.3, torch.Generator().manual_seed(seed))
        dense = sparsity_aware_sigma_dense(weight, size, 0.3, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(pruned, dense, rtol=1e-6, atol=0)
    torch.manual_seed(9)
    pruned = sparsity_aware_sigma(weight, size, 0.5)
    torch.manual_seed(9)
    torch.testing.assert_close(pruned, sparsity_aware_sigma_dense(weight, size, 0.5), rtol=1e-6, atol=0)


def test_pruned_sigma_equals_the_dense_sigma_on_trained_and_adversarial_kernels():
    for weight, size in zip(trained_conv_weights(), [(8, 8), (8, 8), (4, 4)]):
        torch.testing.assert_close(sparsity_aware_sigma(weight, size), sparsity_aware_sigma_dense(weight, size),
                                   rtol=1e-6, atol=0)
    # Kernels of equal ℓ1 (one kernel's signs and positions shuffled): no bound prunes them, the result stays exact.
    torch.manual_seed(10)
    base = torch.randn(9)
    kernels = torch.stack([base[torch.randperm(9)] * torch.randint(0, 2, (9,)).mul(2).sub(1) for _ in range(200)])
    weight = kernels.reshape(20, 10, 3, 3)
    torch.testing.assert_close(sparsity_aware_sigma(weight, (6, 6)), sparsity_aware_sigma_dense(weight, (6, 6)),
                               rtol=1e-6, atol=0)
    # Non-negative taps: |DFT| at frequency 0 is the ℓ1 itself, the bound is tight.
    weight = torch.rand(16, 16, 3, 3)
    torch.testing.assert_close(sparsity_aware_sigma(weight, (8, 8)), weight.sum(dim=(2, 3)).max(), rtol=1e-6, atol=0)


def test_the_last_winner_is_searched_first_and_every_k_keeps_the_pruned_sigma_exact():
    weight = trained_conv_weights()[1]
    conv = nn.Conv2d(4, 6, 4, 2, 1)
    norm = SparsityAwareNorm(conv, every=2, mode="reparam")
    sigma = norm.sigma_of(weight, (8, 8), None)
    kernels = weight.flatten(0, 1)
    assert norm._winner >= 0
    torch.testing.assert_close(sparsity_aware_sigma_dense(kernels[norm._winner, None, None], (8, 8)), sigma)
    torch.testing.assert_close(norm.sigma_of(weight, (8, 8), None), sparsity_aware_sigma_dense(weight, (8, 8)),
                               rtol=1e-6, atol=0)


# ---- the project form: Alg. 1's in-place rescaling (issue 19) -----------------------------------------------


def projected(name="san", **options):
    torch.manual_seed(4)
    return apply_critic_norm(Critic().double(), name, mode="project", **options)


def assert_unit_sigma(critic, sizes, gain=1.0):
    for conv, size in zip(convs(critic), sizes):
        torch.testing.assert_close(gain * sparsity_aware_sigma(conv.weight, size), torch.tensor(1.0, dtype=torch.float64))


def test_project_divides_the_stored_weights_at_the_first_forward_and_after_each_marked_update():
    critic = projected()
    count_critic_updates(critic)
    raw = [conv.weight.detach().clone() for conv in convs(critic)]
    for conv in convs(critic):
        assert isinstance(conv.weight_projection, SparsityAwareNorm) and not hasattr(conv, "parametrizations")
        assert isinstance(conv.weight, nn.Parameter)  # the optimizer steps on the stored weight itself
    sizes = input_sizes(critic, batch())
    assert_unit_sigma(critic, sizes)
    for conv, before in zip(convs(critic), raw):
        sigma = conv.weight_projection.sigma
        torch.testing.assert_close(sigma, sparsity_aware_sigma(before, conv.weight_projection._input_size))
        torch.testing.assert_close(conv.weight, before / sigma)
    for _ in range(3):
        critic(batch()).sum().backward()  # forwards alone leave the weights alone
        update(critic)
        mark_critic_updated(critic)
        assert_unit_sigma(critic, sizes)
    assert [conv.weight_projection.step.item() for conv in convs(critic)] == [3, 3, 3]
    # The gain divides too, and fully-connected layers keep the spectral norm (SAN §3.1).
    critic = projected(gain=1.3)
    critic(batch())
    assert_unit_sigma(critic, sizes, gain=1.3)
    assert hasattr(critic.head.parametrizations.weight[0], "_u")
    assert hasattr(critic.embed.parametrizations.weight[0], "_u")


def test_project_every_k_updates_and_sn_exact_project():
    critic = projected(every=2)
    conv = critic.features[0]
    critic(batch())
    weights = []
    for _ in range(4):
        update(critic)  # × 0.9: σ drops unless the weight is projected again
        mark_critic_updated(critic)
        weights.append(sparsity_aware_sigma(conv.weight, (8, 8)).item())
    assert weights[0] == pytest.approx(1) and weights[2] == pytest.approx(1)
    assert weights[1] == pytest.approx(0.9) and weights[3] == pytest.approx(0.9)

    exact = projected("sn-exact")
    exact(batch())
    for conv, size in zip(convs(exact), input_sizes(exact, batch())):
        assert isinstance(conv.weight_projection, ExactSpectralNorm)
        torch.testing.assert_close(exact_conv_sigma(conv.weight, size), torch.tensor(1.0, dtype=torch.float64))


def test_project_state_dict_round_trip_continues_identically():
    critic = projected(ratio=0.5, every=2)
    critic(batch())
    update(critic), mark_critic_updated(critic)
    state = critic.state_dict()
    assert {"features.0.weight_projection.sigma", "features.0.weight_projection.step", "features.0.weight"} <= set(state)
    restored = projected(ratio=0.5, every=2)
    restored.load_state_dict(state)
    x = batch()
    for _ in range(3):  # ratio < 1 draws from a generator seeded by the update count: no RNG state to carry
        assert torch.equal(restored(x), critic(x))
        update(critic), update(restored)
        mark_critic_updated(critic), mark_critic_updated(restored)
    for a, b in zip(convs(critic), convs(restored)):
        assert torch.equal(a.weight, b.weight) and a.weight_projection.step.item() == 4


def tiny_uncond(out, **kw):
    return api.make_config("uncond", out=str(out), resolution=32, width=0.125, batch_size=4, z_dim=8, log_every=1,
                           sample_every=0, n_samples=4, device="cpu", ckpt_every=2, deterministic=True, eval_every=0,
                           norm="san", **kw)


def test_trainer_projects_after_every_critic_update(tmp_path, monkeypatch):
    import gancli.train.trainer as trainer_module

    checked = []

    def mark_and_check(D):
        mark_critic_updated(D)
        for conv in convs(D):
            norm = conv.weight_projection
            sigma = sparsity_aware_sigma(conv.weight, norm._input_size)
            assert abs(norm.gain * sigma.item() - 1) < 1e-5
            checked.append(conv)

    monkeypatch.setattr(trainer_module, "mark_critic_updated", mark_and_check)
    api.train(tiny_uncond(tmp_path / "run", steps=2, n_dis=2))
    assert len(checked) == 4 * len(set(checked)) and len(set(checked)) >= 4


def test_project_resume_reproduces_the_uninterrupted_run(tmp_path):
    options = dict(norm_ratio=0.5, norm_every=2)
    full = api.train(tiny_uncond(tmp_path / "full", steps=4, **options))
    api.train(tiny_uncond(tmp_path / "part", steps=2, **options))
    resumed = api.train(api.resume_config(tmp_path / "part", steps=4), resume=True)
    a, _ = ckpt.load_weights(full.checkpoint())
    b, _ = ckpt.load_weights(resumed.checkpoint())
    assert any(key.endswith("weight_projection.step") for key in a["D"])
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"


def test_reparam_mode_keeps_the_parametrization_through_the_trainer(tmp_path):
    from gancli.train.trainer import Trainer
    from recipes import get_recipe

    cfg = tiny_uncond(tmp_path / "run", steps=1, san_mode="reparam")
    trainer = Trainer(get_recipe("uncond")(cfg), tmp_path / "run")
    layers = convs(trainer.models["D"])
    assert layers and all(isinstance(c.parametrizations.weight[0], SparsityAwareNorm) for c in layers)
    assert not any(hasattr(c, "weight_projection") for c in layers)


@pytest.mark.parametrize("mode", ["project", "reparam"])
def test_sr_recipe_trains_with_both_forms(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    sets = {"pretrain_steps": 1, "hr_size": 32, "batch_size": 2, "n_blocks": 1, "eval_images": 1, "workers": 0,
            "sample_every": 0, "ckpt_every": 0, "eval_every": 0, "log_every": 1, "n_samples": 2,
            "perceptual": "none", "san_mode": mode}
    run = api.train(api.make_config("sr", out=str(tmp_path / mode), steps=2, device="cpu", sets=sets))
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert any("D/loss" in r and math.isfinite(r["D/loss"]) for r in records)


def test_a_bad_san_mode_is_one_line_and_exit_1(cli, tmp_path):
    result = cli("train", "uncond", "--set", "san_mode=inplace", "--out", tmp_path / "run", "--steps", "1")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "Error: 'san_mode' must be one of project, reparam, got 'inplace'." in text and "Traceback" not in text


@pytest.mark.parametrize("name,mode", [("sn", "project"), ("san", "project"), ("san", "reparam"),
                                       ("sn-exact", "project"), ("wn", "project"), ("none", "project")])
def test_plain_critic_state_is_the_critic_a_normalized_one_computes_with(name, mode):
    """--init-from hands a critic from one normalization to another through the plain critic it computes with."""
    from gancli.nn.norms import plain_critic_state

    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 2, 3, 2, 1), nn.Flatten(),
                           nn.Linear(2 * 4 * 4, 1))
    plain = copy.deepcopy(critic)
    apply_critic_norm(critic, name, mode=mode)
    x = torch.randn(2, 3, 8, 8)
    critic.train()(x)  # SN's power step, SAN's first projection
    plain.load_state_dict(plain_critic_state(critic))
    assert set(plain.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    if name in ("san", "sn-exact"):  # their convs pad cyclically: so must the plain critic that stands for them
        for conv in (plain[0], plain[2]):
            conv.padding_mode = "circular"
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), critic.eval()(x))
