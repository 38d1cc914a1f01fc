"""The deterministic discrete-event world: clock, network, faults, replicas (docs/simulation.md)."""
