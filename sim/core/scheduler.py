"""A controlled asyncio scheduler: many simulated processes, one private loop, one order (DESIGN §5).

Simulated processes (runners, clients, fault injectors) are ordinary asyncio tasks on a private event loop.
They may only *wait* through the scheduler: ``SimRuntime.checkpoint`` parks a task as a runnable waiter and
``SimRuntime.sleep`` parks it as a timer. Between two scheduler steps the loop runs until nothing is ready,
so every process is parked (or blocked on something only another process can release); the step then asks
the ``ChoiceSource`` which parked waiter resumes. Virtual time moves only when nothing runnable is left: the
clock jumps to the earliest timer. Hence one seed fixes the interleaving and the timing of a whole run.

The scheduler is driven synchronously from outside the loop (``step``, ``run``, ``crash``); calling those
from inside a simulated task, or while another event loop runs in this thread, is an error.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio import events
import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal, Self, TypeVar

import attrs

from sim.core.choices import ChoiceSource
from sim.core.clock import VirtualClock

__all__ = ["Scheduler", "SimulationError", "StepResult", "Waiter", "WaiterKind"]

WaiterKind = Literal["run", "timer"]

_T = TypeVar("_T")

# Cancelling a crashed process's tasks is repeated this often before we call the process unkillable: each
# round lets cleanup code that swallowed one CancelledError hit the next await and be cancelled again.
_KILL_ROUNDS = 100


class SimulationError(Exception):
    """The simulation itself was misused or lost determinism (not a failure of the code under test)."""


@attrs.frozen
class Waiter:
    """A parked task: runnable (``kind="run"``) or a timer due at global time ``due``.

    ``seq`` is a global counter assigned at parking time; it orders waiters deterministically.
    """

    process: str
    label: str
    kind: WaiterKind
    due: float | None
    seq: int


@attrs.frozen
class StepResult:
    """What one scheduler step moved: which process, at which parking label, at what global time."""

    index: int
    t: float
    process: str
    label: str
    kind: WaiterKind
    eligible: int  # how many waiters could have moved; 1 means the step was forced


@attrs.define(eq=False)
class _Process:
    """One incarnation of a named process; a restart under the same name is a new incarnation."""

    scheduler: Scheduler
    name: str
    root: asyncio.Task[Any] | None = None
    body: Coroutine[Any, Any, Any] | None = None  # the coroutine given to spawn(), run by root
    # A dict, not a set: set order follows id() hashes, and crash() must cancel tasks in a stable order.
    tasks: dict[asyncio.Task[Any], None] = attrs.Factory(dict)
    crashed: bool = False


@attrs.define(eq=False)
class _Parked:
    waiter: Waiter
    future: asyncio.Future[None]
    process: _Process


# Which process incarnation the running task belongs to. Set in the root task's context at spawn(); asyncio
# copies the current context into every task it creates, so the engine's child tasks (heartbeats,
# attempt-timeout races) inherit it without knowing about the simulator. It holds the incarnation rather
# than the name so a task of a crashed incarnation can never pass for its restarted successor.
_CURRENT: contextvars.ContextVar[_Process | None] = contextvars.ContextVar("stepsim_process", default=None)


def _has_ready_callbacks(loop: asyncio.AbstractEventLoop) -> bool:
    """True while the loop has callbacks due now, i.e. some task can still make progress.

    asyncio has no public way to ask "is every task blocked?". ``BaseEventLoop._ready`` — the deque of
    callbacks the next loop iteration will run — answers it exactly; we create the loop ourselves (a plain
    ``SelectorEventLoop``, never a policy-provided one such as uvloop), so the attribute is there.
    """
    return bool(loop._ready)  # type: ignore[attr-defined]


def _real_timers(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """Live ``call_later``/``call_at`` handles: waits on the real clock, which the simulation cannot control."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return [handle for handle in scheduled if not handle.cancelled()]


@attrs.define(eq=False)
class Scheduler:
    """Runs simulated processes on a private event loop in an order decided by ``choices``.

    Use it as a context manager (or call ``close()``) so the loop and every pending task are torn down.
    """

    choices: ChoiceSource
    clock: VirtualClock = attrs.Factory(VirtualClock)
    max_rounds: int = attrs.field(default=1_000_000, kw_only=True)
    unhandled: list[dict[str, Any]] = attrs.field(init=False, factory=list)
    _loop: asyncio.AbstractEventLoop = attrs.field(init=False)
    _procs: dict[str, _Process] = attrs.field(init=False, factory=dict)
    _parked: dict[int, _Parked] = attrs.field(init=False, factory=dict)
    _orphans: dict[asyncio.Task[Any], None] = attrs.field(init=False, factory=dict)
    _serials: dict[str, int] = attrs.field(init=False, factory=dict)
    _seq: int = attrs.field(init=False, default=0)
    _steps: int = attrs.field(init=False, default=0)
    _closing: bool = attrs.field(init=False, default=False)
    _driving: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        # Our own selector loop, never the running or policy loop: the simulation must not share a loop
        # with anything, and _has_ready_callbacks relies on BaseEventLoop internals.
        self._loop = asyncio.SelectorEventLoop()
        self._loop.set_task_factory(self._task_factory)
        self._loop.set_exception_handler(self._on_loop_error)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- processes ---------------------------------------------------------------------------------------

    def spawn(self, process: str, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` as the root task of ``process``.

        The process does not run at once: its root task parks as a runnable waiter labelled "start", so the
        ChoiceSource also decides in which order processes begin. A name whose previous incarnation finished
        or crashed may be reused (a restart); a name that is still alive may not.
        """
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"spawn() needs a coroutine object, got {coro!r}")
        try:
            self._check_open()
            old = self._procs.get(process)
            if old is not None and not old.crashed and old.root is not None and not old.root.done():
                raise SimulationError(f"process {process!r} is still alive; crash it before respawning")
        except BaseException:
            coro.close()  # never leave a "coroutine was never awaited" warning behind
            raise
        proc = _Process(self, process, body=coro)
        self._procs[process] = proc
        context = contextvars.copy_context()
        context.run(_CURRENT.set, proc)
        proc.root = self._loop.create_task(self._root(coro), name=process, context=context)

    async def _root(self, coro: Coroutine[Any, Any, _T]) -> _T:
        await self.park("start")
        return await coro

    @property
    def processes(self) -> tuple[str, ...]:
        """Names of every process ever spawned, in first-spawn order."""
        return tuple(self._procs)

    def is_alive(self, process: str) -> bool:
        """True while the current incarnation of ``process`` has neither finished nor crashed."""
        proc = self._procs.get(process)
        return proc is not None and not proc.crashed and proc.root is not None and not proc.root.done()

    def is_done(self, process: str) -> bool:
        """True once ``process`` finished on its own, with a result or an exception (not by a crash)."""
        proc = self._procs.get(process)
        return proc is not None and not proc.crashed and proc.root is not None and proc.root.done()

    def is_crashed(self, process: str) -> bool:
        """True when the current incarnation of ``process`` was stopped by ``crash()``."""
        proc = self._procs.get(process)
        return proc is not None and proc.crashed

    def result(self, process: str) -> Any:
        """The root coroutine's return value; re-raises its exception; SimulationError if it has none yet."""
        root = self._finished_root(process)
        return root.result()

    def exception(self, process: str) -> BaseException | None:
        """The exception the root coroutine raised, None if it returned; SimulationError if not finished."""
        root = self._finished_root(process)
        return root.exception()

    def failures(self) -> dict[str, BaseException]:
        """Every process whose current incarnation finished by raising, with its exception."""
        failed: dict[str, BaseException] = {}
        for name, proc in self._procs.items():
            if not proc.crashed and proc.root is not None and proc.root.done() and not proc.root.cancelled():
                exc = proc.root.exception()
                if exc is not None:
                    failed[name] = exc
        return failed

    def _finished_root(self, process: str) -> asyncio.Task[Any]:
        proc = self._procs.get(process)
        if proc is None:
            raise SimulationError(f"no process named {process!r}")
        if proc.crashed:
            raise SimulationError(f"process {process!r} crashed; it has no result")
        if proc.root is None or not proc.root.done():
            raise SimulationError(f"process {process!r} has not finished")
        return proc.root

    def current_process(self) -> str | None:
        """Name of the process whose task is running now, or None outside any simulated process."""
        proc = _CURRENT.get()
        return proc.name if proc is not None and proc.scheduler is self else None

    def next_serial(self, process: str) -> int:
        """1, 2, 3, ... per process name, surviving restarts so a restarted runner never reuses an id."""
        serial = self._serials.get(process, 0) + 1
        self._serials[process] = serial
        return serial

    # -- parking -------------------------------------------------------------------------------------------

    async def park(self, label: str, due: float | None = None) -> None:
        """Block the calling task until the scheduler picks it (``due=None``) or its timer is picked.

        This is the only way simulated code waits; ``SimRuntime`` wraps it as ``checkpoint`` and ``sleep``.
        """
        proc = _CURRENT.get()
        if proc is None or proc.scheduler is not self:
            raise SimulationError(f"park({label!r}) called outside a process of this scheduler")
        if proc.crashed or self._closing:
            # A crashed process stops with no cleanup (DESIGN §5): cleanup code that tries to wait again
            # is cancelled on the spot instead of getting another turn.
            raise asyncio.CancelledError
        seq = self._seq
        self._seq += 1
        future: asyncio.Future[None] = self._loop.create_future()
        waiter = Waiter(proc.name, label, "run" if due is None else "timer", due, seq)
        self._parked[seq] = _Parked(waiter, future, proc)
        try:
            await future
        finally:
            self._parked.pop(seq, None)

    def waiters(self) -> tuple[Waiter, ...]:
        """Every parked waiter, eligible or not, in ``seq`` order (for explorers and state hashing)."""
        return tuple(p.waiter for p in self._parked.values() if not p.future.done())

    def _eligible(self) -> list[_Parked]:
        now = self.clock.now()
        # _parked is filled in seq order and seq only grows, so dict order is already the seq order.
        return [
            p
            for p in self._parked.values()
            if not p.future.done() and (p.waiter.due is None or p.waiter.due <= now)
        ]

    # -- driving -------------------------------------------------------------------------------------------

    def run_until_quiescent(self) -> None:
        """Run the loop until no callback is ready: every task is parked, blocked or finished."""
        self._check_drivable()
        loop = self._loop
        if _has_ready_callbacks(loop):
            # Drive the loop one iteration at a time with _run_once (with callbacks ready it polls I/O with
            # timeout 0). run_forever() plus a queued stop() per iteration did the same but paid its set-up
            # (running loop, async-generator hooks) every time. The running loop is set while we drive, so
            # asyncio.get_running_loop() works in simulated code; `_driving` catches re-entrant driving.
            self._driving = True
            events._set_running_loop(loop)
            try:
                for _ in range(self.max_rounds):
                    if not _has_ready_callbacks(loop):
                        break
                    loop._run_once()  # type: ignore[attr-defined]
                else:
                    raise SimulationError(f"no quiescence after {self.max_rounds} loop iterations (a livelock?)")
            finally:
                events._set_running_loop(None)
                self._driving = False
        timers = _real_timers(loop)
        if timers:
            raise SimulationError(
                f"simulated code scheduled {len(timers)} real-time timer(s) (e.g. asyncio.sleep or "
                f"a timeout= argument): {timers[0]!r}; wait through runtime.sleep instead"
            )

    def step(self, pick: Callable[[Sequence[Waiter]], int] | None = None) -> StepResult | None:
        """Resume one parked waiter and run until quiescent again; None when nothing is parked at all.

        Eligible waiters are every runnable waiter plus every timer due at ``clock.now()``. When none is
        eligible but timers exist, every process is blocked, so the clock jumps to the earliest timer.
        The waiter is chosen by ``choices.choose("sched", len(eligible))`` unless ``pick`` (given the
        eligible waiters in ``seq`` order) returns the index to resume, as a scenario or PCT would.
        """
        self.run_until_quiescent()
        eligible = self._eligible()
        if not eligible:
            dues = [
                p.waiter.due
                for p in self._parked.values()
                if p.waiter.due is not None and not p.future.done()
            ]
            if not dues:
                return None
            self.clock.jump(min(dues))
            eligible = self._eligible()
        if pick is None:
            index = self.choices.choose("sched", len(eligible))
        else:
            index = pick([p.waiter for p in eligible])
        if not 0 <= index < len(eligible):
            raise SimulationError(f"pick returned {index}, outside 0..{len(eligible) - 1}")
        chosen = eligible[index]
        result = StepResult(
            index=self._steps,
            t=self.clock.now(),
            process=chosen.waiter.process,
            label=chosen.waiter.label,
            kind=chosen.waiter.kind,
            eligible=len(eligible),
        )
        self._steps += 1
        chosen.future.set_result(None)
        self.run_until_quiescent()
        return result

    def run(self, max_steps: int, pick: Callable[[Sequence[Waiter]], int] | None = None) -> list[StepResult]:
        """Step until nothing is parked or ``max_steps`` steps were taken; returns the steps taken."""
        steps: list[StepResult] = []
        while len(steps) < max_steps:
            result = self.step(pick)
            if result is None:
                break
            steps.append(result)
        return steps

    def run_until(self, predicate: Callable[[], bool], max_steps: int) -> bool:
        """Step until ``predicate()`` holds (checked before each step); False if it never did."""
        for _ in range(max_steps):
            if predicate():
                return True
            if self.step() is None:
                break
        return predicate()

    def advance(self, seconds: float) -> None:
        """Move the clock forward; timers that become due are eligible from the next step on."""
        self.clock.advance(seconds)

    def advance_to(self, t: float) -> None:
        """Move the clock to global time ``t`` (never backwards)."""
        self.clock.jump(t)

    # -- crashing and closing ----------------------------------------------------------------------------

    def crash(self, process: str, on_crash: Callable[[], None] | None = None) -> None:
        """Stop ``process`` at once: no statement after its current await runs.

        ``on_crash`` runs first — the simulator uses it to kill the process's database handle — so any
        ``finally`` block the cancellation triggers already finds its writes failing. Then every task of
        the process (children included) is cancelled, its waiters are dropped, and whatever its tasks
        raise while dying is swallowed. A new process may later be spawned under the same name.
        """
        self._check_drivable()
        proc = self._procs.get(process)
        if proc is None:
            raise SimulationError(f"no process named {process!r}")
        if proc.crashed or proc.root is None:
            return
        proc.crashed = True
        if on_crash is not None:
            on_crash()
        for seq in [seq for seq, parked in self._parked.items() if parked.process is proc]:
            del self._parked[seq]
        self._kill(proc.tasks, process)

    def _kill(self, tasks: dict[asyncio.Task[Any], None], what: str) -> None:
        for _ in range(_KILL_ROUNDS):
            pending = [task for task in tasks if not task.done()]
            if not pending:
                return
            for task in pending:
                task.cancel()
            self.run_until_quiescent()
        raise SimulationError(f"tasks of {what} keep ignoring cancellation: {pending!r}")

    def close(self) -> None:
        """Cancel every task, drain the loop and close it; safe to call twice."""
        if self._loop.is_closed():
            return
        self._check_drivable()
        self._closing = True
        try:
            self._parked.clear()
            everything: dict[asyncio.Task[Any], None] = dict(self._orphans)
            for proc in self._procs.values():
                everything.update(proc.tasks)
            self._kill(everything, "the simulation")
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    # -- loop hooks ----------------------------------------------------------------------------------------

    def _task_factory(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        # Every task the loop creates comes through here (asyncio.ensure_future, asyncio.wait, TaskGroup),
        # so a crash can find all of a process's tasks, not only the root.
        context = kwargs.get("context")
        proc = context.get(_CURRENT) if context is not None else _CURRENT.get()
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        owner = proc if proc is not None and proc.scheduler is self else None
        (owner.tasks if owner is not None else self._orphans)[task] = None
        task.add_done_callback(functools.partial(self._forget, owner))
        return task

    def _forget(self, proc: _Process | None, task: asyncio.Task[Any]) -> None:
        (proc.tasks if proc is not None else self._orphans).pop(task, None)
        if proc is not None and task is proc.root and proc.body is not None:
            # A task cancelled before its first step never enters its coroutine, so _root's body is never
            # awaited; closing it (a no-op once it has run) avoids the "never awaited" RuntimeWarning.
            proc.body.close()
            proc.body = None
        if (self._closing or (proc is not None and proc.crashed)) and not task.cancelled():
            task.exception()  # a dying process's errors are expected; mark them retrieved
        elif proc is not None and task is proc.root and not task.cancelled():
            # Kept on the task for exception()/result(); retrieving it here stops asyncio from also
            # logging "Task exception was never retrieved" when the task is garbage-collected.
            task.exception()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Never swallowed silently: e.g. a child task that failed and was never awaited lands here.
        self.unhandled.append(context)

    def _check_open(self) -> None:
        if self._loop.is_closed() or self._closing:
            raise SimulationError("the scheduler is closed")

    def _check_drivable(self) -> None:
        if self._loop.is_closed():
            raise SimulationError("the scheduler is closed")
        if self._loop.is_running() or self._driving:
            raise SimulationError("the scheduler is driven from outside its loop, not from a simulated task")
