"""The on-call rota arithmetic (clinics/rota.py): pure functions, no database."""

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from clinics import rota

NY = ZoneInfo("America/New_York")
NORA, OLIVE, PAT = 11, 12, 13


def weekly(members=(NORA, OLIVE), starts_on=date(2026, 3, 2), at=time(8, 0), length_days=7, zone=NY):
    return rota.Rotation(
        member_ids=tuple(members), starts_on=starts_on, handover_time=at, length_days=length_days, zone=zone
    )


def local(*args):
    return datetime(*args, tzinfo=NY)


def test_weekly_handover_stays_at_eight_local_across_the_spring_forward_change():
    nurses = weekly()  # Monday 2 March 2026 08:00 EST; clocks go forward on Sunday 8 March
    assert rota.handover_at(nurses, 0) == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert rota.handover_at(nurses, 1) == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert rota.member_at(nurses, [], local(2026, 3, 9, 7, 59)) == NORA
    assert rota.member_at(nurses, [], local(2026, 3, 9, 8, 0)) == OLIVE
    first, second = rota.shifts(nurses, [], local(2026, 3, 2, 8), local(2026, 3, 16, 8))
    assert (first.member_id, first.hours) == (NORA, 167)  # the week the clocks went forward is an hour short
    assert (second.member_id, second.hours) == (OLIVE, 168)


def test_weekly_handover_stays_at_eight_local_across_the_fall_back_change():
    nurses = weekly(starts_on=date(2026, 10, 26))  # clocks go back on Sunday 1 November 2026
    shift = rota.shifts(nurses, [], local(2026, 10, 26, 8), local(2026, 11, 2, 8))[0]
    assert (shift.member_id, shift.hours) == (NORA, 169)
    assert rota.member_at(nurses, [], local(2026, 11, 2, 8, 0)) == OLIVE
    assert rota.member_at(nurses, [], datetime(2026, 11, 2, 12, 59, tzinfo=UTC)) == NORA  # 07:59 EST


def test_a_handover_at_a_time_the_spring_forward_skips_happens_an_hour_later_on_the_new_clock():
    sundays = weekly(starts_on=date(2026, 3, 1), at=time(2, 30))  # 02:30 does not exist on 8 March
    assert rota.handover_at(sundays, 1) == local(2026, 3, 8, 3, 30)
    assert rota.member_at(sundays, [], local(2026, 3, 8, 3, 29)) == NORA
    assert rota.member_at(sundays, [], local(2026, 3, 8, 3, 30)) == OLIVE


def test_members_take_turns_in_order_and_the_rota_repeats():
    three = weekly(members=(NORA, OLIVE, PAT), starts_on=date(2026, 1, 5))
    mondays = [local(2026, 1, 5, 12) + timedelta(weeks=n) for n in range(7)]
    assert [rota.member_at(three, [], at) for at in mondays] == [NORA, OLIVE, PAT, NORA, OLIVE, PAT, NORA]


def test_three_day_shifts_hand_over_on_whatever_day_they_fall():
    short = weekly(starts_on=date(2026, 3, 2), length_days=3)
    assert [rota.member_at(short, [], local(2026, 3, day, 9)) for day in (2, 4, 5, 7, 8, 10)] == [
        NORA,
        NORA,
        OLIVE,
        OLIVE,
        NORA,
        NORA,
    ]


def test_nobody_is_on_call_before_the_first_handover():
    nurses = weekly()
    assert rota.member_at(nurses, [], local(2026, 3, 2, 7, 59)) is None
    shifts = rota.shifts(nurses, [], local(2026, 3, 1, 8), local(2026, 3, 3, 8))
    assert [(s.member_id, s.hours) for s in shifts] == [(None, 24), (NORA, 24)]
    assert rota.gaps(shifts, {NORA, OLIVE}) == [(local(2026, 3, 1, 8), local(2026, 3, 2, 8))]


def test_a_swap_puts_the_other_nurse_on_call_for_its_hours_only():
    nurses = weekly()
    swap = rota.Override(OLIVE, local(2026, 3, 4, 18), local(2026, 3, 5, 8))
    assert rota.member_at(nurses, [swap], local(2026, 3, 4, 17, 59)) == NORA
    assert rota.member_at(nurses, [swap], local(2026, 3, 4, 18)) == OLIVE
    assert rota.member_at(nurses, [swap], local(2026, 3, 5, 8)) == NORA
    shifts = rota.shifts(nurses, [swap], local(2026, 3, 2, 8), local(2026, 3, 9, 8))
    assert [(s.member_id, s.is_override, s.starts_at) for s in shifts] == [
        (NORA, False, local(2026, 3, 2, 8)),
        (OLIVE, True, local(2026, 3, 4, 18)),
        (NORA, False, local(2026, 3, 5, 8)),
    ]


def test_the_latest_override_wins_where_two_overlap_and_cover_closes_a_gap():
    nurses = weekly()
    sick_cover = rota.Override(PAT, local(2026, 3, 1, 0), local(2026, 3, 3, 0))  # before the rota starts, too
    swap_back = rota.Override(NORA, local(2026, 3, 2, 20), local(2026, 3, 2, 22))
    assert rota.member_at(nurses, [sick_cover, swap_back], local(2026, 3, 2, 21)) == NORA
    assert rota.member_at(nurses, [sick_cover, swap_back], local(2026, 3, 2, 23)) == PAT
    shifts = rota.shifts(nurses, [sick_cover, swap_back], local(2026, 3, 1, 0), local(2026, 3, 4, 0))
    assert [s.member_id for s in shifts] == [PAT, NORA, PAT, NORA]
    assert rota.gaps(shifts, {NORA, OLIVE, PAT}) == []


def test_a_deactivated_members_turn_is_a_gap():
    nurses = weekly()
    shifts = rota.shifts(nurses, [], local(2026, 3, 2, 8), local(2026, 3, 23, 8))
    assert rota.gaps(shifts, {NORA}) == [(local(2026, 3, 9, 8), local(2026, 3, 16, 8))]


def test_a_rotation_with_nobody_on_it_is_one_gap():
    empty = weekly(members=())
    shifts = rota.shifts(empty, [], local(2026, 3, 2, 8), local(2026, 3, 30, 8))
    assert rota.gaps(shifts, set()) == [(local(2026, 3, 2, 8), local(2026, 3, 30, 8))]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    length_days=st.integers(1, 15),
    handover_hour=st.integers(0, 23),
    offsets_hours=st.lists(st.integers(0, 24 * 120), min_size=1, max_size=5),
    override_hours=st.lists(st.tuples(st.integers(0, 24 * 120), st.integers(1, 24 * 10)), max_size=3),
)
def test_shifts_and_member_at_agree_everywhere_across_both_dst_changes(
    length_days, handover_hour, offsets_hours, override_hours
):
    nurses = weekly(
        members=(NORA, OLIVE, PAT), starts_on=date(2026, 2, 2), at=time(handover_hour), length_days=length_days
    )
    start = local(2026, 2, 1, 0)
    end = start + timedelta(hours=24 * 300)  # past both of 2026's changes
    overrides = [
        rota.Override(PAT if n % 2 else NORA, start + timedelta(hours=h), start + timedelta(hours=h + d))
        for n, (h, d) in enumerate(override_hours)
    ]
    shifts = rota.shifts(nurses, overrides, start, end)
    assert shifts[0].starts_at == start and shifts[-1].ends_at == end
    assert all(a.ends_at == b.starts_at for a, b in pairwise(shifts))  # no hole, no overlap
    for hours in offsets_hours:
        at = start + timedelta(hours=hours, minutes=17)
        (containing,) = [s for s in shifts if s.starts_at <= at < s.ends_at]
        assert containing.member_id == rota.member_at(nurses, overrides, at)
    handovers = [rota.handover_at(nurses, n).astimezone(NY) for n in range(0, 300 // length_days)]
    assert {(h.hour, h.minute) for h in handovers} <= {(handover_hour, 0), ((handover_hour + 1) % 24, 0)}
