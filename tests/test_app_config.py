"""AppConfig: the Serve options of each deployment as data, laid over their defaults."""

import pytest
from pydantic import ValidationError

from deployments.config import AppConfig, DeploymentOptions

DEFAULTS = AppConfig()


def test_a_deployment_not_named_keeps_its_defaults():
    config = AppConfig.model_validate({"generator": {"max_ongoing_requests": 384}})
    assert config.voices == DEFAULTS.voices


def test_given_options_replace_the_defaults_key_by_key_and_dicts_whole():
    given = {"max_ongoing_requests": 384, "ray_actor_options": {"num_gpus": 1}}
    options = AppConfig.model_validate({"generator": given}).generator.serve_options()
    assert options == DEFAULTS.generator.serve_options() | given
    assert options["ray_actor_options"] == {"num_gpus": 1}  # whole: the default's num_cpus is gone
    config = AppConfig.model_validate({"ingress": {"max_queued_requests": 100}})
    assert config.ingress.serve_options() == DEFAULTS.ingress.serve_options() | {"max_queued_requests": 100}


def test_autoscaling_given_drops_a_default_num_replicas():
    """Serve refuses both at once: they are one choice."""
    config = AppConfig.model_validate({"voices": {"autoscaling_config": {"min_replicas": 1, "max_replicas": 2}}})
    assert config.voices.num_replicas is None
    assert config.voices.max_ongoing_requests == DEFAULTS.voices.max_ongoing_requests


def test_batch_settings_given_in_part_keep_the_other_default():
    config = AppConfig.model_validate({"vocoder_batch": {"max_batch_size": 32}})
    assert config.vocoder_batch == DEFAULTS.vocoder_batch.model_copy(update={"max_batch_size": 32})


def test_an_object_given_in_python_is_taken_whole():
    options = DeploymentOptions(max_ongoing_requests=8)
    assert AppConfig(splitter=options).splitter.serve_options() == {"max_ongoing_requests": 8}


@pytest.mark.parametrize(
    "args",
    [
        {"generator": {"max_ongoing_request": 8}},  # a misspelt option
        {"generator": {"user_config": {"max_batch_size": 8}}},  # batch settings are generator_batch
        {"ingress": {"max_ongoing_requests": 0}},
        {"workers": {}},  # not a deployment
    ],
)
def test_unknown_or_invalid_options_are_refused(args):
    with pytest.raises(ValidationError):
        AppConfig.model_validate(args)
