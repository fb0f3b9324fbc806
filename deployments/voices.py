"""Voices: the voice library. A clip in -> speaker embedding -> SQLite; one replica owns the file,
so every other replica reads the same library, and it survives restarts (put it on a volume)."""

from __future__ import annotations

import asyncio

from ray import serve
from ray.serve.metrics import Gauge

from deployments.config import ModelSources
from deployments.models import load_with_fallback
from pipeline.speaker import SpeakerEncoder
from pipeline.voices import VoiceNotFoundError, VoiceStore


@serve.deployment
class Voices:
    def __init__(self, sources: ModelSources, voices_db: str):
        self.store = VoiceStore(voices_db)

        def load(source: str) -> SpeakerEncoder:
            return SpeakerEncoder.from_pretrained(source, device=sources.device)

        self.encoder, self.real_weights = load_with_fallback(load, sources.speaker, sources.fallback, "speaker encoder")
        self._hit_rate = Gauge("zonos_speaker_cache_hit_rate", "Share of voice clips served from the embedding cache.")

    async def embed_clip(self, clip: bytes) -> list[float]:
        """A clip's file bytes in any format FFmpeg decodes (wav, flac, mp3, ogg, webm, m4a, ...) -> 128 floats.

        A clip that is not audio, or not 1-60 s of audible sound, raises InvalidAudioError (a
        ValueError) whose message says what was read; decoding runs in a worker thread."""
        embedding = await asyncio.to_thread(self.encoder.embed_file, clip)
        info = self.encoder.cache_info()
        self._hit_rate.set(info.hits / max(info.hits + info.misses, 1))
        return embedding.tolist()

    async def create(self, name: str, clip: bytes) -> dict:
        embedding = await self.embed_clip(clip)
        return self.store.add(name, embedding).public()

    def list(self) -> list[dict]:
        return [voice.public() for voice in self.store.list()]

    def get(self, id_or_name: str) -> dict | None:
        try:
            return self.store.get(id_or_name).public()
        except VoiceNotFoundError:
            return None

    def embedding(self, id_or_name: str) -> list[float] | None:
        try:
            return self.store.embedding(id_or_name)
        except VoiceNotFoundError:
            return None

    def delete(self, voice_id: str) -> bool:
        try:
            self.store.delete(voice_id)
        except VoiceNotFoundError:
            return False
        return True
