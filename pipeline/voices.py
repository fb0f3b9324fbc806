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

Shutdown and backups: `close()` (or leaving a `with VoiceStore(...)` block) checkpoints the WAL
into the main file, which then holds every voice on its own. While a store is open the recent
writes live in the "-wal" file beside it, so copying the main file alone is not a backup; use
`backup(path)` (SQLite's online backup: a consistent snapshot, safe while the server runs).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

EMBEDDING_DIM = 128
MAX_NAME_LENGTH = 64
SCHEMA_VERSION = 1
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
_COLUMNS = "id, name, created_at, embedding"
NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} letters (any script, accents included), digits, spaces, '-', '_' or '.', "
    "with at least one letter or digit"
)
_NAME_PUNCTUATION = frozenset(" -_.")


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
    id_, name, created_at, blob = row
    return Voice(id=id_, name=name, created_at=created_at, embedding=np.frombuffer(blob, _FLOAT32).tolist())


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
        """Bring the schema to SCHEMA_VERSION; PRAGMA user_version records where a file stands."""
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
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def add(self, name: str, embedding: Any) -> Voice:
        """Store a new voice under a fresh random id; the name is stripped, must follow NAME_RULE
        (else InvalidVoiceNameError) and must be unused (else DuplicateVoiceNameError)."""
        name = clean_voice_name(name)
        blob = _embedding_bytes(embedding)
        row = (f"voice_{secrets.token_hex(8)}", name, int(time.time()), blob)
        try:
            self._query(f"INSERT INTO voices ({_COLUMNS}) VALUES (?, ?, ?, ?)", row)
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
