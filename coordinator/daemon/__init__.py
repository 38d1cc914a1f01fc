"""The asyncio shell around the sans-IO core.

- `runner.Runner`: drives one ReplicaCore (requests, hooks, timers, admin, long-poll wake-ups).
- `api.Api`: the aiohttp HTTP API (/v1/may-write, /v1/status, /metrics, admin endpoints).
- `metrics.Metrics`, `transitions.TransitionLog`: Prometheus exposition and transition logs.
- `hooks.run_hook`: catch-up hooks as process groups with a timeout.
- `serve.serve`: what `coordinator run` executes; `logsetup.setup_logging`: one-line logs.

No decision logic lives here: the core decides, the shell executes and reports.
"""
