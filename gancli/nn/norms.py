"""Critic normalizations, applied by name to every weight layer of any critic.

`sn` is Miyato's spectral norm, `san` the sparsity aware normalization of the SAN paper
(eq. 6-9, Alg. 1), `sn-exact` the true operator norm of each circular convolution
(Sedghi et al. 2018; a diagnostic: SAN Fig. 4 shows training fails with it), `wn` weight norm.
san and sn-exact come in two forms (SAN_MODES): `project`, Alg. 1's in-place rescaling of the stored
conv weights, and `reparam`, a parametrization W -> W/(g·σ) of a raw weight.
"""

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from gancli.errors import ConfigError
from gancli.nn.critic_layers import ACTIVATION_NORMS, insert_activation_norms
from gancli.nn.padding import CRITIC_PADDINGS, make_circular, make_zero_padded

CRITIC_NORMS = ("none", "sn", "san", "sn-exact", "wn", "bn", "ln")
SAN_MODES = ("project", "reparam")

# Spectrum entries handled per chunk (~128 MB of complex64), so that large layers
# (512x512 kernels at 64x64) never hold their whole spectrum at once.
_CHUNK = 1 << 24
# SAN's |DFT|² entries per matrix product: on the CPU a 4 MB block that stays in cache until its max is
# taken (3.5x faster than 64 MB blocks on 2 cores); on a GPU few large blocks, each one kernel launch.
_SAN_CHUNK = {"cpu": 1 << 20}


def san_compensation(n_pairs: int, ratio: float) -> float:
    """Eq. 9: g = H(m·n) / H(round(m·n·r)), H the harmonic number (exponential max-statistics)."""
    return _harmonic(n_pairs) / _harmonic(_n_sampled(n_pairs, ratio))


def sparsity_aware_sigma(
    weight: Tensor, input_size: tuple[int, int], ratio: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """||W||_{0,inf} of eq. 6 by Lemma 1 (eq. 8): the largest |DFT| of any kernel w_ij zero-padded to H×W.

    With ratio < 1 the maximum runs over round(m·n·r) kernels drawn uniformly (Alg. 1, line 2).
    Exactly the value of sparsity_aware_sigma_dense, computed on a few kernels only: no |DFT| of a kernel
    exceeds the sum of its absolute taps (ℓ1), so once the exact |DFT| of the kernels of largest ℓ1 gives a
    lower bound on σ, every kernel whose ℓ1 is below it is skipped.
    """
    return _pruned_sigma(weight, input_size, ratio, generator)[0]


def sparsity_aware_sigma_dense(
    weight: Tensor, input_size: tuple[int, int], ratio: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """sparsity_aware_sigma by brute force: |DFT| of every (sampled) kernel at every frequency (the reference).

    The squared magnitude of a real kernel's DFT is the DFT of its autocorrelation, a short cosine series,
    so |DFT|² at every frequency of every kernel is one real matrix product (kernels × shifts) @ (shifts ×
    frequencies): 6-7× faster than padded FFTs on the CPU, and the same numbers.
    """
    kernels, _ = _sampled_kernels(weight, input_size, ratio, generator)
    with torch.autocast(weight.device.type, enabled=False):  # a bf16 product would cost σ two digits
        power = _kernel_powers(_exact_dtype(kernels), *input_size, reduce_kernels=True)
    return power.clamp(min=0).sqrt()


# Kernels of largest ℓ1 whose exact |DFT| gives the first lower bound on σ.
_CANDIDATES = 64
# A kernel is skipped when ℓ1² < (1 - margin)·bound: far above float32 rounding of |DFT|², so nothing is lost to it.
_PRUNE_MARGIN = 1e-4


def _pruned_sigma(
    weight: Tensor, input_size: tuple[int, int], ratio: float, generator: torch.Generator | None, hint: int = -1
) -> tuple[Tensor, int]:
    """σ as sparsity_aware_sigma_dense, and the index (in weight's flattened out×in kernels) of the kernel that holds it.

    `hint`, a kernel likely to hold the maximum (e.g. the last winner), joins the candidates of largest ℓ1.
    """
    kernels, picked = _sampled_kernels(weight, input_size, ratio, generator)
    with torch.autocast(weight.device.type, enabled=False):
        kernels = _exact_dtype(kernels)
        l1 = kernels.abs().sum(dim=(-2, -1))
        candidates = l1.topk(min(_CANDIDATES, len(kernels))).indices
        if hint >= 0:
            at = hint if picked is None else (picked == hint).nonzero().flatten()
            candidates = torch.cat([candidates, torch.as_tensor(at, device=l1.device).reshape(-1)])
        candidate_powers = _kernel_powers(kernels[candidates], *input_size)
        best = candidate_powers.argmax()
        bound, winner = candidate_powers[best], candidates[best]
        # |DFT(w)| ≤ ℓ1(w) at every frequency: a kernel with ℓ1 below the bound cannot hold the maximum.
        alive = l1.square() >= bound * (1 - _PRUNE_MARGIN)
        alive[candidates] = False
        survivors = alive.nonzero().flatten()
        if len(survivors):
            powers = _kernel_powers(kernels[survivors], *input_size)
            top = powers.argmax()
            if powers[top] > bound:
                winner = survivors[top]
        # The winner's |DFT|² once more on its own: the same bits whichever batch found it (resume stays exact).
        bound = _kernel_powers(kernels[winner, None], *input_size)[0]
    winner = int(winner if picked is None else picked[winner])
    return bound.clamp(min=0).sqrt(), winner


def _exact_dtype(kernels: Tensor) -> Tensor:
    return kernels.to(torch.promote_types(kernels.dtype, torch.float32))


def _sampled_kernels(
    weight: Tensor, input_size: tuple[int, int], ratio: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor | None]:
    """The (K, kh, kw) kernels folded onto the input size, a uniform draw of round(K·r) of them when ratio < 1,
    and the drawn indices (None: all kernels)."""
    kernels = _fold(weight, *input_size).flatten(0, 1)
    n_sampled = _n_sampled(len(kernels), ratio)
    if n_sampled == len(kernels):
        return kernels, None
    device = weight.device if generator is None else generator.device
    picked = torch.randperm(len(kernels), generator=generator, device=device)[:n_sampled].to(weight.device)
    return kernels[picked], picked


def _kernel_powers(kernels: Tensor, h: int, w: int, reduce_kernels: bool = False) -> Tensor:
    """max over frequencies of |DFT|² of each (kh, kw) kernel zero-padded to h×w (or the max of all of them)."""
    acf = _half_autocorrelation(kernels)
    basis = _cosine_basis(*kernels.shape[-2:], h, w, kernels.dtype, kernels.device)
    per_chunk = max(1, _SAN_CHUNK.get(kernels.device.type, _CHUNK) // basis.shape[1])
    if reduce_kernels:
        return torch.stack([(chunk @ basis).amax() for chunk in acf.split(per_chunk)]).amax()
    return torch.cat([(chunk @ basis).amax(dim=1) for chunk in acf.split(per_chunk)])


def _shifts(kh: int, kw: int) -> list[tuple[int, int]]:
    """One shift of each ± pair of the autocorrelation's support, the zero shift first."""
    return [(0, 0)] + [(da, db) for da in range(kh) for db in range(-kw + 1, kw) if da > 0 or db > 0]


def _half_autocorrelation(kernels: Tensor) -> Tensor:
    """r(Δ) = Σ_t k(t) k(t + Δ) of each (kh, kw) kernel at the shifts of _shifts, doubled past the zero shift."""
    kh, kw = kernels.shape[-2:]
    taps = kernels.permute(1, 2, 0).contiguous()  # (kh, kw, K): each product below runs along K, contiguous
    rows = []
    for da, db in _shifts(kh, kw):
        a = taps[: kh - da, max(0, -db) : kw - max(0, db)]
        b = taps[da:, max(0, db) : kw - max(0, -db)]
        rows.append((a * b).sum(dim=(0, 1)) * (1 if (da, db) == (0, 0) else 2))
    return torch.stack(rows).T  # (K, shifts)


_basis_cache: dict[tuple, Tensor] = {}


def _cosine_basis(kh: int, kw: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """cos 2π(u·Δa/h + v·Δb/w) for each shift (rows) and frequency u < h, v ≤ w/2 (columns; |DFT| is even)."""
    key = (kh, kw, h, w, dtype, str(device))
    if key not in _basis_cache:
        shifts = torch.tensor(_shifts(kh, kw), dtype=torch.float64)
        u = torch.arange(h, dtype=torch.float64).repeat_interleave(w // 2 + 1)
        v = torch.arange(w // 2 + 1, dtype=torch.float64).repeat(h)
        # the turns are reduced mod 1 exactly (integers) before the cosine, as an FFT's twiddles are
        turns = (torch.outer(shifts[:, 0], u).remainder(h) / h + torch.outer(shifts[:, 1], v).remainder(w) / w)
        _basis_cache[key] = torch.cos(2 * math.pi * turns).to(dtype=dtype, device=device)
    return _basis_cache[key]


def exact_conv_sigma(weight: Tensor, input_size: tuple[int, int]) -> Tensor:
    """Operator norm of the stride-1 circular multi-channel convolution on an H×W input.

    Sedghi et al. 2018: its singular values are those of the out×in matrices holding the
    kernels' 2-D DFT (zero-padded to H×W) at each frequency; σ is the largest over frequencies.
    """
    h, w = input_size
    kh, kw = weight.shape[-2:]  # taps past the input size wrap around, as circular padding does
    spectra_dtype = torch.promote_types(weight.dtype, torch.complex64)
    kernels = weight.to(spectra_dtype)
    # Half the frequencies suffice: the other half are complex conjugates, with equal singular values.
    freqs = torch.cartesian_prod(torch.arange(h), torch.arange(w // 2 + 1))
    tops = []
    for f in freqs.split(max(1, _CHUNK // kernels[:, :, 0, 0].numel())):
        turns_h = torch.outer(f[:, 0], torch.arange(kh)).remainder(h).double() / h
        turns_w = torch.outer(f[:, 1], torch.arange(kw)).remainder(w).double() / w
        angle = -2 * math.pi * (turns_h[:, :, None] + turns_w[:, None, :])
        basis = torch.polar(torch.ones_like(angle), angle).to(spectra_dtype).to(weight.device)
        spectra = torch.einsum("oiab,fab->foi", kernels, basis)
        # σ_max(A)² is the top eigenvalue of the smaller Gram matrix; batched eigvalsh is far faster than svdvals.
        gram = spectra.mH @ spectra if spectra.shape[-1] <= spectra.shape[-2] else spectra @ spectra.mH
        tops.append(torch.linalg.eigvalsh(gram)[..., -1].amax())
    return torch.stack(tops).amax().clamp(min=0).sqrt().to(weight.dtype)


class _CachedConvNorm(nn.Module):
    """Divides a conv weight by g·σ, σ of the weight at the conv's input size, cached in a buffer; two forms.

    `reparam`: a parametrization W -> W / (g·σ) of the raw weight; the optimizer steps on the raw W.
    σ depends on the conv's input size, which a parametrization cannot see, so a forward pre-hook on the
    conv (`_refresh_sigma`) recomputes it: in training after every `every`-th critic update that the trainer
    reports through `mark_critic_updated` (or, when nothing reports updates, every `every`-th forward of the
    layer); in eval only if never computed. σ is a constant for autograd.
    `project` (Alg. 1): the stored weight itself is divided in place, W <- W / (g·σ), at the layer's first
    forward and right after every `every`-th critic update reported by `mark_critic_updated` (so before the
    next one, as Alg. 1 line 3), at the input size of the last forward; the forward and the optimizer use W.
    (The weights' `_version` is no signal of an update: fused Adam leaves it alone.)
    A strided conv is a subsampled stride-1 one, and a conv whose padding is smaller than circular "same"
    padding crops it; both only shrink the norm, so σ of the stride-1 circular conv is an upper bound for them.
    A zero-padded conv is a cropped circular one on a larger grid: the hooks pass that grid (sigma_grid).
    """

    def __init__(self, conv: nn.Conv2d, gain: float, every: int, mode: str):
        super().__init__()
        self.dilation, self.groups, self.gain, self.every, self.mode = conv.dilation, conv.groups, gain, every, mode
        # project: σ of the weight before its last projection
        self.register_buffer("sigma", torch.zeros((), dtype=conv.weight.dtype, device=conv.weight.device))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # Python mirrors of the buffers, so that a forward never waits on the GPU to read them.
        self._steps, self._has_sigma, self._update_driven, self._pending = 0, False, False, False
        self._input_size: tuple[int, int] | None = None

    def forward(self, weight: Tensor) -> Tensor:
        return weight / (self.gain * self.sigma)

    def sigma_of(self, weight: Tensor, input_size: tuple[int, int], generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    @torch.compiler.disable  # σ's kernel search has data-dependent shapes: eager inside compiled critics
    @torch.no_grad()
    def refresh(self, weight: Tensor, input_size: tuple[int, int]) -> None:
        """reparam: recompute σ when due, before a forward at this input size."""
        self._input_size = input_size
        if not self.training:
            due = not self._has_sigma
        elif self._update_driven:  # the trainer marks critic updates (Alg. 1: normalize after each)
            due, self._pending = self._pending or not self._has_sigma, False
        else:  # standalone use: count forwards of this layer
            due = self._steps % self.every == 0
            self._steps += 1
            self.step.fill_(self._steps)
        if due:
            self.sigma.copy_(self.sigma_of(_dilated(weight, self.dilation), input_size, None))
            self._has_sigma = True

    @torch.compiler.disable
    @torch.no_grad()
    def project(self, weight: Tensor) -> None:
        """project: W <- W / (g·σ) in place (Alg. 1, lines 2-3)."""
        # With ratio < 1 the kernels are drawn from a generator seeded by the update count: the same draw in
        # every process of a distributed run, and again after a resume, without any state of its own.
        generator = torch.Generator(weight.device).manual_seed(self._steps)
        self.sigma.copy_(self.sigma_of(_dilated(weight, self.dilation), self._input_size, generator))
        weight.div_(self.gain * self.sigma)
        self._has_sigma = True

    def seen(self, weight: Tensor, input_size: tuple[int, int]) -> None:
        """project: a forward at this input size; the first one projects the initial weight."""
        self._input_size = input_size
        if not self._has_sigma:
            self.project(weight)

    def mark_updated(self, weight: Tensor) -> None:
        """One critic update happened: σ is recomputed every `every` updates, here when the input size is known
        (reparam: the next forward reads the weight as it is now), else at the next forward."""
        due = self._steps % self.every == 0
        self._steps += 1
        self.step.fill_(self._steps)
        if self.mode == "reparam":
            self._pending = self._pending or due
            if self._pending and self._input_size is not None:
                self.refresh(weight, self._input_size)
        elif due and self._input_size is not None:
            self.project(weight)

    def settled(self) -> bool:
        """Nothing for the forward pre-hook to do: σ is known, updates are reported, and the input size was seen
        (inside a compiled critic the hook then traces to nothing, so the graph does not break at every conv)."""
        return self._has_sigma and self._update_driven and not self._pending and self._input_size is not None

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._steps, self._has_sigma = int(self.step), bool(self.sigma > 0)


class SparsityAwareNorm(_CachedConvNorm):
    """SAN (Alg. 1): W / (g·σ), σ = ||W||_{0,inf} of eq. 6 over a ratio r of the kernels, g from eq. 9 unless given."""

    def __init__(self, conv: nn.Conv2d, ratio: float = 1.0, gain: float | None = None, every: int = 1,
                 mode: str = "project"):
        n_pairs = conv.out_channels * conv.in_channels // conv.groups
        super().__init__(conv, san_compensation(n_pairs, ratio) if gain is None else gain, every, mode)
        self.ratio = ratio
        self._winner = -1  # the kernel that held σ last time: the first candidate of the next search

    def sigma_of(self, weight: Tensor, input_size: tuple[int, int], generator: torch.Generator | None) -> Tensor:
        sigma, self._winner = _pruned_sigma(weight, input_size, self.ratio, generator, self._winner)
        return sigma


class ExactSpectralNorm(_CachedConvNorm):
    """W / σ, σ the true operator norm of the circular convolution at the input size (Sedghi et al. 2018)."""

    def __init__(self, conv: nn.Conv2d, every: int = 1, mode: str = "project"):
        super().__init__(conv, 1.0, every, mode)

    def sigma_of(self, weight: Tensor, input_size: tuple[int, int], generator: torch.Generator | None) -> Tensor:
        # A grouped conv is block diagonal: its norm is the largest of the groups' norms.
        return torch.stack([exact_conv_sigma(w, input_size) for w in weight.chunk(self.groups)]).amax()


PLAIN = "leave_weight_plain"  # attribute of a critic layer that no weight normalization may touch


def leave_plain(layer: nn.Module) -> nn.Module:
    """Mark a critic layer that its reference architecture never normalizes (e.g. the first and last conv of each
    scale of SPADE's PatchGAN critic): apply_critic_norm leaves its weight as it is, under every weight norm."""
    setattr(layer, PLAIN, True)
    return layer


def apply_critic_norm(
    module: nn.Module,
    name: str,
    *,
    ratio: float = 1.0,
    gain: float | None = None,
    every: int = 1,
    n_power_iterations: int = 1,
    mode: str = "project",
    padding: str = "auto",
    sn_eps: float = 1e-12,
) -> nn.Module:
    """Normalize every Conv2d, Linear and Embedding weight of `module` in place by the named scheme (but layers
    marked by leave_plain).

    `ratio`, `gain` apply to san; `every` (in critic updates, or forwards of each layer when none are reported)
    and `mode` (project: Alg. 1's in-place rescaling, the conv's stored weight is the normalized one and its
    norm module sits at `conv.weight_projection`; reparam: a parametrization of a raw weight) to san and
    sn-exact; `n_power_iterations` and `sn_eps` (the power iteration's ε) to sn and to the fully-connected layers
    under san and sn-exact, which use the spectral norm (SAN §3.1) in both modes. `padding` (CRITIC_PADDINGS) of
    the padded convs (plain-left layers included): auto switches them to circular under san and sn-exact (Lemma 1
    assumes it) and keeps the networks' own otherwise; circular and zeros set it under any norm. A zero-padded conv
    on H×W is a cropped circular conv on the (H+kh-1)×(W+kw-1) grid, so san and sn-exact take σ on that grid
    (sigma_grid). In project mode, call mark_critic_updated after each optimizer step.
    """
    if name not in CRITIC_NORMS:
        raise ConfigError(f"Unknown critic normalization {name!r}; choose one of: {', '.join(CRITIC_NORMS)}.")
    if mode not in SAN_MODES:
        raise ConfigError(f"Unknown SAN mode {mode!r}; choose one of: {', '.join(SAN_MODES)}.")
    _set_padding(module, "circular" if padding == "auto" and name in ("san", "sn-exact") else padding)
    if name in ACTIVATION_NORMS:  # bn / ln add layers inside the critic (gancli.nn.critic_layers)
        return insert_activation_norms(module, name)
    if not 0 < ratio <= 1:
        raise ConfigError(f"The SAN ratio of kernels must be in (0, 1], got {ratio}.")
    if gain is not None and gain <= 0:
        raise ConfigError(f"The SAN compensation gain must be positive, got {gain}.")
    if every < 1 or n_power_iterations < 1:
        raise ConfigError(f"every and n_power_iterations must be at least 1, got {every} and {n_power_iterations}.")
    if name == "none":
        return module
    for layer in list(module.modules()):
        if not isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
            continue
        if getattr(layer, PLAIN, False):  # the reference leaves it plain (its padding was set above, as every conv's)
            continue
        if name == "wn":
            weight_norm(layer)
        elif name == "sn" or not isinstance(layer, nn.Conv2d):
            spectral_norm(layer, n_power_iterations=n_power_iterations, eps=sn_eps)
        else:
            norm = (SparsityAwareNorm(layer, ratio, gain, every, mode) if name == "san"
                    else ExactSpectralNorm(layer, every, mode))
            _attach_cached_norm(layer, norm, mode)
    return module


def _attach_cached_norm(conv: nn.Conv2d, norm: _CachedConvNorm, mode: str) -> None:
    """A SAN / sn-exact norm on a conv: in place (project) or as W's parametrization (reparam), with the forward
    pre-hook that shows it the input size."""
    if mode == "project":
        conv.weight_projection = norm
        conv.register_forward_pre_hook(_project_at_first_forward)
    else:
        parametrize.register_parametrization(conv, "weight", norm)
        conv.register_forward_pre_hook(_refresh_sigma)


def _set_padding(module: nn.Module, padding: str) -> None:
    """Make every padded conv of `module` pad cyclically (circular) or with zeros; auto leaves them as they are."""
    if padding not in CRITIC_PADDINGS:
        raise ConfigError(f"Unknown critic padding {padding!r}; choose one of: {', '.join(CRITIC_PADDINGS)}.")
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d) and layer.padding not in ((0, 0), "valid") and padding != "auto":
            (make_circular if padding == "circular" else make_zero_padded)(layer)


def count_critic_updates(module: nn.Module) -> None:
    """Make reparam SAN / sn-exact layers recompute σ per critic update (reported by mark_critic_updated), not per forward."""
    for _, norm, _ in _cached_norms(module):
        norm._update_driven = True


def mark_critic_updated(module: nn.Module) -> None:
    """Tell every SAN / sn-exact layer of a critic that its optimizer stepped (called by the trainer).

    Under project this is where the stored weights are divided by g·σ, every `every` updates.
    """
    for _, norm, weight in _cached_norms(module):
        norm.mark_updated(weight)


def _cached_norms(module: nn.Module):
    """(conv, its SAN / sn-exact module, the weight that module reads) for each such conv of `module`."""
    for layer in module.modules():
        if isinstance(getattr(layer, "weight_projection", None), _CachedConvNorm):
            yield layer, layer.weight_projection, layer.weight
        elif parametrize.is_parametrized(layer, "weight") and isinstance(layer.parametrizations.weight[0],
                                                                         _CachedConvNorm):
            yield layer, layer.parametrizations.weight[0], layer.parametrizations.weight.original


def sigma_grid(conv: nn.Conv2d, input_size: tuple[int, int]) -> tuple[int, int]:
    """The grid on which `conv` applied to an H×W input is a cropped circular conv: σ there bounds it (Lemma 1).

    Circular or no padding: H×W itself. Zero padding p with a kernel of (dilated) size k: the input zero-embedded
    in an (H+max(k-1, p))-long circle, where no tap wraps around onto the data, so the outputs are a crop of that
    circular conv's (strides subsample them), and cropping never raises a norm.
    """
    if conv.padding_mode != "zeros" or conv.padding in ((0, 0), "valid"):
        return input_size
    pads = conv.padding if isinstance(conv.padding, tuple) else (0, 0)  # 'same' pads at most k-1 a side
    return tuple(n + max(d * (k - 1), p) for n, k, d, p in
                 zip(input_size, conv.kernel_size, conv.dilation, pads))


def _refresh_sigma(conv: nn.Conv2d, args: tuple[Tensor, ...]) -> None:
    """Forward pre-hook (reparam): let the conv's cached-σ parametrization see the grid of this input size."""
    weights = conv.parametrizations.weight
    if torch.compiler.is_compiling() and weights[0].settled():
        return
    weights[0].refresh(weights.original, sigma_grid(conv, tuple(args[0].shape[-2:])))


def _project_at_first_forward(conv: nn.Conv2d, args: tuple[Tensor, ...]) -> None:
    """Forward pre-hook (project): record the grid of the input's size; project the weight if it never was."""
    if torch.compiler.is_compiling() and conv.weight_projection.settled():
        return
    conv.weight_projection.seen(conv.weight, sigma_grid(conv, tuple(args[0].shape[-2:])))


def _dilated(weight: Tensor, dilation: tuple[int, int]) -> Tensor:
    """The kernel a dilated conv applies: taps spread `dilation` apart, zeros between."""
    if tuple(dilation) == (1, 1):
        return weight
    dh, dw = dilation
    kh, kw = weight.shape[-2:]
    spread = weight.new_zeros(*weight.shape[:2], (kh - 1) * dh + 1, (kw - 1) * dw + 1)
    spread[..., ::dh, ::dw] = weight
    return spread


def _fold(weight: Tensor, h: int, w: int) -> Tensor:
    """A kernel larger than the H×W input, folded onto it: circular convolution wraps its taps around."""
    kh, kw = weight.shape[-2:]
    if kh <= h and kw <= w:
        return weight
    nh, nw = -(-kh // h), -(-kw // w)
    padded = nn.functional.pad(weight, (0, nw * w - kw, 0, nh * h - kh))
    return padded.unflatten(-1, (nw, w)).unflatten(-3, (nh, h)).sum(dim=(-4, -2))


def _n_sampled(n_pairs: int, ratio: float) -> int:
    if not 0 < ratio <= 1:
        raise ConfigError(f"The SAN ratio of kernels must be in (0, 1], got {ratio}.")
    return max(1, round(n_pairs * ratio))


def _harmonic(k: int) -> float:
    return math.fsum(1 / j for j in range(1, k + 1))


def apply_config_norm(critic: nn.Module, cfg) -> nn.Module:
    """The critic normalization a training config names (norm, norm_ratio, norm_gain, norm_every, san_mode,
    critic_padding, and a recipe's sn_eps where it has one), applied to a plain critic as training does."""
    return apply_critic_norm(critic, cfg.norm, ratio=cfg.norm_ratio, gain=cfg.norm_gain or None, every=cfg.norm_every,
                             mode=cfg.san_mode, padding=cfg.critic_padding, sn_eps=getattr(cfg, "sn_eps", 1e-12))



def plain_critic_state(module: nn.Module) -> dict[str, Tensor]:
    """The state dict of the plain critic that a normalized one computes with (in eval mode): each normalized
    layer's effective weight under its plain name, the normalizations' own state (σ, u, v) dropped."""
    training = module.training
    module.eval()  # SN's weight without a power step
    try:
        with torch.no_grad():
            state = {k: v for k, v in module.state_dict().items()
                     if ".parametrizations." not in f".{k}" and ".weight_projection." not in f".{k}"}
            for prefix, layer in module.named_modules():
                if parametrize.is_parametrized(layer):
                    for name in layer.parametrizations:
                        state[f"{prefix}.{name}" if prefix else name] = getattr(layer, name).detach().clone()
    finally:
        module.train(training)
    return state
