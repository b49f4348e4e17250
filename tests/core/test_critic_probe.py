"""The critic probe of the telemetry: SAN's constants, exact conv norms, ‖∇ₓD‖ and channel sparsity (SAN §2-3)."""

import json

import pytest
import torch
from torch import nn

from gancli import api
from gancli.nn import apply_critic_norm, exact_conv_sigma, sigma_grid, sparsity_aware_sigma
from gancli.train.critic_probe import CriticProbe, channel_off_fraction, layer_constants


def relu_critic() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU(), nn.Conv2d(6, 6, 4, 2, 1), nn.LeakyReLU(0.1),
                         nn.Flatten(), nn.Linear(6 * 4 * 4, 1))


class FunctionalCritic(nn.Module):
    """Activations applied as functions, as the ResNet critics do."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.dense = nn.Conv2d(3, 4, 3, 1, 1), nn.Conv2d(4, 4, 3, 1, 1), nn.Linear(4, 1)

    def forward(self, x, scale=1.0):
        h = self.conv2(torch.relu(self.conv1(x)))
        return self.dense(torch.relu(h).mean(dim=(2, 3))).squeeze(1) * scale, h


def test_channel_off_fraction_counts_channels_without_a_positive_entry():
    x = torch.ones(2, 4, 3, 3)
    x[0, 1] = 0  # zero: off
    x[1, 2] = -0.5  # all on the negative side (a leaky ReLU's): off
    x[1, 3, 0, 0] = -1  # one negative entry: on
    assert channel_off_fraction(x) == 2 / 8


def test_layer_constants_are_sans_and_the_exact_norm_on_the_conv_grid():
    conv, dense = nn.Conv2d(3, 5, 3, 1, 1), nn.Linear(7, 4)
    san, exact = layer_constants(conv, (6, 6))
    grid = sigma_grid(conv, (6, 6))
    assert grid == (8, 8)
    assert san == pytest.approx(float(sparsity_aware_sigma(conv.weight.detach(), grid)), rel=1e-6)
    assert exact == pytest.approx(float(exact_conv_sigma(conv.weight.detach(), grid)), rel=1e-6)
    assert san <= exact * (1 + 1e-6)  # one kernel's |DFT| never exceeds the whole conv's norm
    assert layer_constants(dense, None) == pytest.approx((float(torch.linalg.matrix_norm(dense.weight.detach(), 2)),) * 2)


def test_probe_reads_the_armed_step_and_leaves_the_critic_as_it_was():
    torch.manual_seed(0)
    critic = apply_critic_norm(relu_critic(), "sn")
    probe = CriticProbe(critic)
    real, fake = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    critic(real)
    assert probe.read() == {}  # not armed: nothing kept
    probe.arm()
    critic(real), critic(fake), critic(torch.zeros(5, 3, 8, 8))  # the third call (e.g. the G step) is not kept
    state = {k: v.clone() for k, v in critic.state_dict().items()}
    reading = probe.read()
    assert critic.training and all(torch.equal(v, critic.state_dict()[k]) for k, v in state.items())
    assert set(reading) == {"san/0", "exact/0", "san/2", "exact/2", "san/5", "exact/5", "prod/san", "prod/exact",
                            "off/1", "off/3", "off/mean", "lip/real", "lip/fake"}
    critic.eval()
    grads = []
    for batch in (real, fake):
        x = batch.clone().requires_grad_()
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        grads.append(float(grad.flatten(1).norm(dim=1).mean()))
    assert (reading["lip/real"], reading["lip/fake"]) == pytest.approx(grads, rel=1e-5)
    features = [critic[1](critic[0](b)) for b in (real, fake)]
    assert reading["off/1"] == pytest.approx(sum(channel_off_fraction(f) for f in features) / 2)
    assert reading["prod/exact"] == pytest.approx(reading["exact/0"] * reading["exact/2"] * reading["exact/5"])
    assert reading["lip/real"] <= reading["prod/exact"]  # the product of the layers' norms bounds the gradient


def test_probe_of_functional_activations_tuple_outputs_and_extra_arguments():
    critic = FunctionalCritic()
    probe = CriticProbe(critic)
    probe.arm()
    critic(torch.randn(3, 3, 5, 5), scale=2.0), critic(torch.randn(3, 3, 5, 5), scale=2.0)
    reading = probe.read()
    assert "off/in:conv2" in reading and "off/in:conv1" not in reading  # the image itself is no activation
    assert reading["lip/real"] > 0 and reading["san/conv1"] > 0


def test_training_with_telemetry_logs_the_probe_and_plots_it(tmp_path):
    cfg = api.make_config("uncond", out=str(tmp_path / "run"), resolution=32, width=0.125, batch_size=4, z_dim=8,
                          steps=4, telemetry_every=2, on_collapse="warn", sample_every=0, eval_every=0, device="cpu",
                          norm="san", critic_padding="zeros")
    api.train(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["san/features.0"] == pytest.approx(1.0, rel=1e-3) for r in records)  # projected after each update
    assert all(0 <= r["off/mean"] <= 1 and r["lip/real"] > 0 and r["prod/exact"] >= r["prod/san"] for r in records)
    assert (tmp_path / "run" / "critic_probe.png").is_file() and (tmp_path / "run" / "spectra.png").is_file()
