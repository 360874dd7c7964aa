"""Workloads: profiles (runners, faults, sizes) and the client operations a seed performs."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import attrs

from engine import Engine, Retries, WorkflowDefinition, WorkflowEvent, WorkflowStep, define_workflow
from sim.core.choices import ChoiceSource
from sim.world.current import CURRENT_WORLD
from sim.world.faults import FaultConfig
from sim.world.scripts import script_ops
from sim.world.workflows import ALL_WORKFLOWS, QuoteParams


def _callback(i: int, timeout: float) -> Any:
    async def call(ctx: Any) -> int:
        world = CURRENT_WORLD.get()
        if world is not None:
            await world.in_callback(ctx.step_key, timeout)
        return i

    return call


def _sync_callback(i: int, busy: float) -> Any:
    def call(ctx: Any) -> int:
        world = CURRENT_WORLD.get()
        if world is not None:
            world.busy(ctx.step_key, busy)
        return i

    return call


@define_workflow("sim-steps")
async def sim_steps(event: WorkflowEvent, step: WorkflowStep) -> int:
    """N async steps that yield inside their callbacks, optionally waiting for a `go` event midway; step
    `sync_at`, if given, is a sync callback that blocks for `busy` simulated seconds (near the lease length)."""
    total = 0
    for i in range(int(event.payload["steps"])):
        if i == event.payload.get("wait_at"):
            await step.wait_for_event("go", type="go", timeout="1 hour")
        callback = (_sync_callback(i, float(event.payload["busy"])) if i == event.payload.get("sync_at")
                    else _callback(i, 60.0))
        total += await step.do(f"s{i}", callback, retries=Retries(limit=2, delay="2 s", backoff="constant"),
                               timeout="60 s")
    return total


@define_workflow("race-workflow")
async def race(event: WorkflowEvent, step: WorkflowStep) -> str:
    """A sleep, then a wait for `go`, then one step: small enough to explore every interleaving."""
    await step.sleep("nap", "10 s")
    got = await step.wait_for_event("go", type="go", timeout="5 min")
    return str(await step.do("done", lambda: f"done:{got.payload}"))


def library() -> list[WorkflowDefinition]:
    """Every workflow a simulated runner knows."""
    return [sim_steps, race, *ALL_WORKFLOWS]


@attrs.frozen(kw_only=True)
class Op:
    """One client operation of the workload."""

    kind: str
    workflow: str
    instance_id: str
    params: Any = None
    event_type: str | None = None
    payload: Any = None
    event_id: str | None = None
    late: bool = False
    at_deadline: bool = False  # sent exactly at the deadline of the wait its instance is parked on, if any
    when_held: bool = False  # waits (a while) until a runner holds the instance: a pause that lands mid-run

    def apply(self, client: Engine) -> Coroutine[Any, Any, Any]:
        if self.kind == "create":
            return client.create(self.workflow, self.params, id=self.instance_id)
        if self.kind == "batch":  # params: the items as (id, params) pairs; anything else is passed as is
            return client.create_batch(self.workflow, [{"id": item[0], "params": item[1]}
                                                       if isinstance(item, tuple) else item for item in self.params])
        if self.kind == "event":
            assert self.event_type is not None
            return client.send_event(self.workflow, self.instance_id, type=self.event_type, payload=self.payload,
                                     event_id=self.event_id)
        method: Any = getattr(client, self.kind)
        coro: Coroutine[Any, Any, Any] = method(self.workflow, self.instance_id)
        return coro

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"instance": self.instance_id}
        if self.event_type is not None:
            out["type"] = self.event_type
        if self.event_id is not None:
            out["event_id"] = self.event_id
        return out


@attrs.frozen(kw_only=True)
class Profile:
    """A named simulation configuration; `stepsim fuzz --profile NAME` selects one."""

    name: str
    workload: str = "mixed"
    runners: int = 3
    instances: int = 3
    lease: float = 30.0
    poll: float = 60.0
    max_tasks: int = 4
    max_actions: int = 400
    client_rate: float = 0.1
    faults: FaultConfig = attrs.field(factory=FaultConfig.default)
    swarm: bool = False
    oracle: bool = True  # the reference model judges the run (off: only the generic properties P1-P11 do)
    scripts: float = 0.7  # the share of mixed-workload instances that run a random `m-script` (model-judged)
    late_by: float = 7200.0
    liveness_bound: float = 3 * 86400.0
    liveness_steps: int = 20_000
    hang_budget: float | None = 30.0  # wall seconds a seed may take before it fails as a "hang" (~0.02 s is usual)
    concurrency: int = 1  # runner loops per simulated process (run_worker(concurrency=...)), sharing its store
    database: str | None = None  # a postgresql:// URL runs the seed on PostgreSQL (default: in-memory SQLite)


PROFILES: dict[str, Profile] = {
    "default": Profile(name="default"),
    "swarm": Profile(name="swarm", swarm=True),
    "calm": Profile(name="calm", faults=FaultConfig.none()),
    "sleepy": Profile(name="sleepy", workload="sleepy", instances=3, faults=FaultConfig.none()),
    # Sync steps that block for 0.5x..1.5x the 30 s lease (timeout 60 s): only the heartbeat keeps them.
    "slow-sync": Profile(name="slow-sync", workload="slow-sync", instances=3),
    # Two processes of two runner loops each (run_worker(concurrency=2)): loops of one process share its
    # store, its clock and its crashes.
    "pooled": Profile(name="pooled", runners=2, concurrency=2),
    "s1": Profile(name="s1", workload="s1", runners=3, instances=2, lease=30.0, max_actions=300,
                  faults=FaultConfig(crash=0.02, max_crashes=1, restart_runner=0.3)),
}


def get_profile(name: str) -> Profile:
    """A profile by name; KeyError lists the known names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None


def _s1(choices: ChoiceSource) -> list[list[Op]]:
    """Reference scenario S1: 2 workflows x 5 steps, 2 events, one pause/resume, one terminate."""
    a = [Op(kind="create", workflow="sim-steps", instance_id="a", params={"steps": 5, "wait_at": 2}),
         Op(kind="event", workflow="sim-steps", instance_id="a", event_type="go", payload={"n": 1}),
         Op(kind="pause", workflow="sim-steps", instance_id="a"),
         Op(kind="resume", workflow="sim-steps", instance_id="a")]
    b = [Op(kind="create", workflow="sim-steps", instance_id="b", params={"steps": 5, "wait_at": 2}),
         Op(kind="event", workflow="sim-steps", instance_id="b", event_type="go", payload={"n": 2}),
         Op(kind="terminate", workflow="sim-steps", instance_id="b")]
    del choices
    return [a, b]


def _instance_ops(choices: ChoiceSource, index: int, lease: float, scripts: float) -> list[Op]:
    if choices.flip("input", scripts):
        # Most instances run a random step script the reference model judges move by move.
        return [Op(**kw) for kw in script_ops(choices, index, lease)]
    iid = f"i{index}"
    kind = choices.choose("input", 7)

    def ev(wf: str, type: str, payload: Any, *, late: bool = False) -> Op:
        event_id = f"{iid}-{type}" if choices.flip("input", 0.5) else None
        return Op(kind="event", workflow=wf, instance_id=iid, event_type=type, payload=payload, event_id=event_id,
                  late=late)

    if kind == 0:
        steps = 2 + choices.choose("input", 5)
        wait_at = choices.choose("input", steps + 1)
        params: dict[str, Any] = {"steps": steps, "wait_at": wait_at}
        if steps >= 5:
            # The last step blocks in sync code for 1.2 leases: only the heartbeat keeps it (issue 10).
            params.update(sync_at=steps - 1, busy=1.2 * lease)
        ops = [Op(kind="create", workflow="sim-steps", instance_id=iid, params=params)]
        return ops + [ev("sim-steps", "go", {"i": index})] if wait_at < steps else ops
    if kind == 1:
        return [Op(kind="create", workflow="approval-workflow", instance_id=iid,
                   params={"request_id": iid, "amount": 1 + choices.choose("input", 500)}),
                ev("approval-workflow", "approval", {"approved": choices.flip("input", 0.8)}, late=True),
                ev("approval-workflow", "fulfillment", {"confirmation_id": f"c-{iid}"})]
    if kind == 2:
        backoff = ("constant", "linear", "exponential")[choices.choose("input", 3)]
        return [Op(kind="create", workflow="charge-workflow", instance_id=iid,
                   params={"fail_times": choices.choose("input", 6), "backoff": backoff, "amount": 10})]
    if kind == 3:
        return [Op(kind="create", workflow="loop-workflow", instance_id=iid,
                   params={"steps": 3 + choices.choose("input", 15)})]
    if kind == 4:
        stages = 1 + choices.choose("input", 3)
        return [Op(kind="create", workflow="chain-workflow", instance_id=iid, params={"stages": stages})] + [
            ev("chain-workflow", f"stage-{s}", {"s": s}, late=True) for s in range(stages)]
    if kind == 6:
        # Params as an attrs instance or a dict, sometimes invalid (INVALID_PARAMS, nothing written); big
        # quantities of the dear item make an output the output schema refuses.
        sku = ("nut", "bolt")[choices.choose("input", 2)]
        quantity = (0, 1, 4)[choices.choose("input", 3)]
        given: Any = {"sku": sku, "quantity": quantity}
        if quantity > 0 and choices.flip("input", 0.5):
            given = QuoteParams(sku, quantity)
        elif quantity == 0:
            given = (given, [sku, quantity])[choices.choose("input", 2)]  # refused: not even an object
        return [Op(kind="create", workflow="quote-workflow", instance_id=iid, params=given)]
    ops = [Op(kind="create", workflow="timeout-workflow", instance_id=iid, params={"timeout": "10 min"})]
    return ops + [ev("timeout-workflow", "reply", {"ok": True}, late=True)] if choices.flip("input", 0.6) else ops


def _slow_sync_ops(choices: ChoiceSource, index: int, lease: float) -> list[Op]:
    steps = 2 + choices.choose("input", 3)
    busy = lease * (0.5 + choices.choose("input", 11) / 10.0)
    return [Op(kind="create", workflow="sim-steps", instance_id=f"y{index}",
               params={"steps": steps, "sync_at": choices.choose("input", steps), "busy": busy})]


def build_workload(choices: ChoiceSource, profile: Profile) -> list[Op]:
    """Per-instance op sequences, merged in a seed-chosen order (each instance's own order kept)."""
    if profile.workload == "s1":
        queues = _s1(choices)
    elif profile.workload == "slow-sync":
        queues = [_slow_sync_ops(choices, i, profile.lease) for i in range(profile.instances)]
    elif profile.workload == "sleepy":
        queues = [[Op(kind="create", workflow="sleepy-workflow", instance_id=f"z{i}",
                      params={"naps": 4, "nap": "6 hours"})] for i in range(profile.instances)]
    else:
        queues = [_instance_ops(choices, i, profile.lease, profile.scripts) for i in range(profile.instances)]
    merged: list[Op] = []
    while any(queues):
        live = [q for q in queues if q]
        merged.append(live[choices.choose("input", len(live))].pop(0))
    return merged
