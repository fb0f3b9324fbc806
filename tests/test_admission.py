"""Admission of a request as a unit (issue 12): all of its segments fit, or 503 before its first byte."""

import asyncio
from types import SimpleNamespace

import pytest

from deployments.backend import BackendBusy
from deployments.config import AppConfig
from deployments.ingress import _AdmittedSteps
from pipeline.segment import Segment
from pipeline.streaming import StepUnavailable, SynthesisRequest


class _Splitter:
    max_seq_len, context_frames = 1024, 2

    async def split(self, request):
        n = request.text.count(".")
        return [Segment(index=i, text="x.", start=0, end=2, n_tokens=3, phoneme_ids=[1, 2, 3]) for i in range(n)]

    def frames(self, request):
        raise AssertionError("not started in this test")

    async def decode(self, span):
        raise AssertionError("not started in this test")


def _ingress(limit: int) -> SimpleNamespace:
    return SimpleNamespace(config=AppConfig(max_segments_in_flight=limit), _steps=_Splitter(), _segments_in_flight=0)


@pytest.mark.parametrize(("limit", "sizes"), [(5, [3, 3, 2]), (4, [4, 1, 4]), (10, [1, 9, 1])])
def test_segments_are_reserved_whole_and_released_when_the_request_ends(limit, sizes):
    ingress = _ingress(limit)
    admitted, refused = [], []
    for n in sizes:
        steps = _AdmittedSteps(ingress, "r")
        try:
            asyncio.run(steps.split(SynthesisRequest(text="x. " * n)))
            admitted.append(steps)
        except BackendBusy as busy:
            refused.append(n)
            assert "segments in flight" in str(busy) and isinstance(busy, StepUnavailable)
        assert ingress._segments_in_flight == sum(s.reserved for s in admitted) <= limit
    assert refused, "the sizes overflow the limit once"
    for steps in admitted:
        steps.release()
    assert ingress._segments_in_flight == 0
    retry = _AdmittedSteps(ingress, "again")
    assert len(asyncio.run(retry.split(SynthesisRequest(text="x. " * refused[0])))) == refused[0]


def test_a_text_that_can_never_fit_is_a_client_error_not_busy():
    """An idle server with room for 5 segments and a text of 8: retrying cannot help, so not 503
    (the openai SDK would retry it forever) but a ValueError (HTTP 422 invalid_value)."""
    ingress = _ingress(5)
    with pytest.raises(ValueError, match=r"8 segments.*max_segments_in_flight=5") as info:
        asyncio.run(_AdmittedSteps(ingress, "big").split(SynthesisRequest(text="x. " * 8)))
    assert not isinstance(info.value, StepUnavailable) and ingress._segments_in_flight == 0
