"""Cost per call: usage by modality times the model's price, on the record, in the store,
in metrics and in ``callbridge calls show``."""

from __future__ import annotations

import asyncio

import pytest

from callbridge.bridge.config import DEFAULT_PRICES, CostSettings, ModelPrice
from callbridge.bridge.cost import call_cost
from callbridge.emulators.stack import DEFAULT_MODEL, LocalStack
from callbridge.service.metrics import BridgeMetrics
from callbridge.service.store import RecordStore
from callbridge.service.store_cli import main as calls_main
from tests.observe.test_tracing import Collect, short_call

PRICE = ModelPrice(input_text=0.5, input_audio=3.0, output_text=2.0, output_audio=12.0)


@pytest.mark.parametrize(
    ("usage", "dollars"),
    [
        # 1000 text + 2000 audio in, 500 audio out.
        (
            {
                "prompt_tokens": 3000,
                "response_tokens": 500,
                "tokens_prompt_text": 1000,
                "tokens_prompt_audio": 2000,
                "tokens_response_audio": 500,
            },
            1000 * 0.5e-6 + 2000 * 3e-6 + 500 * 12e-6,
        ),
        # Text answers are priced at the text rate.
        ({"response_tokens": 100, "tokens_response_text": 100}, 100 * 2e-6),
        # No modality details: priced at the (higher) audio rates.
        ({"prompt_tokens": 1_000_000, "response_tokens": 0}, 3.0),
        # Details covering part of the count: the rest at the audio rate.
        ({"prompt_tokens": 300, "tokens_prompt_text": 100}, 100 * 0.5e-6 + 200 * 3e-6),
        ({}, 0.0),
        # Thinking tokens (Gemini 3.8) are output at the text rate, beside the response count:
        # they never stand in for response tokens without details.
        (
            {"response_tokens": 42, "tokens_response_thoughts": 136},
            42 * 12e-6 + 136 * 2e-6,
        ),
        (
            {"response_tokens": 42, "tokens_response_audio": 42, "tokens_response_thoughts": 136},
            42 * 12e-6 + 136 * 2e-6,
        ),
    ],
)
def test_call_cost_prices_each_direction_and_modality(
    usage: dict[str, int], dollars: float
) -> None:
    assert call_cost(usage, PRICE).usd == pytest.approx(dollars, abs=1e-9)


def test_price_table_matches_the_longest_prefix_and_config_wins() -> None:
    defaults = CostSettings()
    assert defaults.price_for(DEFAULT_MODEL) == DEFAULT_PRICES["gemini-2.5-flash-native-audio"]
    assert defaults.price_for("gemini-live-2.5-flash-native-audio") is not None
    assert defaults.price_for("some-other-model") is None
    cheap = ModelPrice(input_text=0, input_audio=1, output_text=0, output_audio=1)
    custom = CostSettings(prices={DEFAULT_MODEL: cheap, "my-model": PRICE})
    assert custom.price_for(DEFAULT_MODEL) == cheap
    assert custom.price_for("my-model-v2") == PRICE


async def test_a_call_is_priced_on_the_record_store_metrics_and_calls_show(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    collect = Collect()
    metrics = BridgeMetrics("local")
    script, caller = short_call()
    async with RecordStore(sqlite_url) as store:
        async with LocalStack(
            script,
            overrides={"model": {"greeting_prompt": None}},
            record_listeners=[collect, store.listener()],
        ) as stack:
            await stack.place_call(caller).ended(timeout=60)
        await store.flush()
        record = collect.records[0]
        stored = await store.get_call(record.call_id)
    metrics.on_finished(record, None)

    assert record.model == DEFAULT_MODEL
    expected = call_cost(record.usage, DEFAULT_PRICES["gemini-2.5-flash-native-audio"]).usd
    assert record.usage.get("tokens_prompt_audio", 0) > 0, record.usage
    assert record.cost_usd == pytest.approx(expected) and expected > 0
    ended = record.entries[-1]
    assert ended.data["state"] == "ended" and ended.data["cost_usd"] == record.cost_usd
    assert stored is not None
    assert stored.cost_usd == pytest.approx(expected) and stored.model == DEFAULT_MODEL
    exposition = metrics.exposition().decode()
    assert f'callbridge_model_cost_usd_total{{model="{DEFAULT_MODEL}"}}' in exposition
    assert "callbridge_call_cost_usd_count 1.0" in exposition

    assert await asyncio.to_thread(calls_main, ["show", record.call_id, "--url", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert f"cost:     ${expected:.4f}" in out
    assert f"model:    {DEFAULT_MODEL}" in out


async def test_a_38_call_pays_for_its_thinking_tokens_at_the_output_text_rate() -> None:
    """Gemini 3.8 reports thinking tokens beside the response count; they are billed."""
    model = "gemini-3.8-live"
    price = ModelPrice(input_text=1.0, input_audio=4.0, output_text=3.0, output_audio=16.0)
    collect = Collect()
    script, caller = short_call()
    async with LocalStack(
        script,
        overrides={
            "model": {"model": model, "greeting_prompt": None},
            "cost": {"prices": {model: price.model_dump()}},
        },
        record_listeners=[collect],
    ) as stack:
        await stack.place_call(caller).ended(timeout=60)
    record = collect.records[0]

    thoughts = record.usage.get("tokens_response_thoughts", 0)
    assert thoughts > 0, record.usage
    assert record.usage["total_tokens"] == (
        record.usage["prompt_tokens"] + record.usage["response_tokens"] + thoughts
    )
    unthinking = {k: v for k, v in record.usage.items() if k != "tokens_response_thoughts"}
    assert record.cost_usd == pytest.approx(
        call_cost(unthinking, price).usd + thoughts * price.output_text * 1e-6
    )
