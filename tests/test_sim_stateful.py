"""Hypothesis drives the world: rules are faults and time steps, invariants are the checker's
safety invariants after every step; at teardown faults stop and every DC must become
writable within the liveness bound (the checker's `liveness-writable`).

The world (3 DCs x 2 replicas, real cores, emulated Consul) is seeded from the drawn
`seed`; every failure message carries it and the rules applied so far (Hypothesis prints
the steps too). The `ci` profile from tests/conftest.py applies; this machine is bounded
to a modest number of examples because each example simulates minutes.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sim.checker import SAFETY_INVARIANTS
from sim.world.faults import FaultSpec
from sim.world.runs import explore_world
from sim.world.world import World

DCS = ("dc1", "dc2", "dc3")
dc = st.sampled_from(DCS)
which = st.sampled_from(("leader", "follower"))


class WorldMachine(RuleBasedStateMachine):
    world: World

    @initialize(seed=st.integers(0, 2**31 - 1))
    def build(self, seed: int) -> None:
        self.seed = seed
        self.world = explore_world(3, 10_000.0, seed, faults=False)
        self.steps: list[str] = []
        self.t = 0.0
        self.advance(20.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.world.run_until(self.t)

    def fault(self, spec: FaultSpec) -> None:
        self.steps.append(spec.describe())
        self.world.inject(spec)

    @rule(a=dc, b=dc, oneway=st.booleans(), duration=st.floats(1.0, 40.0))
    def cut(self, a: str, b: str, oneway: bool, duration: float) -> None:
        if a != b:
            self.fault(FaultSpec("cut", self.t, duration, dcs=(a, b), oneway=oneway))

    @rule(site=dc, duration=st.floats(1.0, 40.0))
    def isolate(self, site: str, duration: float) -> None:
        self.fault(FaultSpec("isolate", self.t, duration, dcs=(site,)))

    @rule(site=dc, replica=which, duration=st.floats(1.0, 30.0))
    def crash(self, site: str, replica: str, duration: float) -> None:
        self.fault(FaultSpec("crash", self.t, duration, dcs=(site,), replica=replica))

    @rule(site=dc, replica=which, duration=st.floats(0.5, 20.0))
    def pause(self, site: str, replica: str, duration: float) -> None:
        self.fault(FaultSpec("pause", self.t, duration, dcs=(site,), replica=replica))

    @rule(site=dc, replica=which, duration=st.floats(1.0, 40.0))
    def admin_fence(self, site: str, replica: str, duration: float) -> None:
        self.fault(FaultSpec("admin-fence", self.t, duration, dcs=(site,), replica=replica))

    @rule(site=dc, duration=st.floats(1.0, 20.0))
    def consul_leader_loss(self, site: str, duration: float) -> None:
        self.fault(FaultSpec("leader-loss", self.t, duration, dcs=(site,)))

    @rule(a=dc, b=dc, loss=st.sampled_from((0.1, 0.5, 0.9)), duration=st.floats(1.0, 30.0))
    def lossy(self, a: str, b: str, loss: float, duration: float) -> None:
        if a != b:
            self.fault(FaultSpec("loss", self.t, duration, dcs=(a, b), loss=loss))

    @rule(seconds=st.floats(0.1, 30.0))
    def wait(self, seconds: float) -> None:
        self.steps.append(f"wait {seconds:.3f}s")
        self.advance(seconds)

    def teardown(self) -> None:
        """Liveness mode: faults stop, and every DC must become writable within the bound."""
        if not hasattr(self, "world"):
            return
        self.world.stop_faults()
        self.advance(self.world.checker.liveness_bound + 1.0)
        self.world.emit({"t": self.t, "kind": "end"})
        broken = [v for v in self.world.violations if v.invariant == "liveness-writable"]
        assert not broken, f"seed {self.seed}: {broken[0]} after steps {self.steps}"

    @precondition(lambda self: hasattr(self, "world"))
    @invariant()
    def safety_holds(self) -> None:
        broken = [v for v in self.world.violations if v.invariant in SAFETY_INVARIANTS]
        assert not broken, f"seed {self.seed}: {broken[0]} after steps {self.steps}"


_profile = settings()
WorldMachine.TestCase.settings = settings(
    _profile, max_examples=min(_profile.max_examples, 30), stateful_step_count=20
)
TestWorld = WorldMachine.TestCase
