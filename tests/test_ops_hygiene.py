"""Operations: where the voice library lives (voices_db resolution), and the Voices deployment's
start (the path logged), name check, backups and shutdown checkpoint, without Ray running."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from deployments.config import AppConfig, ModelSources, data_path
from deployments.ray_errors import ClientErrorsAtInfo, log_client_errors_at_info
from deployments.voices import Voices
from pipeline.speaker import InvalidAudioError
from pipeline.text import NothingToSpeakError
from pipeline.voices import DuplicateVoiceNameError, InvalidVoiceNameError, VoiceNotFoundError, VoiceStore


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh home directory, no ZONOS_DATA_DIR, and a working directory that must never be used."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ZONOS_DATA_DIR", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return home


# --------------------------------------------------------------------------- voices_db resolution


def test_relative_paths_go_to_the_users_data_dir(home):
    assert data_path("zonos-voices.sqlite3") == str(home / ".local/share/zonos-serve/zonos-voices.sqlite3")
    assert data_path("libs/a.db") == str(home / ".local/share/zonos-serve/libs/a.db")


def test_zonos_data_dir_wins(home, tmp_path, monkeypatch):
    monkeypatch.setenv("ZONOS_DATA_DIR", str(tmp_path / "data"))
    assert data_path("voices.db") == str(tmp_path / "data" / "voices.db")
    monkeypatch.setenv("ZONOS_DATA_DIR", "~/volume")
    assert data_path("voices.db") == str(home / "volume" / "voices.db")
    monkeypatch.setenv("ZONOS_DATA_DIR", "")  # set but empty: as if unset
    assert data_path("voices.db") == str(home / ".local/share/zonos-serve/voices.db")


def test_a_relative_zonos_data_dir_is_refused(home, monkeypatch):
    monkeypatch.setenv("ZONOS_DATA_DIR", "data")
    with pytest.raises(ValueError, match="ZONOS_DATA_DIR must be an absolute directory"):
        data_path("voices.db")


def test_absolute_home_and_memory_paths_stay(home):
    assert data_path("/data/voices/zonos-voices.sqlite3") == "/data/voices/zonos-voices.sqlite3"
    assert data_path("~/voices.db") == str(home / "voices.db")
    assert data_path(":memory:") == ":memory:"


relative_paths = st.lists(
    st.text(st.characters(categories=["Ll", "Nd"], include_characters="-_."), min_size=1, max_size=12).filter(
        lambda part: part not in {".", ".."}
    ),
    min_size=1,
    max_size=4,
).map("/".join)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=relative_paths, with_env=st.booleans())
def test_a_relative_path_never_lands_in_the_working_directory(home, tmp_path, monkeypatch, path, with_env):
    base = tmp_path / "volume" if with_env else home / ".local" / "share" / "zonos-serve"
    if with_env:
        monkeypatch.setenv("ZONOS_DATA_DIR", str(base))
    else:
        monkeypatch.delenv("ZONOS_DATA_DIR", raising=False)
    resolved = Path(data_path(path))
    assert resolved.is_absolute()
    assert resolved == base / path
    assert not resolved.is_relative_to(Path.cwd())


def test_the_config_documents_the_rule_and_refuses_an_empty_path():
    description = AppConfig.model_fields["voices_db"].description
    assert "ZONOS_DATA_DIR" in description and "~/.local/share/zonos-serve" in description
    assert "never the process's working directory" in description.replace("\n", " ")
    with pytest.raises(ValidationError):
        AppConfig(voices_db="")
    assert AppConfig(voices_db="rel.db").voices_db == "rel.db"  # resolved where it is opened, not here


# --------------------------------------------------------------------------- the Voices deployment


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))


@pytest.fixture
def serve_logs():
    serve_logger = logging.getLogger("ray.serve")
    handler, level = Records(), serve_logger.level
    serve_logger.addHandler(handler)
    serve_logger.setLevel(logging.INFO)
    yield handler
    serve_logger.removeHandler(handler)
    serve_logger.setLevel(level)


SOURCES = ModelSources(speaker="random-tiny", device="cpu")


def voices_replica(voices_db: str) -> Voices:
    """The deployment's class as a Serve replica builds it (no Ray needed)."""
    return Voices.func_or_class(SOURCES, voices_db)


def fake_embedding(clip: bytes) -> np.ndarray:
    return np.full(128, len(clip) / 1000, dtype=np.float32)


@pytest.fixture
def data_dir(home, tmp_path, monkeypatch) -> Path:
    data = tmp_path / "volume"
    monkeypatch.setenv("ZONOS_DATA_DIR", str(data))
    return data


def test_start_opens_the_resolved_path_and_logs_it(data_dir, serve_logs):
    replica = voices_replica("voices.sqlite3")
    try:
        assert (data_dir / "voices.sqlite3").is_file()  # the data dir was created
        assert not (Path.cwd() / "voices.sqlite3").exists()
        assert (logging.INFO, f"voice library: {data_dir / 'voices.sqlite3'} (voices_db 'voices.sqlite3')") in (
            serve_logs.messages
        )
    finally:
        replica.__del__()


def test_a_bad_name_is_refused_before_the_clip_is_decoded(data_dir, monkeypatch):
    replica = voices_replica("voices.sqlite3")
    decoded = []
    monkeypatch.setattr(replica.encoder, "embed_file", lambda clip: decoded.append(clip) or fake_embedding(clip))
    try:
        with pytest.raises(InvalidVoiceNameError, match="'/'"):
            asyncio.run(replica.create("team/alice", b"RIFF clip"))
        assert decoded == []
        created = asyncio.run(replica.create("  Alice ", b"RIFF clip"))
        assert created["name"] == "Alice" and decoded == [b"RIFF clip"]
        assert replica.list() == [created]
    finally:
        replica.__del__()


def test_backup_through_the_deployment(data_dir, monkeypatch, serve_logs):
    replica = voices_replica("voices.sqlite3")
    monkeypatch.setattr(replica.encoder, "embed_file", fake_embedding)
    try:
        created = [asyncio.run(replica.create(name, b"clip " + name.encode())) for name in ("Alice", "Bob")]
        target = replica.backup("backups/monday.sqlite3")  # relative: resolved as voices_db is
        assert target == str(data_dir / "backups" / "monday.sqlite3")
        with VoiceStore(target) as restored:
            assert [voice.public() for voice in restored.list()] == created
            assert restored.embedding("Bob") == fake_embedding(b"clip Bob").tolist()
        with pytest.raises(FileExistsError):
            replica.backup(target)
        assert (logging.INFO, f"voice library backed up to {target}") in serve_logs.messages
    finally:
        replica.__del__()


def test_shutdown_checkpoints_the_wal(data_dir, monkeypatch):
    path = data_dir / "voices.sqlite3"
    replica = voices_replica("voices.sqlite3")
    monkeypatch.setattr(replica.encoder, "embed_file", fake_embedding)
    with VoiceStore(path) as other:  # another connection keeps the WAL file in place
        asyncio.run(replica.create("Alice", b"clip"))
        assert os.path.getsize(f"{path}-wal") > 0
        replica.__del__()  # what Serve calls on graceful shutdown
        assert os.path.getsize(f"{path}-wal") == 0
        copy = data_dir / "main-file-only.sqlite3"
        copy.write_bytes(path.read_bytes())  # what copying the file on the volume would keep
        with closing(sqlite3.connect(copy)) as main_file_only:
            assert main_file_only.execute("SELECT name FROM voices").fetchall() == [("Alice",)]
        assert [voice.name for voice in other.list()] == ["Alice"]
        replica.__del__()  # Python's own collection may call it again: harmless


def test_del_of_a_replica_that_never_opened_its_store():
    replica = Voices.func_or_class.__new__(Voices.func_or_class)
    replica.__del__()  # __init__ failed before the store existed: nothing to close, no error


# ----------------------------------------------------------------------- client errors in replica logs


@pytest.mark.parametrize(
    ("error", "client"),
    [
        (NothingToSpeakError("nothing to speak in the text"), True),
        (InvalidAudioError("the clip is not audio"), True),
        (DuplicateVoiceNameError("me"), True),
        (VoiceNotFoundError("voice_123"), True),
        (RuntimeError("a bug"), False),
        (ZeroDivisionError("division by zero"), False),
    ],
)
def test_serve_logs_a_client_error_at_info_without_traceback_and_a_bug_as_before(error, client, caplog):
    """Serve's replica runs `logger.exception("Request failed.")` on "ray.serve" for whatever a
    method raises; with the deployments' filter a 4xx-type error becomes one INFO line naming it,
    and anything else keeps its ERROR and traceback."""
    log_client_errors_at_info()
    log_client_errors_at_info()  # once only
    serve_logger = logging.getLogger("ray.serve")
    assert sum(isinstance(f, ClientErrorsAtInfo) for f in serve_logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        try:
            raise error
        except Exception:
            serve_logger.exception("Request failed.")
    (record,) = [r for r in caplog.records if r.name == "ray.serve"]
    assert record.levelno == (logging.INFO if client else logging.ERROR)
    assert (record.exc_info is None) == client
    if client:
        assert type(error).__name__ in record.getMessage() and "Traceback" not in caplog.text
