"""The application builder that Serve configs name: `import_path: deployments.app:build_app`."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.config import AppConfig, DeploymentOptions
from deployments.generator import Generator
from deployments.ingress import Ingress
from deployments.splitter import TextSplitter
from deployments.vocoder import Vocoder
from deployments.voices import Voices

APP_NAME = "zonos-tts"


def deployment_options(config: AppConfig, options: DeploymentOptions, *, loads_models: bool = False) -> dict[str, Any]:
    """The keywords of one deployment's `.options()`: its options from the config, over the app's
    graceful_shutdown_timeout_s; a deployment that loads models gets HF_HUB_OFFLINE=1 in its
    runtime_env's env_vars when `sources.offline` (Serve merges them with the app's env_vars)."""
    given = {"graceful_shutdown_timeout_s": config.graceful_shutdown_timeout_s} | options.serve_options()
    if loads_models and config.sources.offline:
        actor = dict(given.get("ray_actor_options") or {})
        runtime_env = dict(actor.get("runtime_env") or {})
        runtime_env["env_vars"] = dict(runtime_env.get("env_vars") or {}) | {"HF_HUB_OFFLINE": "1"}
        given["ray_actor_options"] = actor | {"runtime_env": runtime_env}
    return given


def build_app(args: dict) -> Application:
    """TextSplitter -> Generator -> Vocoder, with the voice library, behind the HTTP/handle ingress.

    `args` is validated once as an AppConfig. Each deployment gets its Serve options from the
    config's field of its name (the batched ones their batch settings as `user_config`, which
    Serve hands to `reconfigure`) and is bound the validated config objects it uses.
    """
    config = AppConfig.model_validate(args)
    splitter = TextSplitter.options(**deployment_options(config, config.splitter))
    generator = Generator.options(
        **deployment_options(config, config.generator, loads_models=True),
        user_config=config.generator_batch.model_dump(),
    )
    vocoder = Vocoder.options(
        **deployment_options(config, config.vocoder, loads_models=True), user_config=config.vocoder_batch.model_dump()
    )
    voices = Voices.options(**deployment_options(config, config.voices, loads_models=True))
    ingress = Ingress.options(**deployment_options(config, config.ingress))
    return ingress.bind(
        splitter.bind(),
        generator.bind(config.sources, config.engine),
        vocoder.bind(config.sources),
        voices.bind(config.sources, config.voices_db, config.voice_bindings),
        config,
    )
