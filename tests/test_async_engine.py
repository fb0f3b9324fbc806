"""The asyncio front of the engine: concurrent callers, per-item errors, abandoned streams."""

import asyncio

import pytest
import torch

from conftest import CASES, case_request, new_reference_codes
from pipeline.engine import ZonosEngine
from pipeline.engine.async_engine import AsyncEngine


@pytest.fixture(scope="module")
def async_engine():
    from conftest import DATA

    engine = AsyncEngine(ZonosEngine.from_pretrained(str(DATA), max_rows=16, max_seq_len=512))
    yield engine
    engine.close()


async def _collect(engine: AsyncEngine, request):
    frames, last = [], None
    async for chunk in engine.generate(request):
        frames.append(chunk.frames)
        last = chunk
    return torch.cat(frames, dim=1), last.stop_reason


def test_concurrent_callers_get_the_reference_tokens(async_engine, golden):
    async def main():
        return await asyncio.gather(*(_collect(async_engine, case_request(case)) for case in CASES))

    for index, (codes, reason) in enumerate(asyncio.run(main())):
        assert torch.equal(codes, new_reference_codes(golden, index))
        assert reason == ("eos" if CASES[index]["eos_emitted"] else "length")
    stats = async_engine.stats()
    assert stats.prefill_padding >= 0 and stats.frames > 0


def test_a_failing_item_fails_alone(async_engine, golden):
    too_long = case_request(CASES[0], max_new_tokens=5000)  # exceeds the cache

    async def main():
        return await asyncio.gather(
            _collect(async_engine, too_long), _collect(async_engine, case_request(CASES[1])), return_exceptions=True
        )

    failed, ok = asyncio.run(main())
    assert isinstance(failed, ValueError) and "does not fit" in str(failed)
    assert torch.equal(ok[0], new_reference_codes(golden, 1))


def test_an_abandoned_stream_frees_its_rows(async_engine):
    async def main():
        stream = async_engine.generate(case_request(CASES[0]))
        await anext(stream)
        await stream.aclose()
        for _ in range(100):
            if not async_engine.engine.has_unfinished():
                return True
            await asyncio.sleep(0.02)
        return False

    assert asyncio.run(main())
    assert async_engine.stats().used_rows == 0


def test_a_batch_answers_each_id_with_its_own_request(async_engine, golden):
    requests = [case_request(case) for case in CASES]

    async def main():
        ids = async_engine.submit(requests)
        return await asyncio.gather(*(_frames(async_engine, request_id) for request_id in ids))

    for index, codes in enumerate(asyncio.run(main())):
        assert torch.equal(codes, new_reference_codes(golden, index))


async def _frames(engine: AsyncEngine, request_id: str) -> torch.Tensor:
    return torch.cat([chunk.frames async for chunk in engine.stream(request_id)], dim=1)
