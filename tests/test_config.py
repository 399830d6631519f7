"""Strict configs: unknown keys, wrong types and out-of-range values are clear errors."""

from dataclasses import dataclass

import pytest

from nml.config import Config, check_range
from nml.errors import ConfigError


@dataclass(frozen=True)
class Example(Config):
    noise: float = 0.0
    epochs: int = 3
    name: str = "a"
    augment: bool = False
    lr: float | None = None
    sizes: tuple[int, ...] = (1, 2)

    def validate(self):
        check_range("noise", self.noise, 0.0, 1.0, hi_inclusive=False)


def test_defaults_and_int_widened_to_float():
    cfg = Example.from_dict(noise=0)
    assert cfg.noise == 0.0 and isinstance(cfg.noise, float)
    assert cfg.replace(epochs=5).epochs == 5


def test_unknown_key_names_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['nosie'\].*valid keys are: noise"):
        Example.from_dict(nosie=0.1)


@pytest.mark.parametrize("key,value", [("noise", "0.1"), ("epochs", 2.5), ("epochs", True),
                                       ("augment", 1), ("name", 3), ("sizes", [1, "x"])])
def test_wrong_type(key, value):
    with pytest.raises(ConfigError, match=f"config key '{key}' must be"):
        Example.from_dict({key: value})


@pytest.mark.parametrize("noise", [1.0, 1.5, -0.1])
def test_out_of_range(noise):
    with pytest.raises(ConfigError, match="out of range"):
        Example.from_dict(noise=noise)


def test_hash_is_stable_and_depends_on_values():
    a, b = Example(), Example.from_dict(sizes=[1, 2])
    assert a.hash() == b.hash()
    assert a.hash() != a.replace(noise=0.05).hash()
    assert a.to_dict()["sizes"] == [1, 2]


def test_scale_descriptions_state_the_scales_own_epochs():
    """The caption text of a CPU scale repeats its epoch counts; it must say what runs."""
    from nml.experiments import SCALES
    for name in ("cpu", "cpu_seeds"):
        scale = SCALES[name]
        assert f"{scale.pretrain_epochs} epochs" in scale.description
        assert f"{scale.tune_epochs} black-box tuning epochs" in scale.description
    cpu = SCALES["cpu"]
    assert (f"{cpu.whitebox_epochs} LoRA / FT epochs on at most "
            f"{cpu.whitebox_train_limit:,} train images") in cpu.description
