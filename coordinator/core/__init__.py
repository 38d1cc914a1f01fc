"""The sans-IO core: pure state machines and decision functions.

Nothing in this package reads a clock, opens a socket, sleeps, draws random numbers or
parses files: time (`now`, monotonic seconds) and inputs are passed in, decisions and
actions come out. The asyncio daemon (coordinator.daemon) and the simulator (sim.world)
are thin shells around it. tests/test_core_purity.py enforces the import rule.
"""
