"""Prometheus metrics of one proxy app, in its own registry (two apps in one process do not clash); with
several worker processes ($PROMETHEUS_MULTIPROC_DIR set), every worker's values, merged."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)


class ProxyMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("modelsat_requests", "Requests answered, by endpoint and HTTP status",
                                ["endpoint", "status"], registry=r)
        self.chosen = Counter("modelsat_chosen_model", "Requests sent to each model, by the name asked for",
                              ["model", "requested"], registry=r)
        self.routing = Histogram("modelsat_routing_overhead_seconds",
                                 "Time from request parsed to routing decision (includes scoring)",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_latency = Histogram("modelsat_upstream_first_byte_seconds",
                                          "Upstream time to first byte, per model", ["model"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter("modelsat_upstream_errors", "Failed upstream attempts, per model and reason",
                                       ["model", "reason"], registry=r)
        self.tokens = Counter("modelsat_tokens", "Tokens reported by upstreams", ["model", "kind"], registry=r)
        # spend by model: what the upstreams' usage and the configured prices say was spent, and what the policy
        # expected when it routed (every answered routed request of a priced model), side by side
        self.cost = Counter("modelsat_cost_usd", "Cost in USD of answers from models with a config price, from "
                            "the usage the upstream reported", ["model"], registry=r)
        self.expected_cost = Counter("modelsat_expected_cost_usd", "Expected cost in USD of routed requests "
                                     "answered, as the policy estimated it when routing", ["model"], registry=r)
        self.circuit_open = Gauge("modelsat_circuit_open", "1 while a model's circuit breaker is open "
                                  "(in any worker)", ["model"], registry=r, multiprocess_mode="max")
        self.streams_cut = Counter("modelsat_streams_cut", "Streams ended by an error event, per model and "
                                   "reason (upstream_stream_broken, stream_deadline_exceeded)", ["model", "reason"],
                                   registry=r)
        self.disconnects = Counter("modelsat_client_disconnects", "Clients that left before the answer ended",
                                   registry=r)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format: this process's, or all workers' in multi-process mode."""
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, folder)
            return generate_latest(merged)
        return generate_latest(self.registry)

    def record_usage(self, model: str, usage: dict | None, cost: float | None) -> None:
        if isinstance(usage, dict):
            for kind in ("prompt_tokens", "completion_tokens"):
                n = usage.get(kind)
                if isinstance(n, int) and n >= 0:
                    self.tokens.labels(model, kind.removesuffix("_tokens")).inc(n)
        if cost is not None:
            self.cost.labels(model).inc(cost)
