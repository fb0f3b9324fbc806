"""The batched Zonos generation engine: scheduler, model runner, sampler (a vLLM-style split)."""

from pipeline.engine.engine import EngineConfig, ZonosEngine
from pipeline.engine.request import FrameChunk, GenerationRequest, GenerationResult, SamplingParams

__all__ = ["EngineConfig", "FrameChunk", "GenerationRequest", "GenerationResult", "SamplingParams", "ZonosEngine"]
