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
    """TextSplitter -> Generator -> Vocoder, with the voice library, behind the HTTP/handle ingress."""
    config = AppConfig.model_validate(args).model_dump()
    return Ingress.bind(TextSplitter.bind(), Generator.bind(config), Vocoder.bind(config), Voices.bind(config), config)
