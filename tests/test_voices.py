"""Voice library: add/get/list/delete, validation, the name rule, persistence, shutdown checkpoint,
backups, threads and the float32 round trip; OpenAI's built-in names as fixed voices (synthetic
embeddings, configured bindings) in the library and in the Voices deployment (its class, no Ray)."""

import ast
import asyncio
import os
import pickle
import re
import sqlite3
import subprocess
import sys
import threading
import unicodedata
from contextlib import closing

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from deployments.config import AppConfig, ModelSources
from pipeline.audio import encode_audio
from pipeline.speaker import SpeakerEncoder
from pipeline.text import UnsupportedLanguageError
from pipeline.voices import (
    EMBEDDING_DIM,
    OPENAI_VOICES,
    BuiltinVoices,
    DuplicateVoiceNameError,
    InvalidVoiceNameError,
    Voice,
    VoiceNotFoundError,
    VoiceStore,
    check_voice_binding,
    clean_voice_name,
    synthetic_embedding,
)


def embedding(seed: int = 0) -> list[float]:
    """128 floats that are exactly float32, so equality after a round trip is the right check."""
    return np.random.default_rng(seed).standard_normal(EMBEDDING_DIM).astype(np.float32).tolist()


@pytest.fixture
def store():
    with VoiceStore(":memory:") as store:
        yield store


def test_add_returns_voice_with_random_id(store):
    voice = store.add("  Alice  ", embedding())
    assert isinstance(voice, Voice)
    assert re.fullmatch(r"voice_[0-9a-f]{16}", voice.id)
    assert voice.name == "Alice"
    assert isinstance(voice.created_at, int)
    assert voice.embedding == embedding()
    assert voice.public() == {
        "id": voice.id,
        "name": "Alice",
        "created_at": voice.created_at,
        "object": "voice",
        "language": None,
    }
    assert "embedding" not in repr(voice)


def test_get_by_id_and_by_name(store):
    voice = store.add("Alice", embedding(1))
    assert store.get(voice.id) == voice
    assert store.get("Alice") == voice
    assert store.embedding("Alice") == store.embedding(voice.id) == embedding(1)


def test_id_wins_over_a_name_that_looks_like_another_id(store):
    first = store.add("first", embedding(1))
    impostor = store.add(first.id, embedding(2))
    assert store.get(first.id) == first
    assert store.get(impostor.id) == impostor


def test_names_are_exact_and_case_sensitive(store):
    store.add("Alice", embedding(1))
    store.add("alice", embedding(2))
    assert store.get("alice").embedding == embedding(2)
    with pytest.raises(VoiceNotFoundError):
        store.get("ALICE")


def test_missing_voice_names_what_was_asked(store):
    with pytest.raises(KeyError) as error:
        store.get("nobody")
    assert isinstance(error.value, VoiceNotFoundError)
    assert str(error.value) == "voice 'nobody' not found"
    with pytest.raises(VoiceNotFoundError, match="voice_0000"):
        store.delete("voice_0000")


def test_list_is_oldest_first(store):
    ids = [store.add(f"v{i}", embedding(i)).id for i in range(5)]
    assert [voice.id for voice in store.list()] == ids


def test_delete_frees_the_name(store):
    keep = store.add("keep", embedding(1))
    gone = store.add("gone", embedding(2))
    store.delete(gone.id)
    assert store.list() == [keep]
    with pytest.raises(VoiceNotFoundError):
        store.get(gone.id)
    with pytest.raises(VoiceNotFoundError):
        store.delete(gone.id)
    assert store.add("gone", embedding(3)).id != gone.id


def test_duplicate_name(store):
    store.add("Alice", embedding(1))
    with pytest.raises(DuplicateVoiceNameError, match="'Alice'") as error:
        store.add(" Alice ", embedding(2))
    assert isinstance(error.value, ValueError)
    assert len(store.list()) == 1


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, None, 7])
def test_bad_names(store, name):
    with pytest.raises(ValueError, match="voice name"):
        store.add(name, embedding())


def test_longest_name(store):
    assert store.add("x" * 64, embedding()).name == "x" * 64
    assert store.add(" " + "y" * 64 + "\n", embedding()).name == "y" * 64  # the 64 count after stripping


# --------------------------------------------------------------------------- the name rule

# Written out here, not taken from pipeline.voices: letters of any script, combining marks, decimal
# digits, and four ASCII characters.
NAME_CATEGORIES = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd"]
NAME_EXTRAS = " -_."
letters_or_digits = st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo", "Nd"])
name_chars = st.characters(categories=NAME_CATEGORIES, include_characters=NAME_EXTRAS)
# anything else: '/', '?', '#', '%', tabs, newlines, NBSP, emoji, symbols, other punctuation, ...
forbidden_chars = st.characters(exclude_categories=NAME_CATEGORIES, exclude_characters=NAME_EXTRAS)


@st.composite
def valid_names(draw) -> str:
    """1-64 characters of the rule's alphabet, not starting or ending with a space (nothing to strip)."""
    first = draw(letters_or_digits)
    middle = draw(st.text(name_chars, max_size=62))
    last = draw(st.text(letters_or_digits, max_size=1))
    return first + (middle + last if last else middle.rstrip(" "))


@settings(max_examples=200, deadline=None)
@given(name=valid_names())
def test_valid_names_are_kept_as_given(name):
    assert clean_voice_name(name) == name
    assert clean_voice_name(f"  {name}\t") == name
    with VoiceStore(":memory:") as store:
        voice = store.add(name, embedding())
        assert store.get(name) == voice and voice.name == name


@settings(max_examples=200, deadline=None)
@given(left=valid_names(), bad=forbidden_chars, right=valid_names())
def test_a_forbidden_character_anywhere_inside_is_refused(left, bad, right):
    name = left[:31] + bad + right[:32]  # inside: a letter or digit on each side, so stripping keeps it
    with pytest.raises(InvalidVoiceNameError, match=re.escape(f"U+{ord(bad):04X}")) as error:
        clean_voice_name(name)
    assert "letters" in str(error.value) and "'-', '_' or '.'" in str(error.value)  # the message names the rule


@settings(max_examples=100, deadline=None)
@given(name=st.text(name_chars, min_size=65, max_size=200).filter(lambda n: len(n.strip()) > 64))
def test_names_over_64_characters_are_refused(name):
    with pytest.raises(InvalidVoiceNameError, match="1 to 64"):
        clean_voice_name(name)


@settings(max_examples=100, deadline=None)
@given(name=st.text(st.sampled_from(NAME_EXTRAS) | st.characters(categories=["Mn", "Mc", "Me"]), min_size=1))
def test_a_name_needs_a_letter_or_digit(name):
    with pytest.raises(InvalidVoiceNameError):
        clean_voice_name(name)


@pytest.mark.parametrize(
    "name", ["Zoë", "Zoe\u0308", "Ærøskøbing", "東京", "हिन्दी", "Dr. Who", "voice_01-b", "Ana María 2", "٣"]
)
def test_names_of_any_script(store, name):
    assert unicodedata.category(name[0])[0] in "LN"
    assert store.add(name, embedding()).name == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("a/b", "'/'"),
        ("../etc", "'/'"),
        (".", "no letter or digit"),
        ("..", "no letter or digit"),
        ("- _ .", "no letter or digit"),
        ("tab\there", "'\\t'"),
        ("new\nline", "'\\n'"),
        ("a\u00a0b", "U+00A0"),  # a no-break space is not a space
        ("why?", "'?'"),
        ("#1", "'#'"),
        ("a%2Fb", "'%'"),
        ("smile 😀", "U+1F600"),
        ("x²", "U+00B2"),  # a digit, but not a decimal one
    ],
)
def test_names_refused_say_why(store, name, says):
    with pytest.raises(InvalidVoiceNameError) as error:
        store.add(name, embedding())
    assert says in str(error.value)
    assert store.list() == []


def test_invalid_name_error_crosses_processes():
    error = pickle.loads(pickle.dumps(InvalidVoiceNameError("voice name may not contain '/'")))
    assert isinstance(error, ValueError) and str(error) == "voice name may not contain '/'"


def test_voices_named_under_an_older_rule_still_work(tmp_path):
    """A file written before the rule may hold names it now refuses: listed, found, deleted as before."""
    path = tmp_path / "voices.db"
    with VoiceStore(path) as store:
        kept = store.add("kept", embedding(1))
    legacy = [("voice_00000000000000a1", "a/b"), ("voice_00000000000000a2", "x" * 100), ("voice_00000000000000a3", "?")]
    with closing(sqlite3.connect(path)) as conn, conn:
        blob = np.asarray(embedding(2), np.float32).tobytes()
        conn.executemany(
            "INSERT INTO voices (id, name, created_at, embedding) VALUES (?, ?, 1, ?)",
            [(id_, name, blob) for id_, name in legacy],
        )
    with VoiceStore(path) as store:
        assert [(v.id, v.name) for v in store.list()] == [(kept.id, "kept"), *legacy]
        for id_, name in legacy:
            assert store.get(id_).name == store.get(name).name == name
            assert store.embedding(name) == embedding(2)
        store.delete("voice_00000000000000a1")
        assert [v.name for v in store.list()] == ["kept", "x" * 100, "?"]
        with pytest.raises(InvalidVoiceNameError):  # but no new voice may take such a name
            store.add("c/d", embedding(3))


# --------------------------------------------------------------------------- shutdown checkpoint and backups


def wal_size(path) -> int:
    wal = f"{path}-wal"
    return os.path.getsize(wal) if os.path.exists(wal) else 0


def test_close_checkpoints_the_wal_into_the_main_file(tmp_path):
    path = tmp_path / "voices.db"
    with VoiceStore(path) as other:  # another process's connection keeps the WAL file in place
        store = VoiceStore(path)
        voices = [store.add(f"v{i}", embedding(i)) for i in range(3)]
        assert wal_size(path) > 0  # the voices are still in the WAL
        store.close()
        assert wal_size(path) == 0  # TRUNCATE: all of it is in the main file now
        copy = tmp_path / "copy.db"
        copy.write_bytes(path.read_bytes())  # the main file alone, as a file copy takes it
        with closing(sqlite3.connect(copy)) as conn:
            assert [row[0] for row in conn.execute("SELECT name FROM voices ORDER BY seq")] == ["v0", "v1", "v2"]
        assert other.list() == voices


def test_close_twice_and_use_after_close(tmp_path):
    store = VoiceStore(tmp_path / "voices.db")
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.list()
    VoiceStore(":memory:").close()


def test_backup_is_a_consistent_single_file_library(tmp_path):
    with VoiceStore(tmp_path / "live.db") as store:
        voices = [store.add(f"v{i}", embedding(i)) for i in range(5)]
        store.delete(voices[1].id)
        assert wal_size(tmp_path / "live.db") > 0  # the recent writes are in the WAL, not the main file
        target = tmp_path / "backups" / "2024-01-01.db"
        assert store.backup(target) == target
        store.add("after", embedding(9))  # later writes are not in the snapshot
        assert sorted(os.listdir(target.parent)) == [target.name]  # no temporary file, no -wal
        with closing(sqlite3.connect(target)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with VoiceStore(target) as restored:
            assert restored.list() == [voices[0], *voices[2:]]


def test_backup_never_overwrites(tmp_path):
    path = tmp_path / "voices.db"
    with VoiceStore(path) as store:
        store.add("Alice", embedding(1))
        with pytest.raises(FileExistsError):
            store.backup(path)  # least of all the live file
        existing = tmp_path / "old-backup.db"
        existing.write_bytes(b"an older backup")
        with pytest.raises(FileExistsError):
            store.backup(existing)
        assert existing.read_bytes() == b"an older backup"
        assert store.get("Alice").embedding == embedding(1)
    assert sorted(os.listdir(tmp_path)) == ["old-backup.db", "voices.db"]


def test_backup_of_an_in_memory_store(store, tmp_path):
    voice = store.add("Alice", embedding(1))
    with VoiceStore(store.backup(tmp_path / "mem.db")) as restored:
        assert restored.list() == [voice]


def test_backup_while_other_threads_write(tmp_path):
    with VoiceStore(tmp_path / "live.db") as store:
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                store.add(f"w{i}", embedding(i))
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            targets = [store.backup(tmp_path / f"b{n}.db") for n in range(5)]
        finally:
            stop.set()
            thread.join()
        for target in targets:
            with VoiceStore(target) as restored:
                names = [voice.name for voice in restored.list()]
            assert names == [f"w{i}" for i in range(len(names))]  # a prefix: each snapshot is one moment


@pytest.mark.parametrize(
    "bad",
    [
        [],
        [0.0] * 127,
        [0.0] * 129,
        [[0.0] * EMBEDDING_DIM],
        [0.0] * 127 + [float("nan")],
        [0.0] * 127 + [float("inf")],
        [0.0] * 127 + [1e39],  # finite, but infinite once stored as float32
        [0.0] * 127 + ["x"],
        "not numbers",
    ],
    ids=["empty", "127", "129", "2d", "nan", "inf", "float32-overflow", "string-item", "string"],
)
def test_bad_embeddings(store, bad):
    with pytest.raises(ValueError, match="embedding"):
        store.add("v", bad)
    assert store.list() == []


def test_numpy_and_torch_embeddings(store):
    values = np.asarray(embedding(1), dtype=np.float32)
    assert store.add("numpy", values).embedding == embedding(1)
    assert store.add("torch", torch.from_numpy(values).requires_grad_()).embedding == embedding(1)
    assert store.add("float64", values.astype(np.float64)).embedding == embedding(1)


def test_floats_come_back_as_float32(store):
    assert store.add("v", [0.1] * EMBEDDING_DIM).embedding[0] == float(np.float32(0.1))


def test_restart_keeps_voices(tmp_path):
    path = tmp_path / "nested" / "dir" / "voices.db"
    with VoiceStore(path) as store:
        alice = store.add("Alice", embedding(1))
        bob = store.add("Bob", embedding(2))
        store.delete(bob.id)
        carol = store.add("Carol", embedding(3))
    with VoiceStore(str(path)) as store:
        assert store.list() == [alice, carol]
        assert store.get("Alice").embedding == embedding(1)
        with pytest.raises(DuplicateVoiceNameError):
            store.add("Carol", embedding(4))
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)


def test_two_open_stores_share_one_file(tmp_path):
    path = tmp_path / "voices.db"
    with VoiceStore(path) as first, VoiceStore(path) as second:
        voice = first.add("Alice", embedding(1))
        assert second.get("Alice") == voice
        with pytest.raises(DuplicateVoiceNameError):
            second.add("Alice", embedding(2))


def test_a_voice_keeps_its_default_language_as_an_espeak_code(tmp_path):
    path = tmp_path / "voices.db"
    with VoiceStore(path) as store:
        french = store.add("Amélie", embedding(1), language="fr")  # ISO 639-1, stored as the espeak-ng code
        brazilian = store.add("Bia", embedding(2), language="pt_BR")
        plain = store.add("Carol", embedding(3))
        assert (french.language, brazilian.language, plain.language) == ("fr-fr", "pt-br", None)
        with pytest.raises(UnsupportedLanguageError, match="'klingon'"):
            store.add("Dave", embedding(4), language="klingon")
        with pytest.raises(VoiceNotFoundError):
            store.get("Dave")  # nothing was stored
    with VoiceStore(path) as store:  # and after a restart
        assert [(v.name, v.language) for v in store.list()] == [("Amélie", "fr-fr"), ("Bia", "pt-br"), ("Carol", None)]
        assert store.get("Amélie").public()["language"] == "fr-fr"


# The schema of version 1, as that code wrote it (no `language` column), to migrate from.
SCHEMA_V1 = """
CREATE TABLE voices (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    embedding BLOB NOT NULL
)
"""


def test_a_version_1_library_gains_the_language_column(tmp_path):
    path = tmp_path / "voices.db"
    blob = np.asarray(embedding(1), "<f4").tobytes()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(SCHEMA_V1)
        conn.execute("INSERT INTO voices (id, name, created_at, embedding) VALUES (?, ?, ?, ?)",
                     ("voice_0123456789abcdef", "Old", 1_600_000_000, blob))  # fmt: skip
        conn.execute("PRAGMA user_version = 1")
    with VoiceStore(path) as store:
        old = store.get("Old")
        assert (old.id, old.created_at, old.embedding, old.language) == (
            "voice_0123456789abcdef", 1_600_000_000, embedding(1), None
        )  # fmt: skip
        new = store.add("New", embedding(2), language="de")
    with VoiceStore(path) as store:  # opening a migrated file again changes nothing
        assert store.list() == [old, new]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        columns = [row[1] for row in conn.execute("PRAGMA table_info(voices)")]
        assert columns == ["seq", "id", "name", "created_at", "embedding", "language"]


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "voices.db"
    VoiceStore(path).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        VoiceStore(path)


def test_concurrent_adds(tmp_path):
    n_threads, per_thread = 8, 10
    barrier = threading.Barrier(n_threads)
    errors = []
    with VoiceStore(tmp_path / "voices.db") as store:

        def worker(t: int):
            barrier.wait()
            try:
                for i in range(per_thread):
                    store.add(f"t{t}-{i}", embedding(t * per_thread + i))
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        voices = store.list()
        assert len(voices) == len({voice.id for voice in voices}) == n_threads * per_thread
        for voice in voices:
            t, i = map(int, voice.name[1:].split("-"))
            assert voice.embedding == embedding(t * per_thread + i)


def test_concurrent_same_name_has_one_winner(store):
    n_threads = 8
    barrier = threading.Barrier(n_threads)
    outcomes = []

    def worker(seed: int):
        barrier.wait()
        try:
            outcomes.append(store.add("Alice", embedding(seed)))
        except DuplicateVoiceNameError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [outcome for outcome in outcomes if isinstance(outcome, Voice)]
    assert len(outcomes) == n_threads
    assert len(winners) == 1
    assert store.list() == winners


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(values=st.lists(float32s, min_size=EMBEDDING_DIM, max_size=EMBEDDING_DIM))
def test_float32_round_trip_is_exact(values):
    with VoiceStore(":memory:") as store:
        voice = store.add("v", values)
        stored = store.get(voice.id).embedding
    # Compare bits, not values, so -0.0 and 0.0 count as different.
    assert np.asarray(stored, np.float32).tobytes() == np.asarray(values, np.float32).tobytes()
    assert voice.embedding == stored == values


# --------------------------------------------------------------------------- OpenAI's built-in names


def library_of(store: VoiceStore):
    """The `library` lookup BuiltinVoices takes, over a store (as the Voices deployment's `embedding`)."""

    def lookup(ref: str) -> list[float] | None:
        try:
            return store.embedding(ref)
        except VoiceNotFoundError:
            return None

    return lookup


@settings(max_examples=100, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=80), min_size=2, max_size=6, unique=True))
def test_synthetic_embeddings_are_fixed_per_name_and_distinct_across_names(names):
    embeddings = [synthetic_embedding(name) for name in names]
    for name, values in zip(names, embeddings, strict=True):
        assert synthetic_embedding(name) == values  # the same on every call
        assert len(values) == EMBEDDING_DIM and all(np.isfinite(values))
        assert np.asarray(values, np.float32).tolist() == values  # exactly float32, as the library stores
        assert max(map(abs, values)) <= 2 * 3**0.5  # an Irwin-Hall sum of 4, scaled to variance 1
    assert len({tuple(values) for values in embeddings}) == len(names)


def test_synthetic_embeddings_have_unit_variance():
    """The documented distribution: mean 0, variance 1 per value (13 x 128 values: loose bounds)."""
    values = np.array([synthetic_embedding(name) for name in OPENAI_VOICES])
    assert abs(values.mean()) < 0.1 and 0.9 < values.std() < 1.1
    assert np.abs(np.corrcoef(values)[np.triu_indices(13, 1)]).max() < 0.4  # no two names nearly alike


def test_synthetic_embeddings_are_the_same_in_another_process():
    """A pure function of the name: not Python's per-process string hash, nor anything else a restart changes."""
    code = "from pipeline.voices import *; print([synthetic_embedding(name) for name in OPENAI_VOICES])"
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert ast.literal_eval(out) == [synthetic_embedding(name) for name in OPENAI_VOICES]


@settings(max_examples=40, deadline=None)
@given(
    bindings=st.dictionaries(st.sampled_from(OPENAI_VOICES), st.sampled_from(["Carol", "Dave"])),
    shadowed=st.sampled_from(OPENAI_VOICES),
    seed=st.integers(0, 2**32 - 1),
)
def test_each_builtin_name_is_one_voice_on_every_call(bindings, shadowed, seed):
    """Bound: the bound library voice's embedding; unbound: a library voice named like it, else the
    name's synthetic embedding; the same however often it is asked."""
    with VoiceStore(":memory:") as store:
        stored = {
            "Carol": store.add("Carol", embedding(seed)).embedding,
            "Dave": store.add("Dave", embedding(seed + 2)).embedding,
        }
        shadow_embedding = store.add(shadowed, embedding(seed + 1)).embedding  # a client named a voice like a built-in
        builtins = BuiltinVoices(bindings)
        for _ in range(3):
            for name in OPENAI_VOICES:
                got = builtins.embedding(name, library_of(store))
                if name in bindings:
                    assert got == stored[bindings[name]]  # the configuration wins, even over `shadowed`
                elif name == shadowed:
                    assert got == shadow_embedding
                else:
                    assert got == synthetic_embedding(name)
        unbound = [name for name in OPENAI_VOICES if name not in bindings and name != shadowed]
        assert len({tuple(builtins.embedding(name, library_of(store))) for name in unbound}) == len(unbound)


def test_a_binding_follows_the_library_voice_it_names(store):
    builtins = BuiltinVoices({"alloy": "Carol"})
    assert builtins.embedding("alloy", library_of(store)) is None  # bound to a voice not made yet
    first = store.add("Carol", embedding(1))
    assert builtins.embedding("alloy", library_of(store)) == first.embedding
    store.delete(first.id)
    second = store.add("Carol", embedding(2))
    assert builtins.embedding("alloy", library_of(store)) == second.embedding
    by_id = BuiltinVoices({"alloy": second.id})
    assert by_id.embedding("alloy", library_of(store)) == second.embedding
    with pytest.raises(VoiceNotFoundError):
        builtins.embedding("Carol", library_of(store))  # not a built-in name


def test_a_clip_binding_is_embedded_once_at_construction():
    calls = []

    def embed(path: str) -> np.ndarray:
        calls.append(path)
        return np.linspace(-1, 1, EMBEDDING_DIM)

    builtins = BuiltinVoices({"nova": "/voices/nova.wav", "echo": "./echo.flac"}, embed)
    assert sorted(calls) == ["./echo.flac", "/voices/nova.wav"]
    expected = np.linspace(-1, 1, EMBEDDING_DIM).astype(np.float32).tolist()
    for _ in range(3):
        assert builtins.embedding("nova", lambda ref: None) == expected
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (FileNotFoundError("no audio file at '/voices/nova.wav'"), "no audio file"),
        (ValueError("could not decode the voice clip"), "could not decode"),
    ],
)
def test_a_clip_binding_that_cannot_be_embedded_fails_naming_it(error, says):
    def embed(path: str):
        raise error

    with pytest.raises(ValueError, match=f"voice binding 'nova' -> clip '/voices/nova.wav': {says}"):
        BuiltinVoices({"nova": "/voices/nova.wav"}, embed)


@pytest.mark.parametrize(
    ("name", "target", "says"),
    [
        ("bob", "Carol", "not one of OpenAI's built-in voice names: alloy, ash"),
        ("Alloy", "Carol", "not one of OpenAI's built-in"),  # names are exact
        ("alloy", "   ", "must be bound to a library voice's id or name, or to a clip's path"),
        ("alloy", 7, "must be bound to"),
        ("alloy", "what?", "'alloy' -> 'what?' is no clip path"),
    ],
)
def test_bad_bindings_say_why(name, target, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        check_voice_binding(name, target)


def test_bindings_are_checked_when_the_config_loads():
    config = AppConfig.model_validate({"voice_bindings": {"alloy": " Carol ", "nova": "team/alice", "echo": "./e.wav"}})
    assert config.voice_bindings == {"alloy": "Carol", "nova": "team/alice", "echo": "./e.wav"}  # '/': a path
    with pytest.raises(ValidationError, match="'sam' is not one of OpenAI's built-in voice names"):
        AppConfig.model_validate({"voice_bindings": {"sam": "Carol"}})
    assert AppConfig().voice_bindings == {}


# the Voices deployment's class, as a Serve replica builds it (no Ray), with the random-tiny speaker encoder


def voices_replica(bindings: dict[str, str]):
    from deployments.voices import Voices

    return Voices.func_or_class(ModelSources(speaker="random-tiny", device="cpu"), ":memory:", bindings)


def clip_file(path, seconds: float = 1.5, hz: float = 220.0):
    t = np.arange(round(seconds * 16000)) / 16000
    path.write_bytes(encode_audio((0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000, "wav"))
    return path


def test_the_deployment_embeds_bound_clips_at_start_and_resolves_names(tmp_path, monkeypatch):
    monkeypatch.setenv("ZONOS_DATA_DIR", str(tmp_path))
    nova = clip_file(tmp_path / "nova.wav", hz=220.0)
    (tmp_path / "clips").mkdir()
    echo = clip_file(tmp_path / "clips" / "echo.wav", hz=330.0)
    encoder = SpeakerEncoder.from_pretrained("random-tiny")
    expected = {
        "nova": encoder.embed_file(str(nova)).numpy().astype(np.float32).tolist(),
        "echo": encoder.embed_file(str(echo)).numpy().astype(np.float32).tolist(),
    }
    replica = voices_replica({"nova": str(nova), "echo": "./clips/echo.wav", "alloy": "Carol"})  # echo: relative
    try:
        nova.unlink()  # read at start: not needed any more
        echo.unlink()
        for _ in range(2):
            assert replica.builtin_embedding("nova") == expected["nova"]
            assert replica.builtin_embedding("echo") == expected["echo"]
            assert replica.builtin_embedding("alloy") is None  # bound to a voice not in the library yet
            assert replica.builtin_embedding("ash") == synthetic_embedding("ash")
        replica.store.add("Carol", embedding(3))
        assert replica.builtin_embedding("alloy") == embedding(3)
        assert expected["nova"] != expected["echo"]
    finally:
        replica.__del__()


def test_the_deployment_creates_a_voice_with_its_language_and_checks_it_before_decoding(tmp_path):
    replica = voices_replica({})
    clip = clip_file(tmp_path / "a.wav").read_bytes()
    try:
        made = asyncio.run(replica.create("Amélie", clip, "fr"))
        assert made["language"] == "fr-fr" and replica.get("Amélie") == made
        assert asyncio.run(replica.create("Carol", clip))["language"] is None
        with pytest.raises(UnsupportedLanguageError):  # before the clip: not even audio gets this far
            asyncio.run(replica.create("Dave", b"not audio", "klingon"))
        assert [voice["name"] for voice in replica.list()] == ["Amélie", "Carol"]
    finally:
        replica.__del__()


@pytest.mark.parametrize(("content", "says"), [(None, "no audio file"), (b"not audio at all" * 8, "could not decode")])
def test_the_deployment_fails_to_start_on_a_bad_bound_clip(tmp_path, content, says):
    path = tmp_path / "nova.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=f"voice binding 'nova' -> clip '{re.escape(str(path))}': {says}"):
        voices_replica({"nova": str(path)})


def test_the_deployment_counts_embedding_cache_hits_and_lookups(tmp_path, monkeypatch):
    """Two counters, hits and lookups, whose rates Grafana divides (a gauge would be exported only for a
    while after it is set): a bound clip embedded at start is a lookup; a new clip a lookup; the same clip
    again a hit and a lookup."""
    import deployments.voices

    counts: dict[str, float] = {}

    class Recording:  # ray.serve.metrics.Counter's interface: a name, a description, inc(value > 0)
        def __init__(self, name: str, description: str = ""):
            self.name = name
            counts[name] = 0

        def inc(self, value: float = 1.0) -> None:
            assert value > 0
            counts[self.name] += value

    monkeypatch.setattr(deployments.voices, "Counter", Recording)
    replica = voices_replica({"nova": str(clip_file(tmp_path / "nova.wav"))})
    try:
        expected = {"zonos_speaker_cache_hits_total": 0, "zonos_speaker_cache_lookups_total": 1}
        assert counts == expected
        clip = clip_file(tmp_path / "other.wav", hz=330.0).read_bytes()
        for hit in (0, 1, 1):
            asyncio.run(replica.embed_clip(clip))
            expected["zonos_speaker_cache_hits_total"] += hit
            expected["zonos_speaker_cache_lookups_total"] += 1
            assert counts == expected
    finally:
        replica.__del__()
