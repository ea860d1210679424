"""Run generated code in a contained subprocess: time and memory limits, no secrets, no network."""

from medalist.sandbox.runner import SandboxResult, network_namespace_available, run_code, scrub_env

__all__ = ["SandboxResult", "network_namespace_available", "run_code", "scrub_env"]
