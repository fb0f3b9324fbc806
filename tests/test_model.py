"""The Zonos LM against the reference: layout, loading, conditioning, prefill and per-step logits."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from benchmarks.golden import prefix_conditioning, teacher_forced_logits
from conftest import CASES, DATA, case_request, warm_hub_cache
from pipeline.engine import ZonosEngine
from pipeline.hub import WeightsUnavailableError
from pipeline.loading import RANDOM_1B6, RANDOM_SHAPES, RANDOM_TINY, config_json, from_pretrained, resolve_dtype
from pipeline.model import UnsupportedCheckpointError, ZonosConfig, ZonosModel


@pytest.fixture(scope="module")
def fp32_model():
    return from_pretrained(str(DATA), dtype="float32")


def test_published_config_matches_checkpoint_layout_on_meta_device():
    layout = json.loads((DATA / "zonos-v0.1-transformer.layout.json").read_text())
    config = ZonosConfig.from_dict(layout["config"])
    with torch.device("meta"):
        model = ZonosModel(config)
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    assert shapes == layout["tensors"]
    assert sum(t.numel() for t in model.state_dict().values()) == layout["n_elements"]
    assert config_json(RANDOM_SHAPES[RANDOM_1B6]) == layout["config"]


def test_random_tiny_is_the_fixture_checkpoint_s_config():
    assert config_json(RANDOM_SHAPES[RANDOM_TINY]) == json.loads((DATA / "config.json").read_text())


def test_hybrid_checkpoint_is_refused_clearly():
    raw = json.loads((DATA / "config.json").read_text())
    raw["backbone"]["ssm_cfg"] = {"layer": "Mamba2"}
    raw["backbone"]["attn_layer_idx"] = [1]
    with pytest.raises(UnsupportedCheckpointError, match=r"hybrid.*not supported yet"):
        ZonosConfig.from_dict(raw)


def test_loads_a_directory_in_the_published_format(tmp_path, fp32_model):
    model = from_pretrained("random-tiny")
    state = {name: t.to(torch.bfloat16).contiguous() for name, t in model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(model.config.raw))
    loaded = from_pretrained(str(tmp_path), dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor.to(torch.bfloat16), state[name]), name


def test_missing_directory_files_name_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsUnavailableError, match=r"model\.safetensors"):
        from_pretrained(str(tmp_path))


def test_unreachable_repo_names_the_repo_and_the_local_directory_way(offline_hub):
    with pytest.raises(WeightsUnavailableError) as error:
        from_pretrained("Zyphra/Zonos-v0.1-transformer")
    assert "Zyphra/Zonos-v0.1-transformer" in str(error.value)
    assert "local directory" in str(error.value)


def test_repo_id_loads_from_a_warm_cache_offline(offline_hub, fp32_model, tmp_path):
    (tmp_path / "files").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(DATA / name, tmp_path / "files" / name)
    warm_hub_cache(offline_hub, "Zyphra/Zonos-v0.1-transformer", tmp_path / "files")
    model = from_pretrained("Zyphra/Zonos-v0.1-transformer")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fp32_model.parameters(), strict=True))


def test_not_a_directory_nor_a_repo_id():
    with pytest.raises(WeightsUnavailableError, match="neither a directory nor"):
        from_pretrained("/no/such/checkpoint/dir")


def test_unknown_dtype():
    with pytest.raises(ValueError, match="float64"):
        from_pretrained("random-tiny", dtype="float64")


def test_random_tiny_is_seeded_and_says_it_is_noise(caplog):
    first, second = from_pretrained("random-tiny"), from_pretrained("random-tiny")
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    assert first.config.d_model == 256 and first.config.n_layer == 4
    assert "noise" in caplog.text


@pytest.mark.parametrize("index", range(len(CASES)))
def test_prefix_conditioning_matches_reference(fp32_model, golden, index):
    expected = golden[f"case{index}.prefix_conditioning"]
    got = torch.stack(
        [prefix_conditioning(fp32_model, CASES[index], True), prefix_conditioning(fp32_model, CASES[index], False)]
    )
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_prefill_and_every_step_logits_match_reference(fp32_model, golden, index):
    logits = teacher_forced_logits(fp32_model, golden, index)
    torch.testing.assert_close(logits[:1], golden[f"case{index}.prefill_logits"], atol=1e-4, rtol=0)
    steps = golden[f"case{index}.step_logits"]
    # The reference's last loop step feeds the final EOS frame and writes nothing that is output;
    # the engine skips it, and the frames it would feed there are the reference's own.
    torch.testing.assert_close(logits[1:], steps[: logits.shape[0] - 1], atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def half_models():
    return {dtype: from_pretrained(str(DATA), dtype=dtype) for dtype in ("bfloat16", "float16")}


# bf16 (what the reference serves in) on every case; fp16, slow on CPU, on two.
HALF_CASES = [("bfloat16", i) for i in range(len(CASES))] + [("float16", 0), ("float16", 2)]


@pytest.mark.parametrize(("dtype", "index"), HALF_CASES)
def test_half_precision_logits_agree_with_float32(fp32_model, half_models, golden, dtype, index):
    half_model = half_models[dtype]
    assert half_model.dtype in (torch.bfloat16, torch.float16)
    assert half_model.prefix_conditioner.project.weight.dtype == torch.float32
    fp32_logits = teacher_forced_logits(fp32_model, golden, index)
    half_logits = teacher_forced_logits(half_model, golden, index)
    finite = torch.isfinite(fp32_logits)
    assert torch.equal(finite, torch.isfinite(half_logits))
    similarity = torch.nn.functional.cosine_similarity(
        fp32_logits[finite].view(-1, 1025), half_logits[finite].view(-1, 1025), dim=-1
    )
    assert similarity.min() > 0.99


def test_bfloat16_engine_runs_all_six_cases():
    engine = ZonosEngine.from_pretrained(str(DATA), dtype="bfloat16", max_rows=16, max_seq_len=512)
    assert engine.runner.cache.k.dtype == torch.bfloat16
    results = engine.generate([case_request(case) for case in CASES])
    for case, result in zip(CASES, results, strict=True):
        assert result.codes.shape[0] == 9 and 0 < result.codes.shape[1] <= case["max_new_tokens"]
        assert int(result.codes.min()) >= 0 and int(result.codes.max()) < 1024
        assert result.stop_reason in ("eos", "length")
        assert (result.stop_reason == "length") == (result.codes.shape[1] == case["max_new_tokens"])


def test_auto_dtype_is_the_fast_path_on_cuda_and_exact_elsewhere():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda:0") == torch.bfloat16
    assert resolve_dtype("auto", "cuda", cuda_default=torch.float16) == torch.float16  # the vocoder's choice
    assert resolve_dtype("float16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="'fp8' is not one of auto, float32"):
        resolve_dtype("fp8")
