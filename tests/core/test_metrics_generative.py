"""Generative metrics against their formulas on constructed cases, and against torch-fidelity with random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gancli.errors import ConfigError, DataError, MissingWeightsError
from gancli.metrics.generative import scores as gen
from gancli.metrics.generative.features import InceptionFeatures, prepare, random_inception_state_dict, tf1_resize
from gancli.metrics.generative.stats import FeatureStats, ReferenceStats


def _stats(x: np.ndarray, batch: int = 7) -> FeatureStats:
    stats = FeatureStats()
    for part in np.array_split(x, max(1, len(x) // batch)):
        stats.update(torch.from_numpy(part))
    return stats


# ---- FID ------------------------------------------------------------------------------------
def test_streaming_stats_equal_numpy_even_with_a_large_mean():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((301, 6)) * [1, 2, 3, 0.5, 0.1, 1] + 1e4
    stats = _stats(x, batch=13)
    assert stats.n == 301
    np.testing.assert_allclose(stats.mu(), x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(stats.sigma(), np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", gen.FID_METHODS)
def test_fid_of_identical_sets_is_zero(method):
    x = np.random.default_rng(1).standard_normal((200, 16))
    s = _stats(x)
    assert abs(gen.fid_from_stats(s.mu(), s.sigma(), s.mu(), s.sigma(), method=method)) < 1e-8


@pytest.mark.parametrize("method", gen.FID_METHODS)
def test_fid_of_known_gaussians(method):
    # Diagonal covariances commute: FID = |mu1 - mu2|^2 + sum (a + b - 2 sqrt(ab)).
    d = 8
    a, b = np.linspace(0.5, 3, d), np.linspace(4, 0.2, d)
    mu1, mu2 = np.zeros(d), np.arange(d) / 4
    expected = ((mu1 - mu2) ** 2).sum() + (a + b - 2 * np.sqrt(a * b)).sum()
    assert gen.fid_from_stats(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(expected, rel=1e-10)
    # A rotated pair has the same FID (FID is invariant under an orthogonal change of basis).
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((d, d)))
    got = gen.fid_from_stats(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T, method=method)
    assert got == pytest.approx(expected, rel=1e-8)


def test_fid_methods_agree_on_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((20, 64)) ** 2, (rng.standard_normal((20, 64)) + 0.3) ** 2
    sx, sy = _stats(x), _stats(y)
    values = [gen.fid_from_stats(sx.mu(), sx.sigma(), sy.mu(), sy.sigma(), method=m) for m in gen.FID_METHODS]
    assert max(values) - min(values) < 1e-6 * abs(values[0])


def test_fid_sampled_gaussians_converge_to_the_closed_form():
    rng = np.random.default_rng(4)
    d, n = 4, 200_000
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d)) * 2 + 1  # N(1, 4I): FID = d*1 + d*(1 + 4 - 2*2) = 2d
    sx, sy = _stats(x, batch=50_000), _stats(y, batch=50_000)
    assert gen.fid_from_stats(sx.mu(), sx.sigma(), sy.mu(), sy.sigma()) == pytest.approx(2 * d, rel=0.01)


# ---- IS -------------------------------------------------------------------------------------
def test_inception_score_of_uniform_logits_is_one():
    mean, std = gen.inception_score(np.zeros((50, 1008)), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_balanced_predictions_is_the_class_count():
    k = 5
    logits = np.eye(k)[np.arange(500) % k] * 60.0  # p(y|x) one-hot, p(y) uniform: IS = exp(log k) = k
    mean, _ = gen.inception_score(logits, splits=1, shuffle=False)
    assert mean == pytest.approx(k, rel=1e-6)


def test_inception_score_needs_one_image_per_split():
    with pytest.raises(DataError, match="at least 10 images"):
        gen.inception_score(np.zeros((9, 10)))


# ---- KID ------------------------------------------------------------------------------------
def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b / d + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_brute_force_unbiased_mmd():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.5
    # One subset of all images: only the order is random, and MMD does not depend on it.
    mean, std = gen.kid(x, y, subsets=1, subset_size=12)
    assert mean == pytest.approx(_brute_force_mmd2(x, y), rel=1e-12) and std == 0.0


def test_kid_subsets_are_drawn_like_torch_fidelity():
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((40, 16)).astype(np.float32), (rng.standard_normal((30, 16)) + 0.2).astype(np.float32)
    ours = gen.kid(x, y, subsets=7, subset_size=20)
    theirs = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=7, kid_subset_size=20,
                                    verbose=False)
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)


def test_kid_refuses_subsets_larger_than_the_sets():
    with pytest.raises(DataError, match="subsets of 1000 images"):
        gen.kid(np.zeros((50, 4)), np.zeros((60, 4)), subset_size=1000)


# ---- precision / recall ----------------------------------------------------------------------
def test_precision_recall_on_constructed_sets():
    grid = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0)), -1).reshape(-1, 2)
    assert gen.precision_recall(grid, grid, k=3) == (1.0, 1.0)
    assert gen.precision_recall(grid + 100, grid, k=3) == (0.0, 0.0)
    # Fake points cover only the lower half of the real grid: every fake point is real-like (precision 1),
    # and the real points of the upper half lie outside the fake balls (recall < 1).
    precision, recall = gen.precision_recall(grid[:12], grid, k=3)
    assert precision == 1.0 and recall < 0.8


def test_precision_recall_equal_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    rng = np.random.default_rng(7)
    fake, real = rng.standard_normal((60, 8)), rng.standard_normal((50, 8)) * 1.3
    theirs = calculate_precision_recall_full(torch.from_numpy(fake).float(), torch.from_numpy(real).float(), 3)
    assert gen.precision_recall(fake, real, k=3) == pytest.approx(theirs, abs=1e-12)


# ---- feature network -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(32, 32), (17, 40), (299, 299), (300, 512)])
def test_separable_resize_is_bit_identical_to_torch_fidelity(shape):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.randint(0, 256, (2, 3, *shape)).float()
    assert torch.equal(tf1_resize(x, 299),
                       interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False))


def test_weights_of_the_wrong_shape_are_a_clear_error(tmp_path):
    state = random_inception_state_dict(0)
    state["fc.weight"] = state["fc.weight"][:10]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    from gancli.metrics.generative.features import load_inception
    with pytest.raises(MissingWeightsError, match="not a torch-fidelity TF-Inception v3 state dict"):
        load_inception(path)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(random_inception_state_dict(0), path)
    return path


def test_gancli_equals_torch_fidelity_with_random_weights(random_weights, tmp_path, monkeypatch):
    """Same weights file and images: FID, KID and IS agree with torch-fidelity to 1e-4 (fp32, CPU)."""
    import torch_fidelity

    from gancli.metrics.generative.bench import make_images
    from gancli.data.images import save_image
    from gancli.metrics import Evaluator

    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    images = make_images(24, 32, seed=3)  # 12 noise images, then 12 smooth colour fields
    real = torch.cat([images[:9], images[12:15]])  # mostly noise
    fake = torch.cat([images[9:12], images[15:]])  # mostly smooth
    for name, part in (("real", real), ("fake", fake)):
        (tmp_path / name).mkdir()
        for i, image in enumerate(part):
            save_image(image, tmp_path / name / f"{i:02d}.png")

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    theirs = torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), cuda=False, isc=True, fid=True, kid=True, kid_subsets=100,
        kid_subset_size=10, feature_extractor_weights_path=str(random_weights), cache=False, verbose=False,
        save_cpu_ram=True, batch_size=16)
    ev = Evaluator(features="inception", weights=random_weights, device="cpu", batch_size=16)
    fid, inception, kid = ev.evaluate_many(["fid", "is", "kid"], fake=str(tmp_path / "fake"),
                                           real=str(tmp_path / "real"), kid_subsets=100, kid_subset_size=10)
    print({k: (ours.value, theirs[key], ours.value / theirs[key] - 1) for k, ours, key in (
        ("fid", fid, "frechet_inception_distance"), ("is", inception, "inception_score_mean"),
        ("kid", kid, "kernel_inception_distance_mean"))})
    assert fid.value > 0.1  # not a degenerate comparison
    assert fid.value == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert inception.value == pytest.approx(theirs["inception_score_mean"], rel=1e-4)
    assert inception.value - 1 == pytest.approx(theirs["inception_score_mean"] - 1, rel=1e-4)  # IS is near 1 here
    # torch-fidelity sums KID's kernels in float32 (gancli: float64); over 100 subsets its rounding averages out.
    assert kid.value == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert fid.protocol["official_weights"] is False and "UNOFFICIAL" in fid.line()


@pytest.mark.parametrize("name", ["inception", "builtin"])
def test_feature_networks_declare_the_widths_they_give(name, random_weights):
    from gancli.metrics.generative.features import load_feature_net

    net = load_feature_net(name, random_weights if name == "inception" else None, "cpu")
    with torch.no_grad():
        pool, logits = net(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert pool.shape == (2, net.pool_dim) and logits.shape == (2, net.logits_dim)


def test_folded_network_features_match_torch_fidelity(random_weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                         feature_extractor_weights_path=str(random_weights))
    ours = prepare(InceptionFeatures(torch.load(random_weights, weights_only=True), "x"), "cpu")
    images = torch.randint(0, 256, (3, 3, 40, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        (pool_a, logit_a), (pool_b, logit_b) = theirs(images), ours(images)
    torch.testing.assert_close(pool_b, pool_a, rtol=1e-5, atol=1e-6)
    # each logit sums 2048 products, so its rounding scales with the logits' size (was flaky for ~7% of inputs)
    torch.testing.assert_close(logit_b, logit_a, rtol=1e-5, atol=1e-6 * logit_a.abs().max().item())


# ---- statistics files and the cache ------------------------------------------------------------
def test_stats_file_round_trip_and_network_check(tmp_path):
    x = np.random.default_rng(8).standard_normal((30, 4)).astype(np.float32)
    s = _stats(x)
    meta = {"feature_net": "net-a", "features": "pool", "weights_sha256": "ab" * 32, "resize": "r",
            "precision": "fp32"}
    path = ReferenceStats(s.mu(), s.sigma(), s.n, meta, pool=x).save(tmp_path / "s.npz")
    loaded = ReferenceStats.load(path)
    np.testing.assert_array_equal(loaded.sigma, s.sigma())
    np.testing.assert_array_equal(loaded.pool, x)
    loaded.check_matches(meta, "in here")
    with pytest.raises(DataError, match="Statistics in here were computed with feature net 'net-a'"):
        loaded.check_matches({**meta, "feature_net": "net-b"}, "in here")
    np.savez(tmp_path / "foreign.npz", mu=s.mu(), sigma=s.sigma())
    with pytest.raises(DataError, match="not a gancli statistics file"):
        ReferenceStats.load(tmp_path / "foreign.npz")


def test_reference_statistics_are_cached_and_never_re_read(tmp_path, monkeypatch):
    from gancli.metrics import Evaluator
    from gancli.metrics.generative import features

    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    first = Evaluator(features="builtin", device="cpu", batch_size=20)
    score = first.evaluate("fid", fake="builtin:train:32", real="builtin:test:32", n=40, n_real=40)
    assert first.last_cache == {"real": "miss", "fake": "miss"}
    assert len(list((tmp_path / "cache" / "stats").glob("*.npz"))) == 2

    def no_extraction(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(features, "extract", no_extraction)
    second = Evaluator(features="builtin", device="cpu", batch_size=20)
    again = second.evaluate("fid", fake="builtin:train:32", real="builtin:test:32", n=40, n_real=40)
    assert second.last_cache == {"real": "hit", "fake": "hit"}
    assert again.value == score.value
    assert again.protocol["real"]["statistics"] == "hit"
    # Another number of images is another reference: a miss.
    with pytest.raises(AssertionError, match="cache was not used"):
        second.evaluate("fid", fake="builtin:train:32", real="builtin:test:32", n=40, n_real=30)
    # So is builtin data whose rendering changed (another gancli or torch): its images are fingerprinted.
    from gancli.data import builtin
    render = builtin.render
    monkeypatch.setattr(builtin, "render", lambda *args: 255 - render(*args))
    with pytest.raises(AssertionError, match="cache was not used"):
        second.evaluate("fid", fake="builtin:train:32", real="builtin:test:32", n=40, n_real=40)


def test_generator_evaluator_for_training(tmp_path, monkeypatch):
    """What a recipe's evaluate(G) calls: FID/IS of sampled images against cached reference statistics."""
    from gancli.data.builtin import BuiltinImages
    from gancli.metrics import GeneratorEvaluator

    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    data = BuiltinImages("train", 32)

    def sample(n, generator):  # a "generator" that draws real builtin images, in [-1, 1]
        index = torch.randint(0, 1000, (n,), generator=generator)
        return torch.stack([data[int(i)][0] for i in index]).float() / 127.5 - 1

    def noise(n, generator):
        return torch.rand(n, 3, 32, 32, generator=generator) * 2 - 1

    evaluate = GeneratorEvaluator("builtin:test:32", n=60, n_real=100, features="builtin", device="cpu",
                                  batch_size=25)
    good, bad = evaluate(sample), evaluate(noise)
    assert 0 <= good["fid"] < bad["fid"] and good["is"] > bad["is"]
    assert good["features"] == "builtin-cnn-v1" and good["protocol"] == "60 fake vs 100 real (builtin:test:32)"
    assert len(list((tmp_path / "cache" / "stats").glob("*.npz"))) == 1  # the reference, computed once


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("engine,precision,layout,tolerance", [
    ("eager", "fp32", "channels_last", 1e-4), ("fused", "fp32", "channels_last", 1e-4),
    ("fused", "fp32", "contiguous", 1e-4), ("compile", "fp32", "channels_last", 1e-4),
    ("fused", "tf32", "channels_last", 1e-2), ("eager", "bf16", "channels_last", 0.1)])
def test_gpu_engines_agree_with_torch_fidelity(random_weights, monkeypatch, engine, precision, layout, tolerance):
    """On the GPU, in IEEE fp32 (torch-fidelity with TF32 off too), every engine gives torch-fidelity's FID to 1e-4.

    tf32 and bf16 only have to stay within 1% and 10% here; `gancli bench eval --precision all` reports how far
    they move.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from gancli.metrics.generative.bench import make_images
    from gancli.metrics.generative.features import extract, load_inception

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    images = make_images(200, 32, seed=5)
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=str(random_weights)).cuda()
    with torch.no_grad():
        pool_theirs = torch.cat([theirs(part.cuda())[0] for part in images.split(50)]).cpu().numpy()
    net = prepare(load_inception(random_weights), "cuda", precision, engine, layout)
    pool_ours = extract(net, images.split(50), keep_pool=True).pool

    def fid(pool):
        a, b = _stats(pool[:100].astype(np.float64)), _stats(pool[100:].astype(np.float64))
        return gen.fid_from_stats(a.mu(), a.sigma(), b.mu(), b.sigma())

    assert fid(pool_ours) == pytest.approx(fid(pool_theirs), rel=tolerance)


@pytest.mark.parametrize("name", ["Mixed_5b", "Mixed_6a", "Mixed_6b", "Mixed_7a", "Mixed_7b", "Mixed_7c"])
def test_each_rewritten_block_computes_torch_fidelitys_block(name):
    """Stacked 1×1 convolutions, pool after convolution, one concatenation: the same block, up to rounding."""
    import copy

    from gancli.metrics.generative.features import inception_skeleton
    from gancli.metrics.generative.inception_blocks import InceptionBlock, fold_and_rewrite

    net = inception_skeleton()
    net.load_state_dict(random_inception_state_dict(3))
    net.eval()
    block = getattr(net, name)
    holder = torch.nn.Module()
    holder.block = copy.deepcopy(block)
    fold_and_rewrite(holder)
    assert isinstance(holder.block, InceptionBlock)
    channels = {"Mixed_5b": 192, "Mixed_6a": 288, "Mixed_6b": 768, "Mixed_7a": 768, "Mixed_7b": 1280,
                "Mixed_7c": 2048}[name]
    x = torch.relu(torch.randn(2, channels, 9, 9, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        expected, got = block(x), holder.block(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_fused_engine_on_the_cpu_equals_eager(random_weights, layout):
    """On the CPU 'fused' is oneDNN's one-kernel conv+bias+ReLU: the same features as the eager conv then ReLU,
    in either activation layout."""
    from gancli.metrics.generative.features import load_inception

    fused = prepare(load_inception(random_weights), "cpu", "fp32", "fused", layout)
    eager = prepare(load_inception(random_weights), "cpu")
    assert fused.engine == "fused" and eager.engine == "eager"
    images = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    first = fused.stages()[0][1](images)  # the network's input, in the layout asked for
    assert first.is_contiguous(memory_format=torch.channels_last if layout == "channels_last" else
                               torch.contiguous_format)
    with torch.no_grad():
        (pool_f, logits_f), (pool_e, logits_e) = fused(images), eager(images)
    torch.testing.assert_close(pool_f, pool_e, rtol=1e-5, atol=1e-6)
    # logits are 2048-term float32 sums of size ~20: rounding scales with the largest (1.14e-5 seen at atol 1e-5)
    torch.testing.assert_close(logits_f, logits_e, rtol=1e-5, atol=1e-6 * float(logits_e.abs().max()))


def test_engine_errors(random_weights, monkeypatch):
    from gancli.metrics.generative.features import load_inception

    with pytest.raises(ConfigError, match="--engine must be one of"):
        prepare(load_inception(random_weights), "cpu", "fp32", "tensorrt")
    with pytest.raises(ConfigError, match="--memory-format must be one of channels_last, contiguous"):
        prepare(load_inception(random_weights), "cpu", "fp32", "eager", "nhwc")
    for precision in ("tf32", "bf16"):
        with pytest.raises(ConfigError, match=f"--precision {precision} needs a CUDA device; use fp32 on the CPU"):
            prepare(load_inception(random_weights), "cpu", precision)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--engine fused needs cuDNN or oneDNN, which this cpu device lacks"):
        prepare(load_inception(random_weights), "cpu", "fp32", "fused")


def test_compile_engine_equals_eager_on_the_cpu(random_weights):
    """The whole computation compiled as one graph (about 35 s here): eager's features up to float rounding."""
    from gancli.metrics.generative.features import load_inception

    eager = prepare(load_inception(random_weights), "cpu")
    compiled = prepare(load_inception(random_weights), "cpu", "fp32", "compile")
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        (pool_e, logits_e), (pool_c, logits_c) = eager(images), compiled(images)
        pool_short, _ = compiled(images[:2])  # padded to the compiled batch, not compiled again
    assert compiled.compiled_batch == 3
    torch.testing.assert_close(pool_c, pool_e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits_c, logits_e, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pool_short, pool_e[:2], rtol=1e-5, atol=1e-6)


def test_compile_engine_pads_a_short_last_batch_instead_of_recompiling(random_weights):
    """The compiled network sees one batch shape; the padding never changes the features of real images."""
    from gancli.metrics.generative.features import load_inception

    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    eager = prepare(load_inception(random_weights), "cpu", "fp32", "eager")
    padded = prepare(load_inception(random_weights), "cpu", "fp32", "eager")
    padded.engine = "compile"  # the padding path, without paying for a compilation in the test
    shapes = []
    padded.layers.register_forward_pre_hook(lambda module, args: shapes.append(args[0].shape[0]))
    with torch.no_grad():
        first, short = padded(images[:3]), padded(images[3:])
        reference = eager(images)
    assert shapes == [3, 3]
    assert short[0].shape == (2, 2048) and short[1].shape == (2, 1008)
    torch.testing.assert_close(torch.cat([first[0], short[0]]), reference[0], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.backends.cudnn.is_available(), reason="this torch build has no cuDNN")
def test_cudnn_flags_are_set_for_extraction_and_restored():
    from gancli.metrics.generative.features import cudnn_flags

    flags = lambda: (torch.backends.cudnn.benchmark, torch.backends.cudnn.benchmark_limit,
                     torch.backends.cudnn.allow_tf32)
    before = flags()
    with cudnn_flags(benchmark=True, tf32=False):
        assert flags()[:2] == (True, 0) and not flags()[2]  # time every kernel; IEEE float32 convolutions
    assert flags() == before
    with cudnn_flags(benchmark=True, tf32=True):
        assert flags()[2]
    with pytest.raises(KeyError), cudnn_flags(benchmark=True, tf32=not before[2]):
        raise KeyError  # restored on the way out of an error too
    assert flags() == before


@pytest.mark.parametrize("precision,tf32", [("fp32", False), ("tf32", True), ("bf16", False)])
def test_extraction_runs_under_its_precisions_convolution_arithmetic(precision, tf32, monkeypatch):
    """'fp32' turns TF32 off while the network runs, even where PyTorch's default turns it on; 'tf32' turns it on."""
    from gancli.metrics.judges.builtin_classifier import load_builtin_features
    from gancli.metrics.generative.features import extract

    net = prepare(load_builtin_features(), "cpu")
    net.precision = precision  # what prepare() sets on a CUDA device
    seen = []
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x: (seen.append(torch.backends.cudnn.allow_tf32), forward(x))[1])
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", not tf32)
    extract(net, [torch.zeros(2, 3, 32, 32, dtype=torch.uint8)] * 2)
    assert seen == [tf32, tf32] and torch.backends.cudnn.allow_tf32 is (not tf32)


def test_builtin_features_run_in_bfloat16_when_asked():
    """The builtin network's 'bf16' is real bfloat16 arithmetic, not a label (prepare() allows it on CUDA only)."""
    from gancli.metrics.judges.builtin_classifier import load_builtin_features

    net = load_builtin_features()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pool32 = net(images)[0]
        net.precision = "bf16"
        pool16 = net(images)[0]
    assert pool16.dtype == torch.float32 and not torch.equal(pool16, pool32)
    torch.testing.assert_close(pool16, pool32, rtol=0.05, atol=0.05)
