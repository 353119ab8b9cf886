"""Gateway metrics (contracts/gateway.md §7).

Counted in plain dicts on the request path (a prometheus_client `labels().inc()` costs more than the rest
of a cached key check) and exposed through one custom collector. Workers send their `dump()` to the
supervisor, which `merge()`s them for its status port.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["BUCKETS", "GatewayMetrics"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value


class GatewayMetrics(Collector):
    """All gateway counters of one process (or, merged, of a node)."""

    def __init__(self, *, app_label: bool = True) -> None:
        self.app_label = app_label
        self.requests: dict[tuple[str, str, str, str], int] = {}
        self.request_duration: dict[str, _Histogram] = {}
        self.upstream_duration: dict[str, _Histogram] = {}
        self.auth_failures: dict[tuple[str, str], int] = {}
        self.idp_requests: dict[tuple[str, str, str], int] = {}
        self.cache_events: dict[tuple[str, str], int] = {}
        self.kid_miss: dict[str, int] = {}
        self.config_rejected = 0
        self.config_version: int | None = None
        self.config_loaded_at: float | None = None
        self.workers: dict[str, dict[str, Any]] = {}

    # -- counting (hot path) -------------------------------------------------------------------------
    def request(self, route: str, status: int, auth_method: str, app_id: str, duration: float) -> None:
        key = (route, str(status), auth_method, app_id if self.app_label else "")
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.request_duration.get(route)
        if hist is None:
            hist = self.request_duration[route] = _Histogram()
        hist.observe(duration)

    def upstream(self, route: str, duration: float) -> None:
        hist = self.upstream_duration.get(route)
        if hist is None:
            hist = self.upstream_duration[route] = _Histogram()
        hist.observe(duration)

    def auth_failure(self, route: str, reason: str) -> None:
        key = (route, reason)
        self.auth_failures[key] = self.auth_failures.get(key, 0) + 1

    def idp_request(self, issuer: str, kind: str, outcome: str) -> None:
        key = (issuer, kind, outcome)
        self.idp_requests[key] = self.idp_requests.get(key, 0) + 1

    def cache_event(self, cache: str, event: str) -> None:
        key = (cache, event)
        self.cache_events[key] = self.cache_events.get(key, 0) + 1

    def jwks_kid_miss(self, issuer: str) -> None:
        self.kid_miss[issuer] = self.kid_miss.get(issuer, 0) + 1

    def config_loaded(self, version: int) -> None:
        self.config_version = version
        self.config_loaded_at = time.time()

    # -- workers -----------------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """A JSON-able copy of every counter."""

        def hists(src: dict[str, _Histogram]) -> dict[str, Any]:
            return {k: [list(h.counts), h.total] for k, h in src.items()}

        return {
            "requests": [[*k, v] for k, v in self.requests.items()],
            "request_duration": hists(self.request_duration),
            "upstream_duration": hists(self.upstream_duration),
            "auth_failures": [[*k, v] for k, v in self.auth_failures.items()],
            "idp_requests": [[*k, v] for k, v in self.idp_requests.items()],
            "cache_events": [[*k, v] for k, v in self.cache_events.items()],
            "kid_miss": self.kid_miss,
            "config_rejected": self.config_rejected,
        }

    @classmethod
    def merged(cls, own: GatewayMetrics, dumps: list[dict[str, Any]]) -> GatewayMetrics:
        out = cls(app_label=own.app_label)
        out.config_version = own.config_version
        out.config_loaded_at = own.config_loaded_at
        for dump in [own.dump(), *dumps]:
            for *k, v in dump["requests"]:
                key4 = (str(k[0]), str(k[1]), str(k[2]), str(k[3]))
                out.requests[key4] = out.requests.get(key4, 0) + int(v)
            for name in ("request_duration", "upstream_duration"):
                target: dict[str, _Histogram] = getattr(out, name)
                for route, (counts, total) in dump[name].items():
                    h = target.setdefault(route, _Histogram())
                    h.counts = [a + b for a, b in zip(h.counts, counts, strict=True)]
                    h.total += total
            for *k, v in dump["auth_failures"]:
                key2 = (str(k[0]), str(k[1]))
                out.auth_failures[key2] = out.auth_failures.get(key2, 0) + int(v)
            for *k, v in dump["idp_requests"]:
                key3 = (str(k[0]), str(k[1]), str(k[2]))
                out.idp_requests[key3] = out.idp_requests.get(key3, 0) + int(v)
            for *k, v in dump["cache_events"]:
                key2 = (str(k[0]), str(k[1]))
                out.cache_events[key2] = out.cache_events.get(key2, 0) + int(v)
            for issuer, v in dump["kid_miss"].items():
                out.kid_miss[issuer] = out.kid_miss.get(issuer, 0) + int(v)
            out.config_rejected += int(dump["config_rejected"])
        return out

    # -- exposition --------------------------------------------------------------------------------------
    def collect(self) -> Iterator[Any]:
        labels = ["route", "status", "auth_method"] + (["application_id"] if self.app_label else [])
        c = CounterMetricFamily("keystile_gateway_requests", "Proxied requests", labels=labels)
        for (route, status, method, app), v in self.requests.items():
            c.add_metric([route, status, method, app] if self.app_label else [route, status, method], v)
        yield c
        for name, src, doc in (
            ("keystile_gateway_request_duration_seconds", self.request_duration, "Request duration"),
            ("keystile_gateway_upstream_duration_seconds", self.upstream_duration, "Upstream duration"),
        ):
            h = HistogramMetricFamily(name, doc, labels=["route"])
            for route, hist in src.items():
                cumulative = 0
                buckets = []
                for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
                h.add_metric([route], buckets, hist.total)
            yield h
        c = CounterMetricFamily("keystile_gateway_auth_failures", "Refused credentials", labels=["route", "reason"])
        for k2, v in self.auth_failures.items():
            c.add_metric(list(k2), v)
        yield c
        c = CounterMetricFamily(
            "keystile_gateway_idp_requests", "Calls to identity providers", labels=["issuer", "kind", "outcome"]
        )
        for k3, v in self.idp_requests.items():
            c.add_metric(list(k3), v)
        yield c
        c = CounterMetricFamily("keystile_gateway_cache_events", "Cache events", labels=["cache", "event"])
        for k2, v in self.cache_events.items():
            c.add_metric(list(k2), v)
        yield c
        c = CounterMetricFamily("keystile_gateway_jwks_kid_miss", "Tokens with an unknown kid", labels=["issuer"])
        for issuer, v in self.kid_miss.items():
            c.add_metric([issuer], v)
        yield c
        c = CounterMetricFamily("keystile_gateway_config_rejected", "Snapshots refused (schema or format_version)")
        c.add_metric([], self.config_rejected)
        yield c
        g = GaugeMetricFamily("keystile_gateway_config_version", "Loaded config version")
        g.add_metric([], float(self.config_version if self.config_version is not None else -1))
        yield g
        g = GaugeMetricFamily("keystile_gateway_config_age_seconds", "Seconds since the config was loaded")
        g.add_metric([], time.time() - self.config_loaded_at if self.config_loaded_at else -1.0)
        yield g
