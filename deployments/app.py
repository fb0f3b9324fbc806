"""The application builder that Serve configs name: `import_path: deployments.app:build_app`."""

from __future__ import annotations

from ray.serve import Application

from deployments.config import AppConfig
from deployments.generator import Generator
from deployments.ingress import Ingress
from deployments.splitter import TextSplitter
from deployments.vocoder import Vocoder
from deployments.voices import Voices

APP_NAME = "zonos-tts"


def build_app(args: dict) -> Application:
    """TextSplitter -> Generator -> Vocoder, with the voice library, behind the HTTP/handle ingress.

    `args` is validated once as an AppConfig. Each deployment gets its Serve options from the
    config's field of its name (the batched ones their batch settings as `user_config`, which
    Serve hands to `reconfigure`) and is bound the validated config objects it uses.
    """
    config = AppConfig.model_validate(args)
    splitter = TextSplitter.options(**config.splitter.serve_options())
    generator = Generator.options(**config.generator.serve_options(), user_config=config.generator_batch.model_dump())
    vocoder = Vocoder.options(**config.vocoder.serve_options(), user_config=config.vocoder_batch.model_dump())
    voices = Voices.options(**config.voices.serve_options())
    ingress = Ingress.options(**config.ingress.serve_options())
    return ingress.bind(
        splitter.bind(),
        generator.bind(config.sources, config.engine),
        vocoder.bind(config.sources),
        voices.bind(config.sources, config.voices_db),
        config,
    )
