"""Choice sources: seeded, recorded, replayed from a tape, and drawn by Hypothesis."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.choices import (
    FLIP,
    Choice,
    ChoiceSource,
    HypothesisChoices,
    RecordingChoices,
    SeededChoices,
    TapeChoices,
    TapeMismatch,
    dump_tape,
    load_tape,
)


def _draw_some(source: ChoiceSource) -> list[object]:
    return [
        source.choose("sched", 3),
        source.choose("sched", 1),
        source.flip("fault", 0.5),
        source.flip("fault", 0.0),
        source.flip("fault", 1.0),
        source.choose("input", 10),
    ]


@settings(database=None)
@given(seed=st.integers(), n=st.integers(1, 1000))
def test_seeded_choose_in_range(seed: int, n: int) -> None:
    """SeededChoices.choose always answers in [0, n)."""
    assert 0 <= SeededChoices(seed).choose("sched", n) < n


def test_seeded_is_reproducible() -> None:
    """The same seed gives the same decisions; different seeds eventually differ."""
    assert _draw_some(SeededChoices(5)) == _draw_some(SeededChoices(5))
    assert len({tuple(_draw_some(SeededChoices(s))) for s in range(20)}) > 1


def test_degenerate_decisions_consume_nothing() -> None:
    """choose(k, 1) and flip at p<=0 or p>=1 neither draw randomness nor reach the tape."""
    rec = RecordingChoices(SeededChoices(1))
    assert rec.choose("sched", 1) == 0
    assert rec.flip("fault", 0.0) is False
    assert rec.flip("fault", -1.0) is False
    assert rec.flip("fault", 1.0) is True
    assert rec.tape == []
    plain = SeededChoices(1)
    assert rec.choose("sched", 1000) == plain.choose("sched", 1000)


def test_invalid_arguments() -> None:
    """n < 1 and NaN probabilities are programming errors."""
    for source in (SeededChoices(0), RecordingChoices(SeededChoices(0)), TapeChoices([])):
        with pytest.raises(ValueError):
            source.choose("sched", 0)
        with pytest.raises(ValueError):
            source.flip("fault", float("nan"))


def test_recording_then_tape_replays_exactly() -> None:
    """A recorded tape, also after a JSON-lines round trip, replays the same decisions."""
    rec = RecordingChoices(SeededChoices(11))
    first = _draw_some(rec)
    assert [c.n for c in rec.tape] == [3, FLIP, 10]
    replay = TapeChoices(load_tape(dump_tape(rec.tape)))
    assert _draw_some(replay) == first
    assert replay.position == 3 and not replay.exhausted


def test_tape_mismatch_names_position_and_both_sides() -> None:
    """Asking for another kind or arity than recorded raises TapeMismatch with a clear message."""
    tape = [Choice("sched", 3, 2), Choice("fault", FLIP, 1)]
    replay = TapeChoices(tape)
    with pytest.raises(TapeMismatch, match=r"position 0: .*choose\(n=4\) of kind 'sched'.*choose\(n=3\)"):
        replay.choose("sched", 4)
    with pytest.raises(TapeMismatch, match="kind 'input'"):
        replay.choose("input", 3)
    assert replay.choose("sched", 3) == 2
    with pytest.raises(TapeMismatch, match=r"position 1: replay asked for choose\(n=2\).*recorded flip"):
        replay.choose("fault", 2)
    assert replay.flip("fault", 0.1) is True


def test_tape_rejects_out_of_range_value() -> None:
    """A corrupted tape value outside [0, n) is reported, not returned."""
    with pytest.raises(TapeMismatch, match="out of range"):
        TapeChoices([Choice("sched", 2, 5)]).choose("sched", 2)


def test_exhausted_tape_answers_zero_and_false() -> None:
    """Past its end a tape answers 0 / False and sets exhausted, so a tape prefix still runs."""
    replay = TapeChoices([Choice("sched", 3, 1)])
    assert replay.choose("sched", 3) == 1
    assert not replay.exhausted
    assert replay.choose("sched", 7) == 0
    assert replay.flip("fault", 0.9) is False
    assert replay.exhausted


def test_load_tape_validates() -> None:
    """Blank lines are skipped; wrong shapes or types are ValueErrors."""
    assert load_tape('\n{"kind":"sched","n":2,"value":1}\n\n') == [Choice("sched", 2, 1)]
    with pytest.raises(ValueError, match="line 1"):
        load_tape('{"kind":"sched","n":2}\n')
    with pytest.raises(ValueError, match="wrong field types"):
        load_tape('{"kind":"sched","n":2.0,"value":1}\n')


def test_dump_tape_format() -> None:
    """dump_tape writes one sorted-key JSON object per line."""
    assert dump_tape([Choice("fault", FLIP, 0)]) == '{"kind":"fault","n":0,"value":0}\n'


@settings(database=None, max_examples=50)
@given(data=st.data(), n=st.integers(1, 50), p=st.floats(0.0, 1.0))
def test_hypothesis_choices_in_range(data: st.DataObject, n: int, p: float) -> None:
    """HypothesisChoices answers in range and honours forced flips."""
    source = HypothesisChoices(data)
    assert 0 <= source.choose("sched", n) < n
    flipped = source.flip("fault", p)
    if p == 0.0:
        assert flipped is False
    if p == 1.0:
        assert flipped is True
