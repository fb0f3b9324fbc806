"""Voices: the voice library. A clip in -> speaker embedding -> SQLite; one replica owns the file,
so every other replica reads the same library, and it survives restarts (put it on a volume).

`voices_db` is resolved by deployments.config.data_path (relative: under $ZONOS_DATA_DIR, else
~/.local/share/zonos-serve; never the working directory) and logged at start. On graceful
shutdown Serve calls `__del__`, which checkpoints the WAL into the main file and closes it.
`backup(path)` writes a consistent snapshot while the replica serves.

OpenAI's built-in voice names are resolved here too (`builtin_embedding`, pipeline.voices.
BuiltinVoices): `voice_bindings` (AppConfig's) clips are read and embedded once at start, on this
replica's node (a relative path resolves as voices_db's), and the replica fails to start, naming
the binding, when one cannot be; library bindings are looked up on every request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ray import serve
from ray.serve.metrics import Counter

from deployments.config import ModelSources, data_path
from deployments.models import load_with_fallback
from deployments.ray_errors import log_client_errors_at_info
from pipeline.speaker import SpeakerEncoder
from pipeline.text import check_language
from pipeline.voices import BuiltinVoices, VoiceNotFoundError, VoiceStore, clean_voice_name, is_clip_binding

logger = logging.getLogger("ray.serve")


@serve.deployment
class Voices:
    def __init__(self, sources: ModelSources, voices_db: str, voice_bindings: Mapping[str, str] | None = None):
        log_client_errors_at_info()  # Serve logs 4xx-type errors at INFO, no traceback
        path = data_path(voices_db)
        logger.info("voice library: %s (voices_db %r)", path, voices_db)
        self.store = VoiceStore(path)

        def load(source: str) -> SpeakerEncoder:
            return SpeakerEncoder.from_pretrained(source, device=sources.device)

        self.encoder, self.real_weights = load_with_fallback(load, sources.speaker, sources.fallback, "speaker encoder")
        # Counters, not a hit-rate gauge (Ray exports a gauge only for a while after it is set): the dashboard
        # computes the rate as rate(hits) / rate(lookups), over any window, summed over replicas.
        self._cache_hits = Counter(
            "zonos_speaker_cache_hits_total", "Voice clips whose embedding came from the embedding cache."
        )
        self._cache_lookups = Counter("zonos_speaker_cache_lookups_total", "Voice clips embedded (cache hits or not).")
        self._counted = (0, 0)  # the encoder's (hits, misses) already counted
        self.builtins = BuiltinVoices(voice_bindings, lambda path: self.encoder.embed_file(data_path(path)))
        for name, target in self.builtins.bindings.items():
            if is_clip_binding(target):
                logger.info("voice %r: the clip %s (embedded)", name, data_path(target))
            elif self.embedding(target) is None:
                logger.warning("voice %r is bound to library voice %r, which is not in the library (yet)", name, target)
            else:
                logger.info("voice %r: library voice %r", name, target)
        self._count_cache()  # the bound clips embedded just now

    async def embed_clip(self, clip: bytes) -> list[float]:
        """A clip's file bytes in any format FFmpeg decodes (wav, flac, mp3, ogg, webm, m4a, ...) -> 128 floats.

        A clip that is not audio, or not 1-60 s of audible sound, raises InvalidAudioError (a
        ValueError) whose message says what was read; decoding runs in a worker thread."""
        embedding = await asyncio.to_thread(self.encoder.embed_file, clip)
        self._count_cache()
        return embedding.tolist()

    def _count_cache(self) -> None:
        """Add to the counters the encoder's cache lookups since the last call (concurrent embeddings,
        bound clips embedded at start, included)."""
        info = self.encoder.cache_info()
        last_hits, last_misses = self._counted
        if info.hits < last_hits or info.misses < last_misses:  # the encoder's cache was cleared: it counts anew
            last_hits = last_misses = 0
        self._counted = (info.hits, info.misses)
        hits, misses = info.hits - last_hits, info.misses - last_misses
        if hits:  # Ray's Counter.inc takes only a positive value
            self._cache_hits.inc(hits)
        if hits + misses:
            self._cache_lookups.inc(hits + misses)

    async def create(self, name: str, clip: bytes, language: str | None = None) -> dict:
        """A new voice from a clip, with `language` its default language (None: none). The name and
        the language are checked first (InvalidVoiceNameError, UnsupportedLanguageError), so a bad one
        costs no decoding; DuplicateVoiceNameError when the name is taken."""
        name = clean_voice_name(name)
        language = None if language is None else check_language(language)
        embedding = await self.embed_clip(clip)
        return self.store.add(name, embedding, language).public()

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

    def builtin_embedding(self, name: str) -> list[float] | None:
        """OpenAI built-in voice `name` -> its fixed embedding (BuiltinVoices' rules: a bound clip or
        library voice, else a library voice of that name, else the name's synthetic embedding); None
        when it is bound to a library voice that is not in the library."""
        return self.builtins.embedding(name, self.embedding)

    def delete(self, voice_id: str) -> bool:
        try:
            self.store.delete(voice_id)
        except VoiceNotFoundError:
            return False
        return True

    def backup(self, path: str) -> str:
        """Write a consistent snapshot of the library to a new file at `path` (a relative path as
        voices_db's); returns its absolute path. Safe while the replica serves (VoiceStore.backup);
        `path` is on this replica's node and must not exist."""
        target = str(self.store.backup(data_path(path)))
        logger.info("voice library backed up to %s", target)
        return target

    def __del__(self):
        """Serve calls this on graceful shutdown (Python may again when collecting): checkpoint the
        WAL into the main file and close it, so the file on the volume holds every voice alone."""
        store = getattr(self, "store", None)  # absent when __init__ failed before opening it
        if store is not None:
            store.close()
