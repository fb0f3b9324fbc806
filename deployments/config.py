"""The application's configuration: one pydantic model, filled from `args` in a Serve config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.engine import EngineConfig


class ModelSources(BaseModel):
    """Where each model comes from; `fallback` is used (loudly) when a source cannot be loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "Zyphra/Zonos-v0.1-transformer"
    codec: str = "descript/dac_44khz"
    speaker: str = "Zyphra/Zonos-v0.1-speaker-embedding"
    fallback: Literal["random-tiny"] | None = Field(
        None, description="Load random-tiny models when the real ones cannot be had (the output is NOT speech)."
    )
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="The LM's dtype; auto = bfloat16 on CUDA, float32 on CPU."
    )
    codec_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="The vocoder's dtype; auto = float16 on CUDA, float32 on CPU."
    )


class BatchSettings(BaseModel):
    """@serve.batch knobs; also accepted at run time through a deployment's `user_config`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(32, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(0.01, ge=0.0, le=5.0)


class AppConfig(BaseModel):
    """Everything `deployments.app:build_app` takes as `args`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: ModelSources = Field(default_factory=ModelSources)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    generator_batch: BatchSettings = Field(default_factory=BatchSettings)
    vocoder_batch: BatchSettings = Field(default_factory=lambda: BatchSettings(max_batch_size=16))
    max_text_chars: int = Field(20_000, ge=1)
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    request_timeout_s: float = Field(600.0, gt=0)
    max_queued_requests: int = Field(256, ge=1, description="Requests in flight per ingress replica before 503.")
    voices_db: str = Field("zonos-voices.sqlite3", description="SQLite file of the voice library (use a volume).")
    default_response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
