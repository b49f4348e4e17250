import pytest

from gancli import api
from gancli.config import TrainConfig, apply_overrides, parse_set, validate
from gancli.errors import ConfigError


def test_offline_preset_is_used_without_data(tmp_path):
    cfg = api.make_config("uncond", out=str(tmp_path / "r"))
    assert cfg.preset == "quick" and cfg.data == "" and cfg.steps == 1200


def test_precedence_preset_file_options_sets(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('steps = 7\nbatch_size = 5\nlr_d = 0.5\n')
    cfg = api.make_config("uncond", preset="quick", config_file=toml, out=str(tmp_path / "r"),
                          batch_size=6, sets={"lr_d": "0.25"})
    assert (cfg.steps, cfg.batch_size, cfg.lr_d, cfg.width) == (7, 6, 0.25, 0.25)


def test_types_are_coerced_and_checked():
    cfg = apply_overrides(TrainConfig(), {"steps": "10", "ema": "no", "betas_g": "0,0.999", "lr_g": "1e-4"}, "t")
    assert cfg.steps == 10 and cfg.ema is False and cfg.betas_g == [0.0, 0.999] and cfg.lr_g == 1e-4
    with pytest.raises(ConfigError, match="expects a value of type int"):
        apply_overrides(TrainConfig(), {"steps": "ten"}, "t")
    with pytest.raises(ConfigError, match="expects a value of type int"):
        apply_overrides(TrainConfig(), {"steps": "2.5"}, "t")
    with pytest.raises(ConfigError, match="Unknown config key 'stepz'"):
        apply_overrides(TrainConfig(), {"stepz": 1}, "t")


@pytest.mark.parametrize("key,value,message", [
    ("steps", 0, "positive"), ("batch_size", -2, "positive"), ("n_dis", -1, "negative"),
    ("precision", "fp16", "one of"), ("betas_g", [0.5], "two numbers"), ("norm_ratio", 0.0, "(0, 1]"),
    ("lr_milestones", [1.5], "fractions"),
])
def test_validate_rejects_impossible_values(key, value, message):
    cfg = apply_overrides(TrainConfig(), {key: value}, "t")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        validate(cfg)


def test_parse_set():
    assert parse_set(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["novalue"])


def test_a_norm_the_user_names_comes_without_the_presets_tuning_of_its_norm():
    """`--norm san` is SAN as the paper defines it whatever the preset tuned (issue 28 §4)."""
    from gancli import api

    preset = api.make_config("spade", preset="original", out="-")
    assert (preset.norm, preset.norm_ratio, preset.norm_gain) == ("sn", 1.0, 0.0)
    for given in ({"sets": {"norm": "san"}}, {"norm": "san"}):
        cfg = api.make_config("spade", preset="original", out="-", **given)
        assert (cfg.norm, cfg.norm_ratio, cfg.norm_gain) == ("san", 0.25, 1.3)  # the SAN paper's SPADE (§4.2)
        assert cfg.image_size == preset.image_size  # the rest of the preset stays
    kept = api.make_config("spade", preset="original", out="-", sets={"norm": "san", "norm_gain": 2.0})
    assert (kept.norm_ratio, kept.norm_gain) == (0.25, 2.0)  # what the user sets is kept
