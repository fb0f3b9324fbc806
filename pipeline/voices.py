"""A persistent library of named voices, so clients embed a clip once and then synthesize by name or id.

Voices live in one SQLite file (standard library only) that survives restarts and can be shared by
several server processes: WAL lets readers run while one writes, and UNIQUE constraints keep names
unique even across processes. Embeddings are stored as 128 little-endian float32 values, the
precision the speaker conditioner uses, so what comes back is exactly the float32 of what went in.

Voice names (`clean_voice_name`): surrounding whitespace is dropped, and what is left must be 1 to
MAX_NAME_LENGTH (64) characters, each a letter (any script), a combining mark (so accents and
scripts such as Devanagari work), a decimal digit, a space, '-', '_' or '.', with at least one
letter or digit. The reason: a name stands in for an id in URLs (GET /v1/voices/{name}), so it
must survive as one path segment: no '/', no '?' or '#', and no "." or ".." that clients rewrite.
Only new names are checked: a voice stored under an older, looser rule is still listed, fetched
by id or name, and deleted.

A voice may carry a default language (`language`, an espeak-ng code as pipeline.text.check_language
accepts it, stored canonical; NULL when none), which the API uses for a request with this voice that
names no language. Files of schema version 1 (no such column) gain it when opened (`_migrate`).

Shutdown and backups: `close()` (or leaving a `with VoiceStore(...)` block) checkpoints the WAL
into the main file, which then holds every voice on its own. While a store is open the recent
writes live in the "-wal" file beside it, so copying the main file alone is not a backup; use
`backup(path)` (SQLite's online backup: a consistent snapshot, safe while the server runs).

OpenAI's built-in voice names (OPENAI_VOICES: alloy, ash, ...) are fixed voices (`BuiltinVoices`):
each is bound by configuration to a library voice or a clip, or else is a synthetic embedding
derived from the name alone (`synthetic_embedding`), so a name gives the same speaker conditioning
on every request and every segment instead of the model's unconditional speaker, whose voice
follows the sampling seed.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.text import LANGUAGE_DESCRIPTION, LanguageCode, check_language

EMBEDDING_DIM = 128
MAX_NAME_LENGTH = 64
SCHEMA_VERSION = 2  # 1: the voices table; 2: its `language` column
# Explicit byte order so a file written on one machine reads back the same on any other.
_FLOAT32 = np.dtype("<f4")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS voices (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    embedding BLOB NOT NULL
)
"""
_COLUMNS = "id, name, created_at, embedding, language"
NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} letters (any script, accents included), digits, spaces, '-', '_' or '.', "
    "with at least one letter or digit"
)
_NAME_PUNCTUATION = frozenset(" -_.")

# OpenAI's built-in voice names, in the order its API reference lists them (openai-python
# speech_create_params.py; ../shared/docs/openai-speech-api.md section 1.1).
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"
)  # fmt: skip
# Changing it changes every unbound built-in voice: the version is part of the hashed text.
SYNTHETIC_VOICE_KEY = "zonos-serve synthetic voice v1"


class VoiceNotFoundError(KeyError):
    """No voice has the id or name that was asked for (a KeyError, so lookups read like a mapping's)."""

    def __init__(self, ref: str):
        super().__init__(f"voice {ref!r} not found")
        self.ref = ref

    def __reduce__(self):  # rebuilt from `ref`, not the message, when it crosses a process (Ray)
        return type(self), (self.ref,)

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; the message reads better without.
        return self.args[0]


class DuplicateVoiceNameError(ValueError):
    """Another voice already has this name; names are unique so they can stand in for ids."""

    def __init__(self, name: str):
        super().__init__(f"a voice named {name!r} already exists")
        self.name = name

    def __reduce__(self):  # rebuilt from `name`, not the message, when it crosses a process (Ray)
        return type(self), (self.name,)


class InvalidVoiceNameError(ValueError):
    """A new voice's name breaks the naming rule (NAME_RULE); the message says how, and the rule."""


class VoiceInfo(BaseModel):
    """A library voice as APIs show it: everything but the embedding."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    created_at: int = Field(description="Unix seconds when the voice was added.")
    object: Literal["voice"] = "voice"
    language: LanguageCode | None = Field(
        None,
        description="The voice's default language, for requests that give none; null when it has none. "
        + LANGUAGE_DESCRIPTION,
    )


class Voice(VoiceInfo):
    """One stored voice; `public()` drops the 128 floats for APIs."""

    embedding: list[float] = Field(repr=False, description="The 128-float speaker embedding.")

    def public(self) -> dict[str, Any]:
        return self.model_dump(exclude={"embedding"})


def clean_voice_name(name: Any) -> str:
    """`name` without surrounding whitespace, if it is a valid voice name (the module docstring's
    rule), else InvalidVoiceNameError saying which part of NAME_RULE it breaks."""
    if not isinstance(name, str):
        raise InvalidVoiceNameError(f"voice name must be a string, got {type(name).__name__}")
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= MAX_NAME_LENGTH:
        raise InvalidVoiceNameError(
            f"voice name must be {NAME_RULE}; got {len(cleaned)} characters once surrounding whitespace is dropped"
        )
    for char in cleaned:
        if not _name_char(char):
            raise InvalidVoiceNameError(
                f"voice name may not contain {char!r} (U+{ord(char):04X}): it must be {NAME_RULE}"
            )
    if not any(unicodedata.category(char)[0] == "L" or unicodedata.category(char) == "Nd" for char in cleaned):
        raise InvalidVoiceNameError(f"voice name {cleaned!r} has no letter or digit: it must be {NAME_RULE}")
    return cleaned


def _name_char(char: str) -> bool:
    """Letters (L*), combining marks (M*), decimal digits (Nd), or one of " -_."."""
    category = unicodedata.category(char)
    return char in _NAME_PUNCTUATION or category[0] in "LM" or category == "Nd"


def _embedding_bytes(embedding: Any) -> bytes:
    """Any 128-float sequence (list, numpy array, torch tensor on any device) -> the float32 BLOB."""
    if hasattr(embedding, "detach"):  # a torch tensor, without importing torch here
        embedding = embedding.detach().cpu()
    try:
        values = np.asarray(embedding, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"embedding must be {EMBEDDING_DIM} numbers: {error}") from None
    if values.shape != (EMBEDDING_DIM,):
        raise ValueError(f"embedding must be a flat sequence of {EMBEDDING_DIM} floats, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("embedding must not contain NaN or infinity")
    with np.errstate(over="ignore"):
        as_float32 = values.astype(_FLOAT32)
    if not np.isfinite(as_float32).all():
        raise ValueError("embedding values must fit in float32 (|x| < 3.4e38)")
    return as_float32.tobytes()


def _voice(row: tuple) -> Voice:
    id_, name, created_at, blob, language = row
    embedding = np.frombuffer(blob, _FLOAT32).tolist()
    return Voice(id=id_, name=name, created_at=created_at, embedding=embedding, language=language)


class VoiceStore:
    """Voices in a SQLite file (or ":memory:"), safe to share between threads.

    One connection serves all threads, guarded by a lock: SQLite serializes writes anyway, and a
    single connection is what keeps a ":memory:" database one database. Close it when done
    (`close()`, or use it as a context manager): closing checkpoints the WAL into the main file.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)
        self._in_memory = in_memory = self.path == ":memory:"
        self._closed = False
        if not in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every statement is its own transaction unless we BEGIN one.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        if not in_memory:
            self._conn.execute("PRAGMA journal_mode=WAL")
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION; PRAGMA user_version records where a file stands.
        Version 1 -> 2 adds the `language` column (ALTER TABLE ... ADD COLUMN, unless a column of that
        name is there already), NULL for every voice stored before."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # two processes opening a new file migrate one at a time
            try:
                (version,) = self._conn.execute("PRAGMA user_version").fetchone()
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has voice schema version {version}; this code knows up to {SCHEMA_VERSION}"
                    )
                if version < 1:
                    self._conn.execute(_SCHEMA)
                if version < 2 and "language" not in self._column_names():
                    self._conn.execute("ALTER TABLE voices ADD COLUMN language TEXT")  # NULL: no default language
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _column_names(self) -> set[str]:
        return {row[1] for row in self._conn.execute("PRAGMA table_info(voices)")}

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def add(self, name: str, embedding: Any, language: str | None = None) -> Voice:
        """Store a new voice under a fresh random id; the name is stripped, must follow NAME_RULE
        (else InvalidVoiceNameError) and must be unused (else DuplicateVoiceNameError). `language`,
        the voice's default language, is stored as check_language's espeak-ng code ("fr" -> "fr-fr";
        UnsupportedLanguageError, a ValueError, when it names none); None: no default language."""
        name = clean_voice_name(name)
        language = None if language is None else check_language(language)
        blob = _embedding_bytes(embedding)
        row = (f"voice_{secrets.token_hex(8)}", name, int(time.time()), blob, language)
        try:
            self._query(f"INSERT INTO voices ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", row)
        except sqlite3.IntegrityError as error:
            if "voices.name" in str(error):
                raise DuplicateVoiceNameError(name) from None
            raise
        return _voice(row)

    def get(self, ref: str) -> Voice:
        """The voice with this id, else the one with exactly this name (not checked against
        NAME_RULE, so voices named under an older rule are still found)."""
        # One statement, so a concurrent delete cannot fall between the two lookups; the id match sorts first.
        rows = self._query(
            f"SELECT {_COLUMNS} FROM voices WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1", (ref,)
        )
        if not rows:
            raise VoiceNotFoundError(ref)
        return _voice(rows[0])

    def embedding(self, ref: str) -> list[float]:
        """Just the 128 floats of the voice with this id or name, as synthesis takes them."""
        return self.get(ref).embedding

    def list(self) -> list[Voice]:
        """All voices, oldest first (in the order they were added)."""
        return [_voice(row) for row in self._query(f"SELECT {_COLUMNS} FROM voices ORDER BY seq")]

    def delete(self, voice_id: str) -> None:
        """Remove the voice with this id; its name becomes free again."""
        with self._lock:
            deleted = self._conn.execute("DELETE FROM voices WHERE id = ?", (voice_id,)).rowcount
        if not deleted:
            raise VoiceNotFoundError(voice_id)

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """Write a consistent snapshot of the whole library to a new SQLite file at `path`; returns its path.

        Safe while the store is in use, by this or another process: it is SQLite's online backup
        (`sqlite3.Connection.backup`), which copies a committed state of the database, WAL included,
        whereas copying the main file alone misses what is still in the "-wal" file beside it. The
        copy is a plain single file (rollback journal, not WAL) that `VoiceStore(path)` opens as a
        library. `path` must not exist (a backup never overwrites, least of all the live file); the
        snapshot is written to a temporary file beside it and renamed into place, so `path` never
        holds half a backup.
        """
        target = Path(path)
        if target.exists():
            raise FileExistsError(f"backup target {target} exists; a backup never overwrites a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            copy = sqlite3.connect(partial)
            try:
                with self._lock:
                    self._conn.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def close(self) -> None:
        """Checkpoint the WAL into the main file (PRAGMA wal_checkpoint(TRUNCATE)) and close.

        After this the main file holds every voice on its own and the "-wal" file is empty, so a
        file copy or a crash of another process sharing the library loses nothing. Closing twice
        is a no-op (the Voices deployment closes from `__del__`, which may run more than once).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if not self._in_memory:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()

    def __enter__(self) -> VoiceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- OpenAI's built-in names


def synthetic_embedding(name: str) -> list[float]:
    """The fixed 128-float speaker embedding of a built-in voice name that no configuration binds.

    A pure function of `name`: the same on every call, in every process, on every machine. Value i
    is an Irwin-Hall sum of 4 uniforms on (0, 1) (16 bits each, from SHAKE-256 of
    SYNTHETIC_VOICE_KEY, a NUL and the name in UTF-8), centred and scaled to mean 0 and variance 1,
    so within +-2*sqrt(3). The sums are exact in float64 and the scaling and the final float32
    rounding are single IEEE operations, so no libm, BLAS or Python hash seed can change a bit.
    Distinct names give distinct embeddings (the same would need 1024 bits of SHAKE-256 to agree).

    It is an arbitrary point of the embedding space, not a designed voice: with real weights it
    pins one speaker per name; deployments that care how a name sounds bind it to a real voice
    (AppConfig.voice_bindings).
    """
    text = f"{SYNTHETIC_VOICE_KEY}\0{name}".encode("utf-8", "surrogatepass")
    draws = np.frombuffer(hashlib.shake_256(text).digest(EMBEDDING_DIM * 4 * 2), "<u2").reshape(EMBEDDING_DIM, 4)
    uniforms = (draws.astype(np.float64) + 0.5) / 65536.0
    return ((uniforms.sum(axis=1) - 2.0) * math.sqrt(3.0)).astype(_FLOAT32).tolist()


def is_clip_binding(target: str) -> bool:
    """Whether a voice binding's target is a clip's path: it holds a '/', which no voice name may
    hold (NAME_RULE), so a bare file name is written "./me.wav"."""
    return "/" in target


def check_voice_binding(name: str, target: Any) -> str:
    """`target` without surrounding whitespace, if built-in voice `name` may be bound to it; else a
    ValueError saying why (InvalidVoiceNameError for a library name against NAME_RULE).

    `name` must be one of OPENAI_VOICES. `target` is a clip's path (is_clip_binding) or a library
    voice's id or name. A library voice named under an older rule that allowed '/' is bound by its id.
    """
    if name not in OPENAI_VOICES:
        raise ValueError(f"{name!r} is not one of OpenAI's built-in voice names: {', '.join(OPENAI_VOICES)}")
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"{name!r} must be bound to a library voice's id or name, or to a clip's path")
    target = target.strip()
    if is_clip_binding(target):
        return target
    try:
        return clean_voice_name(target)
    except InvalidVoiceNameError as error:
        raise InvalidVoiceNameError(f"{name!r} -> {target!r} is no clip path (no '/') and {error}") from None


class BuiltinVoices:
    """OpenAI's built-in voice names as fixed voices: one name, one embedding, on every call.

    `embedding(name, library)` resolves a name of OPENAI_VOICES; the first rule that applies wins:

    1. bound to a clip: the clip's embedding, computed once, here, by `embed_clip(path)`;
    2. bound to a library voice: that voice's embedding, looked up on every call (a voice deleted and
       made again under the bound name is followed); None while the library has no such voice;
    3. unbound, and a library voice has the name itself: that voice's embedding;
    4. unbound: synthetic_embedding(name).

    So the operator's configuration wins over a library voice that a client named like a built-in
    voice, and such a voice wins over the synthetic one (the way to bind a name without restarting).
    `bindings` maps names to targets as AppConfig.voice_bindings does (check_voice_binding); a clip
    that cannot be embedded is a ValueError naming the binding, so a server fails at start, not later.
    """

    def __init__(
        self, bindings: Mapping[str, str] | None = None, embed_clip: Callable[[str], Sequence[float]] | None = None
    ):
        self.bindings = {name: check_voice_binding(name, target) for name, target in (bindings or {}).items()}
        self._clips: dict[str, list[float]] = {}
        for name, target in self.bindings.items():
            if not is_clip_binding(target):
                continue
            if embed_clip is None:
                raise ValueError(f"voice binding {name!r} -> clip {target!r}: nothing here embeds clips")
            try:
                self._clips[name] = _float32_values(embed_clip(target))
            except (OSError, ValueError) as error:
                raise ValueError(f"voice binding {name!r} -> clip {target!r}: {error}") from error

    def embedding(self, name: str, library: Callable[[str], Sequence[float] | None]) -> list[float] | None:
        """The embedding `name` stands for (the class docstring's rules). `library(ref)` is the voice
        library's embedding of the voice with id or name `ref`, None when there is none.
        VoiceNotFoundError when `name` is not a built-in voice name."""
        if name not in OPENAI_VOICES:
            raise VoiceNotFoundError(name)
        if name in self._clips:
            return list(self._clips[name])
        target = self.bindings.get(name)
        found = library(target if target is not None else name)
        if found is not None:
            return list(found)
        return None if target is not None else synthetic_embedding(name)


def _float32_values(embedding: Any) -> list[float]:
    """128 floats as the library stores them (rounded to float32), checked as VoiceStore.add checks them."""
    return np.frombuffer(_embedding_bytes(embedding), _FLOAT32).tolist()
