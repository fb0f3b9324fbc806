"""Voice library: add/get/list/delete, validation, persistence, threads and the float32 round trip."""

import re
import sqlite3
import threading
from contextlib import closing

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.voices import (
    EMBEDDING_DIM,
    DuplicateVoiceNameError,
    Voice,
    VoiceNotFoundError,
    VoiceStore,
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
    assert voice.public() == {"id": voice.id, "name": "Alice", "created_at": voice.created_at, "object": "voice"}
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


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, None, 7])
def test_bad_names(store, name):
    with pytest.raises(ValueError, match="voice name"):
        store.add(name, embedding())


def test_longest_name(store):
    assert store.add("x" * 100, embedding()).name == "x" * 100


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
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)


def test_two_open_stores_share_one_file(tmp_path):
    path = tmp_path / "voices.db"
    with VoiceStore(path) as first, VoiceStore(path) as second:
        voice = first.add("Alice", embedding(1))
        assert second.get("Alice") == voice
        with pytest.raises(DuplicateVoiceNameError):
            second.add("Alice", embedding(2))


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
