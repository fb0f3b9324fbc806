"""The text front end is a pure function of its input: the same results from 8 threads as from one.

inflect, espeak-ng and Sudachi keep state per instance; the front end gives each thread its own
(issue 9). The threads switch as often as CPython allows (sys.setswitchinterval(1e-6)) so that a
shared instance would be caught mid-call, and start together behind a barrier, so that they also
race to create their instances.
"""

import sys
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import numbers, text
from pipeline.segment import split_text
from pipeline.text import MissingExtraError, normalize, phonemize, text_to_ids

THREADS = 8

INPUTS = [
    ("Call 987654321 now.", "en-us"),
    ("On March 3rd, 1999, I paid $12.50 for 2,000 apples, 3.5% more than last year.", "en-us"),
    ("$0.5, $5.3 billion and €2.50; call (555) 123-4567 at 9:05 am or +1 555 123 4567.", "en-us"),
    ("In the 1990s, 1/2 of 103rd-floor rooms cost £3.20 and ¥500; -3 at 14:00.", "en-gb"),
    ("Guten Tag, wie geht es Ihnen? Ich habe 42 Bücher und 1.234.567 Euro.", "de"),
    ("Bonjour à tous, c'est le 14 juillet 2024.", "fr-fr"),
    ("¡Hola! Tengo 25 años y 3,5 kilos.", "es"),
    ("你好，世界。今天是2025年。", "cmn"),
    ("Hello world. This is a test of Zonos!", "en-us"),
]
JAPANESE = [("今日は良い天気です。2025年に東京へ行きます。", "ja"), ("明日は3時に987654321番へ電話します。", "ja")]


def _japanese_available() -> bool:
    try:
        normalize("日本", "ja")
    except MissingExtraError:
        return False
    return True


def _inputs() -> list[tuple[str, str]]:
    return INPUTS + (JAPANESE if _japanese_available() else [])


def _outcome(function: Callable, *args):
    """The result, or the exception's type and message: errors must be as reproducible as results."""
    try:
        return function(*args)
    except Exception as exc:  # compared with the single-threaded outcome, not swallowed
        return (type(exc).__name__, str(exc))


def _split(source: str, language: str) -> list[tuple]:
    return [(s.text, s.start, s.end, tuple(s.phoneme_ids)) for s in split_text(source, language, 48)]


def _in_threads(work: Callable[[int], list], threads: int = THREADS) -> list[list]:
    """Run work(index) in `threads` fresh threads started together, switching as often as possible."""
    barrier = threading.Barrier(threads)
    results: list = [None] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize(
    "function",
    [normalize, phonemize, text_to_ids, _split],
    ids=["normalize", "phonemize", "text_to_ids", "split_text"],
)
def test_eight_threads_give_the_single_threaded_results(function):
    inputs = _inputs()
    expected = [_outcome(function, *args) for args in inputs]
    rounds = 1 if function is _split else 2

    def work(index: int) -> list:
        # every thread walks all inputs, each from a different starting point, several times over
        order = [(index + step) % len(inputs) for step in range(len(inputs) * rounds)]
        return [(number, _outcome(function, *inputs[number])) for number in order]

    for results in _in_threads(work):
        for number, outcome in results:
            assert outcome == expected[number], inputs[number]


def test_the_reported_case_never_says_billion():
    expected = normalize("Call 987654321 now.", "en-us")
    assert "billion" not in expected
    results = _in_threads(lambda index: [normalize("Call 987654321 now.", "en-us") for _ in range(20)])
    assert {result for thread in results for result in thread} == {expected}


def test_each_thread_has_its_own_tools():
    # the objects themselves come back (not their ids), so none is freed and its id reused
    results = _in_threads(lambda index: [numbers._engine(), text._espeak("en-us"), text._espeak("en-us")], threads=4)
    assert all(again is espeak for _, espeak, again in results)  # cached within a thread
    assert len({id(engine) for engine, _, _ in results}) == 4  # one inflect engine per thread
    assert len({id(espeak) for _, espeak, _ in results}) == 4  # one espeak-ng backend per thread


def test_cache_clear_drops_every_thread_instances():
    first = text._espeak("en-us")
    assert text._espeak("en-us") is first
    text._espeak.cache_clear()
    assert text._espeak("en-us") is not first


# Number-heavy text of the kinds the rules read differently: mixed, so threads interleave rules.
_piece = st.one_of(
    st.integers(0, 10**12).map(str),
    st.integers(1000, 10**9).map(lambda n: f"{n:,}"),
    st.builds(lambda a, b: f"${a}.{b:02d}", st.integers(0, 10**6), st.integers(0, 99)),
    st.builds(lambda a, s: f"{a}{s}", st.integers(0, 10**6), st.sampled_from(["%", "st", "th", " billion", "s"])),
    st.builds(lambda h, m: f"{h}:{m:02d}", st.integers(0, 23), st.integers(0, 59)),
    st.builds(lambda a, b: f"{a:03d}-{b:04d}", st.integers(100, 999), st.integers(0, 9999)),
    st.sampled_from(["Call", "now", "and", "the", "-", ",", "."]),
)
number_text = st.lists(_piece, min_size=1, max_size=10).map(" ".join)


@settings(max_examples=25, deadline=None)
@given(st.lists(number_text, min_size=1, max_size=4))
def test_concurrent_normalisation_of_generated_number_text(texts):
    expected = [normalize(raw, "en-us") for raw in texts]
    results = _in_threads(lambda index: [normalize(raw, "en-us") for raw in texts * 3])
    for result in results:
        assert result == expected * 3
