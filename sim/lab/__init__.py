"""The partition lab: the real system (emulated Consul DCs + `coordinator run` replicas)
in network namespaces, with real packet drops, pauses and kills, recorded into a
sim.history JSON-lines file and judged by sim.checker. Needs root; see docs/lab.md.

Modules: net (namespaces, bridge, iptables, teardown), procs (processes), resource (the
protected resource service), observe (history recorder, replica watchers/writers),
harness (the Lab context manager), faults (FaultSpec -> real faults), run (scenario
driver), scenarios (built-in scenarios), analyze (checker, latencies, report), and
__main__ (``python -m sim.lab run SCENARIO|all [--report DIR]``).
"""
