"""The collector reads the plain counters at scrape time; each app has its own registry."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import generate_latest

from dragonflybot.aggregator import Fanout
from dragonflybot.app import InstrumentRuntime, build_servers, plan_servers, plan_topology
from dragonflybot.config import AppConfig, InstrumentConfig, VenueConfig
from dragonflybot.metrics import build_registry
from dragonflybot.metrics.collector import FEED_STATES


def runtime(instrument: str = "ETH-BTC") -> InstrumentRuntime:
    config = AppConfig(
        instruments=[InstrumentConfig(name=instrument, listen="127.0.0.1:0")],
        venues=[VenueConfig(name="binance"), VenueConfig(name="bitstamp")],
    )
    return InstrumentRuntime(plan_topology(config)[0])


def test_counters_are_read_when_scraped_not_copied_at_registration() -> None:
    config = AppConfig(
        instruments=[InstrumentConfig(name="ETH-BTC", listen="127.0.0.1:0")],
        venues=[VenueConfig(name="binance"), VenueConfig(name="bitstamp")],
    )
    plans = plan_topology(config)
    rt = InstrumentRuntime(plans[0])
    (server,) = build_servers(
        plan_servers(config, plans), [rt], max_client_rate=0, serving=Fanout()
    )
    registry = build_registry([rt], [server])
    labels = {"instrument": "ETH-BTC", "venue": "binance"}
    assert registry.get_sample_value("dragonflybot_feed_frames_received_total", labels) == 0
    stats = rt.feed_stats["binance"]
    stats.frames, stats.parsed, stats.malformed, stats.gaps = 7, 6, 1, 2
    stats.sync.applied = 5
    rt.aggregator_stats.publications = 3
    rt.stream_stats.sent, rt.stream_stats.conflated_ended = 11, 4
    server.stats.connections_refused, server.stats.floods_reset = 3, 2
    get = registry.get_sample_value
    assert get("dragonflybot_feed_frames_received_total", labels) == 7
    assert get("dragonflybot_feed_frames_parsed_total", labels) == 6
    assert get("dragonflybot_feed_frames_malformed_total", labels) == 1
    assert get("dragonflybot_feed_gaps_total", labels) == 2
    assert get("dragonflybot_feed_book_messages_applied_total", labels) == 5
    other = {"instrument": "ETH-BTC", "venue": "bitstamp"}
    assert get("dragonflybot_feed_frames_received_total", other) == 0
    assert get("dragonflybot_aggregator_publications_total", {"instrument": "ETH-BTC"}) == 3
    assert get("dragonflybot_grpc_summaries_sent_total", {"instrument": "ETH-BTC"}) == 11
    assert get("dragonflybot_grpc_summaries_conflated_total", {"instrument": "ETH-BTC"}) == 4
    # One series per gRPC address: its server serves every instrument there.
    assert get("dragonflybot_grpc_connections_refused_total", {"listen": "127.0.0.1:0"}) == 3
    flood = {"listen": "127.0.0.1:0", "kind": "reset"}
    assert get("dragonflybot_grpc_floods_cut_total", flood) == 2


def test_the_state_gauge_is_one_for_the_current_state_only() -> None:
    rt = runtime()
    registry = build_registry([rt])

    def states() -> dict[str, float | None]:
        return {
            s: registry.get_sample_value(
                "dragonflybot_feed_state",
                {"instrument": "ETH-BTC", "venue": "bitstamp", "state": s},
            )
            for s in FEED_STATES
        }

    assert states() == {s: float(s == "connecting") for s in FEED_STATES}
    rt.feed_stats["bitstamp"].state = "live"
    assert states() == {s: float(s == "live") for s in FEED_STATES}
    rt.feed_stats["bitstamp"].state = "down"
    assert states() == {s: float(s == "down") for s in FEED_STATES}


def test_histograms_expose_the_hop_latencies_in_seconds() -> None:
    rt = runtime()
    registry = build_registry([rt])
    rt.aggregator_stats.receive_to_merged.observe_ns(30_000)  # 30 µs
    rt.aggregator_stats.receive_to_merged.observe_ns(2_000_000)  # 2 ms
    rt.stream_stats.receive_to_sent.observe_ns(400_000)
    get = registry.get_sample_value
    merged = "dragonflybot_latency_receive_to_merged_seconds"
    key = {"instrument": "ETH-BTC"}
    assert get(f"{merged}_count", key) == 2
    assert get(f"{merged}_sum", key) == pytest.approx(0.00203)
    assert get(f"{merged}_bucket", {**key, "le": "2.5e-05"}) == 0
    assert get(f"{merged}_bucket", {**key, "le": "5e-05"}) == 1
    assert get(f"{merged}_bucket", {**key, "le": "0.0025"}) == 2
    assert get(f"{merged}_bucket", {**key, "le": "+Inf"}) == 2
    assert get("dragonflybot_latency_receive_to_sent_seconds_count", key) == 1
    rt.feed_stats["bitstamp"].receive_to_parsed.observe_ns(8_000)  # 8 µs
    parsed = "dragonflybot_latency_receive_to_parsed_seconds"
    bitstamp = {**key, "venue": "bitstamp"}
    assert get(f"{parsed}_count", bitstamp) == 1
    assert get(f"{parsed}_bucket", {**bitstamp, "le": "1e-05"}) == 1
    assert get(f"{parsed}_count", {**key, "venue": "binance"}) == 0


def test_two_apps_have_separate_registries_and_the_global_one_is_untouched() -> None:
    first, second = runtime("ETH-BTC"), runtime("BTC-USDT")
    one, two = build_registry([first]), build_registry([second])
    first.feed_stats["binance"].frames = 5
    second.feed_stats["binance"].frames = 9
    name = "dragonflybot_feed_frames_received_total"
    assert one.get_sample_value(name, {"instrument": "ETH-BTC", "venue": "binance"}) == 5
    assert one.get_sample_value(name, {"instrument": "BTC-USDT", "venue": "binance"}) is None
    assert two.get_sample_value(name, {"instrument": "BTC-USDT", "venue": "binance"}) == 9
    assert b"dragonflybot_" not in generate_latest(prometheus_client.REGISTRY)


def test_process_metrics_come_with_the_registry() -> None:
    registry = build_registry([runtime()])
    text = generate_latest(registry).decode()
    assert "process_resident_memory_bytes" in text
    assert "python_gc_collections_total" in text
