"""Routers: one interface (base.Router), a registry, Model-SAT and the baselines (one module each)."""

from modelsat.routers.base import Router, RouterError, available, benchmark_routers, get, register

__all__ = ["Router", "RouterError", "available", "benchmark_routers", "get", "register"]
