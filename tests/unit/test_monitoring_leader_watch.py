"""The leader watch counts outages too short for a scrape, not a switchover's blink, and
not a leader that is only slow to answer on a loaded machine."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from monitoring import probes
from monitoring.leader_watch import LeaderPoll, LeaderWatch, Timing, Verdict, judge
from support.patroni import ClusterState, MemberState, PrimaryAnswer, Role
from tests.unit.test_monitoring_exporter import INTENDED, runtime

YES, NO, REFUSED, SILENT = (PrimaryAnswer.yes, PrimaryAnswer.no, PrimaryAnswer.refused,
                            PrimaryAnswer.silent)
CONFIRMED = LeaderPoll("pg-main", YES)
TIMING = Timing(interval=1.0, grace=2.0, silent_grace=5.0, timeout=2.0, patroni_every=5)


def never(db, leader, timeout, quick) -> LeaderPoll:
    raise AssertionError("the tests feed polls through update()")


def feed(watch: LeaderWatch, polls: list[LeaderPoll], start: float = 0.0, step: float = 1.0) -> None:
    for i, poll in enumerate(polls):
        watch.update("registry", poll, at=start + i * step)


def feed_at(watch: LeaderWatch, *timed: tuple[float, LeaderPoll]) -> None:
    """Polls at the given moments (a poll that waits out its timeouts delays the next)."""
    for at, poll in timed:
        watch.update("registry", poll, at=at)


@pytest.mark.parametrize(("poll", "verdict"), [
    (LeaderPoll("pg-main", YES), Verdict.confirmed),
    (LeaderPoll("pg-main", NO), Verdict.lost),  # it answers: it is not the primary
    (LeaderPoll("pg-main", REFUSED), Verdict.lost),  # nothing listens: Patroni is gone
    (LeaderPoll("pg-main", SILENT), Verdict.unsure),  # no other member asked yet
    (LeaderPoll("pg-main", SILENT, ("pg-main", "pg-main")), Verdict.unsure),  # lease still held
    (LeaderPoll("pg-main", SILENT, (None, None)), Verdict.lost),  # the members name no leader
    (LeaderPoll("pg-main", SILENT, ("pg-samecity",)), Verdict.lost),  # they name another one
    (LeaderPoll(None, SILENT, ()), Verdict.unsure),  # nobody answers at all
    (LeaderPoll(None, SILENT, (None,)), Verdict.lost),
])
def test_what_one_poll_proves(poll: LeaderPoll, verdict: Verdict) -> None:
    assert judge(poll) is verdict


def test_a_leader_refusing_for_the_grace_is_one_episode_counted_once() -> None:
    watch = LeaderWatch(runtime(), never, TIMING)
    feed(watch, [CONFIRMED] + [LeaderPoll("pg-main", REFUSED)] * 5 + [CONFIRMED]
         + [LeaderPoll("pg-main", REFUSED)] + [CONFIRMED])
    assert watch.counts() == {"registry": 1}


def test_a_switchover_blink_is_no_episode() -> None:
    watch = LeaderWatch(runtime(), never, TIMING)
    feed(watch, [CONFIRMED, LeaderPoll("pg-main", NO), LeaderPoll("pg-samecity", YES),
                 LeaderPoll("pg-samecity", NO), LeaderPoll("pg-samecity", NO), CONFIRMED])
    assert watch.counts() == {"registry": 0}


def test_a_slow_leader_is_no_episode_within_a_scrape_interval() -> None:
    """The false alarm seen under load: three polls without an answer in time."""
    watch = LeaderWatch(runtime(), never, TIMING)
    slow = LeaderPoll("pg-main", SILENT, ("pg-main", "pg-main"))
    feed(watch, [CONFIRMED, slow, slow, slow, slow, CONFIRMED])
    assert watch.counts() == {"registry": 0}
    assert watch.leader_lost("registry") is False


def test_a_leader_silent_for_a_scrape_interval_is_an_episode() -> None:
    """A frozen or cut-off center: silence alone, past silent_grace."""
    watch = LeaderWatch(runtime(), never, TIMING)
    silent = LeaderPoll("pg-main", SILENT, ("pg-main",))
    feed(watch, [CONFIRMED] + [silent] * 5)
    assert watch.counts() == {"registry": 0}
    watch.update("registry", silent, at=6.0)  # 5 s after the first silent poll
    assert watch.counts() == {"registry": 1}
    assert watch.leader_lost("registry") is True


def test_silence_turning_definite_counts_after_the_shorter_grace() -> None:
    """Killed center: the leader is silent, then the members stop naming it."""
    watch = LeaderWatch(runtime(), never, TIMING)
    feed(watch, [CONFIRMED, LeaderPoll("pg-main", SILENT, ("pg-main",)),
                 LeaderPoll("pg-main", SILENT, (None,)), LeaderPoll("pg-main", SILENT, (None,))])
    assert watch.counts() == {"registry": 1}  # 2 s after the first unconfirmed poll


def test_the_verdict_is_unknown_before_a_first_poll_and_clears_on_confirmation() -> None:
    watch = LeaderWatch(runtime(), never, TIMING)
    assert watch.leader_lost("registry") is None
    feed(watch, [LeaderPoll("pg-main", REFUSED)] * 3)
    assert watch.leader_lost("registry") is True
    watch.update("registry", CONFIRMED, at=10.0)
    assert watch.leader_lost("registry") is False


def test_timing_derives_from_the_scrape_interval() -> None:
    timing = Timing.for_scrapes(5.0, 1.0)
    assert (timing.grace, timing.silent_grace, timing.timeout, timing.patroni_every) == (2.0, 5.0, 2.0, 5)
    with pytest.raises(ValueError, match="positive"):
        Timing.for_scrapes(0, 1.0)


def test_a_failing_probe_proves_nothing_but_silence() -> None:
    def broken(db, leader, timeout, quick) -> LeaderPoll:
        raise OSError("no route")
    clock = iter(float(t) for t in range(100))
    watch = LeaderWatch(runtime(), broken, TIMING, clock=lambda: next(clock))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(5):
            watch.poll_once(pool)
        assert watch.counts() == {"registry": 0}
        watch.poll_once(pool)
    assert watch.counts() == {"registry": 1}


def test_patroni_is_asked_once_a_scrape_interval_and_after_any_doubt() -> None:
    asked: list[bool] = []
    answers = iter([CONFIRMED] * 7 + [LeaderPoll("pg-main", SILENT)] + [CONFIRMED] * 3)

    def poll(db, leader, timeout, quick) -> LeaderPoll:
        asked.append(quick)
        return next(answers)
    watch = LeaderWatch(runtime(), poll, TIMING, clock=lambda: 0.0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for _ in range(11):
            watch.poll_once(pool)
    full, quick = False, True
    assert asked == [full, quick, quick, quick, quick, full, quick, quick,
                     full,  # the poll after one without confirmation asks Patroni
                     quick, full]


def recording_watch() -> tuple[LeaderWatch, list[bool], list[float]]:
    """A watch whose polls confirm and record whether they were quick, on a clock the
    test moves (now[0])."""
    asked: list[bool] = []

    def poll(db, leader, timeout, quick) -> LeaderPoll:
        asked.append(quick)
        return CONFIRMED
    now = [0.0]
    return LeaderWatch(runtime(), poll, TIMING, clock=lambda: now[0]), asked, now


def test_a_scrape_naming_the_leader_spares_the_watch_its_own_patroni_request() -> None:
    watch, asked, now = recording_watch()
    with ThreadPoolExecutor(max_workers=1) as pool:
        watch.poll_once(pool)  # learns the leader from Patroni
        for _ in range(2 * TIMING.patroni_every):
            now[0] += TIMING.interval
            watch.patroni_named("registry", "pg-main")
            watch.poll_once(pool)
        assert asked == [False] + [True] * 2 * TIMING.patroni_every
        watch.patroni_named("registry", "pg-samecity")  # the scrape saw another leader
        watch.poll_once(pool)
    assert asked[-1] is False


def test_a_stale_scrape_word_does_not_stand_in_for_patroni() -> None:
    watch, asked, now = recording_watch()
    with ThreadPoolExecutor(max_workers=1) as pool:
        watch.poll_once(pool)
        watch.patroni_named("registry", "pg-main")  # the last scrape, then none (Prometheus down)
        for _ in range(3 * TIMING.patroni_every):
            now[0] += TIMING.interval
            watch.poll_once(pool)
    assert asked.count(False) >= 3  # back on its own schedule


def test_a_quick_poll_confirms_by_the_database_or_falls_through_to_patroni(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes, "_database_answer", lambda db, leader, pw, ca, timeout, connect: YES)
    fake = FakeCluster({"pg-main": NO}, {"pg-samecity": "pg-samecity"})
    monkeypatch.setattr(probes, "_client", lambda db, ca_file, timeout: fake)
    db = runtime().systems["registry"].database
    assert probes.leader_poll(db, "pg-main", 2.0, None, True, "pw") == CONFIRMED
    assert fake.asked == []
    monkeypatch.setattr(probes, "_database_answer", lambda db, leader, pw, ca, timeout, connect: SILENT)
    assert judge(probes.leader_poll(db, "pg-main", 2.0, None, True, "pw")) is not Verdict.confirmed
    assert fake.asked[0] == ("primary", "pg-main")


@pytest.mark.parametrize("database, verdict", [
    (REFUSED, Verdict.lost),  # crashed: Patroni restarts it in place, still holding the lock
    (NO, Verdict.lost),  # still in crash recovery
    (SILENT, Verdict.confirmed),  # slow: Patroni's word stands
    (YES, Verdict.confirmed),
])
def test_patronis_200_confirms_only_a_database_that_does_not_turn_writers_down(
        monkeypatch: pytest.MonkeyPatch, database: PrimaryAnswer, verdict: Verdict) -> None:
    connects: list[bool] = []

    def answer(db, leader, pw, ca, timeout, may_connect):
        connects.append(may_connect)
        return database
    monkeypatch.setattr(probes, "_database_answer", answer)
    fake = FakeCluster({"pg-main": YES}, {"pg-samecity": "pg-main", "pg-remote": "pg-main"})
    monkeypatch.setattr(probes, "_client", lambda db, ca_file, timeout: fake)
    db = runtime().systems["registry"].database
    assert judge(probes.leader_poll(db, "pg-main", 2.0, None, False, "pw")) is verdict
    assert connects[0] is True  # Patroni answered: its host is there, a connect cannot hang


@pytest.mark.parametrize("message, turned_down", [
    ('connection to server at "10.0.0.1", port 5432 failed: Connection refused', True),
    ("FATAL:  the database system is starting up", True),
    ("FATAL:  the database system is in recovery mode", True),
    ("server closed the connection unexpectedly", True),
    ("connection timeout expired", False),
    ('FATAL:  password authentication failed for user "tricenter"', False),
])
def test_a_refusal_is_told_from_a_timeout_or_a_wrong_password(message: str, turned_down: bool) -> None:
    assert probes._turned_down(message) is turned_down


class FakeCluster:
    """What probes.leader_poll asks of the Patroni client."""

    def __init__(self, answers: dict[str, PrimaryAnswer], views: dict[str, str | None]):
        self.answers, self.views, self.asked = answers, views, []

    def primary_answer(self, member: str, timeout: float) -> PrimaryAnswer:
        self.asked.append(("primary", member))
        return self.answers.get(member, SILENT)

    def member_view(self, member: str, timeout: float) -> ClusterState | None:
        self.asked.append(("cluster", member))
        if member not in self.views:
            return None
        leader = self.views[member]
        members = {n: m for n, m in INTENDED.members.items() if n != "pg-main"}
        if leader is not None:
            members[leader] = MemberState(leader, Role.leader, "running", timeline=4, lag=None)
        return ClusterState(members, member)


def poll_with(monkeypatch: pytest.MonkeyPatch, fake: FakeCluster, last: str | None) -> LeaderPoll:
    monkeypatch.setattr(probes, "_client", lambda db, ca_file, timeout: fake)
    return probes.leader_poll(runtime().systems["registry"].database, last, 2.0)


def test_a_confirming_leader_costs_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCluster({"pg-main": YES}, {})
    assert poll_with(monkeypatch, fake, "pg-main") == LeaderPoll("pg-main", YES)
    assert fake.asked == [("primary", "pg-main")]


def test_a_silent_leader_makes_the_poll_ask_the_other_members(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCluster({}, {"pg-samecity": "pg-main", "pg-remote": "pg-main"})
    poll = poll_with(monkeypatch, fake, "pg-main")
    assert poll == LeaderPoll("pg-main", SILENT, ("pg-main", "pg-main"))
    assert judge(poll) is Verdict.unsure


def test_after_a_failover_the_poll_follows_the_leader_the_members_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCluster({"pg-main": REFUSED, "pg-samecity": YES},
                       {"pg-samecity": "pg-samecity", "pg-remote": "pg-samecity"})
    poll = poll_with(monkeypatch, fake, "pg-main")
    assert poll.leader == "pg-samecity" and judge(poll) is Verdict.confirmed


def test_members_split_between_two_leaders_each_is_asked_until_one_confirms(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # pg-main is frozen; one member already names the new leader, one still the old.
    fake = FakeCluster({"pg-samecity": YES}, {"pg-samecity": "pg-samecity", "pg-remote": "pg-main"})
    poll = poll_with(monkeypatch, fake, "pg-main")
    assert poll.leader == "pg-samecity" and judge(poll) is Verdict.confirmed
    # Nobody confirms: the most named (ties by name) is the leader the poll reports.
    fake = FakeCluster({}, {"pg-samecity": "pg-samecity", "pg-remote": "pg-main"})
    poll = poll_with(monkeypatch, fake, None)
    assert poll.leader == "pg-main" and judge(poll) is Verdict.lost
    assert fake.asked.count(("primary", "pg-main")) == fake.asked.count(("primary", "pg-samecity")) == 1


def test_a_first_poll_finds_the_leader_from_the_members(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCluster({"pg-main": YES}, {m: "pg-main" for m in ("pg-main", "pg-samecity", "pg-remote")})
    assert judge(poll_with(monkeypatch, fake, None)) is Verdict.confirmed


def test_the_collector_exports_the_watchs_episodes_and_verdict(tmp_path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from monitoring.collector import TricenterCollector
    from tests.unit.test_monitoring_exporter import TARGETS, sources, value

    def no_scrape_check(db, leader, ca) -> bool:
        raise AssertionError("with a watch, the scrape does not ask /primary itself")

    watch = LeaderWatch(runtime(), never, TIMING)
    feed(watch, [LeaderPoll("pg-main", REFUSED)] * 3)
    src = sources(tmp_path, leader_check=no_scrape_check, leader_lost=watch.leader_lost)
    registry = CollectorRegistry()
    registry.register(TricenterCollector(runtime(), src, TARGETS, watch=watch))
    text = generate_latest(registry).decode()
    assert value(text, "tricenter_db_leaderless_episodes_total", system="registry") == 1
    assert value(text, "tricenter_db_leader_present", system="registry") == 0
    watch.update("registry", CONFIRMED, at=10.0)
    text = generate_latest(registry).decode()
    assert value(text, "tricenter_db_leader_present", system="registry") == 1


def test_a_slow_scrape_of_patroni_is_no_lost_leader_while_the_watch_confirms(tmp_path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from monitoring.collector import TricenterCollector
    from tests.unit.test_monitoring_exporter import TARGETS, sources, value

    def timed_out(db, ca) -> ClusterState:
        raise probes.ProbeFailed("no Patroni REST API answered /cluster: ReadTimeout")

    watch = LeaderWatch(runtime(), never, TIMING)
    feed(watch, [CONFIRMED])
    registry = CollectorRegistry()
    registry.register(TricenterCollector(
        runtime(), sources(tmp_path, patroni=timed_out, leader_lost=watch.leader_lost), TARGETS, watch=watch))
    text = generate_latest(registry).decode()
    assert value(text, "tricenter_db_leader_present", system="registry") == 1
    assert value(text, "tricenter_probe_success", probe="patroni", system="registry") == 0


def test_a_failover_after_a_short_silence_counts_as_a_lost_leader() -> None:
    # A center cut off: its leader is silent, the others still name it until the lease
    # runs out (5 s), then name the promoted one: shorter than the silent grace, yet a loss.
    watch = LeaderWatch(runtime(), lambda *a: CONFIRMED, TIMING)
    watch.update("registry", LeaderPoll("pg-main", YES), at=0.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        watch.update("registry", LeaderPoll("pg-main", SILENT, ("pg-main", "pg-main")), at=t)
    assert watch.counts() == {"registry": 0}  # silence alone, under the 5 s grace
    watch.update("registry", LeaderPoll("pg-samecity", YES), at=4.5)
    assert watch.counts() == {"registry": 1}


def test_a_failover_after_one_poll_that_waited_out_a_silent_leader_counts() -> None:
    # A frozen or cut-off leader: the poll after the fault waits out its timeouts (about
    # 4 s), and the next one finds the promoted leader: one unconfirmed poll, yet a loss.
    watch = LeaderWatch(runtime(), lambda *a: CONFIRMED, TIMING)
    feed_at(watch, (0.0, LeaderPoll("pg-main", YES)),
            (0.5, LeaderPoll("pg-main", SILENT, ("pg-main", "pg-main"))),
            (5.6, LeaderPoll("pg-samecity", YES)))
    assert watch.counts() == {"registry": 1}


def test_a_slow_leader_that_answers_again_is_no_loss() -> None:
    watch = LeaderWatch(runtime(), lambda *a: CONFIRMED, TIMING)
    feed_at(watch, (0.0, LeaderPoll("pg-main", YES)),
            (1.0, LeaderPoll("pg-main", SILENT, ("pg-main", "pg-main"))),
            (4.0, LeaderPoll("pg-main", YES)))
    assert watch.counts() == {"registry": 0}


def test_a_planned_handover_within_the_grace_is_not_a_loss() -> None:
    watch = LeaderWatch(runtime(), lambda *a: CONFIRMED, TIMING)
    feed_at(watch, (0.0, LeaderPoll("pg-main", YES)), (1.0, LeaderPoll("pg-main", NO)),
            (2.5, LeaderPoll("pg-samecity", YES)))  # 1.5 s < grace 2 s
    assert watch.counts() == {"registry": 0}


def test_scrapes_a_little_late_still_spare_the_watch_its_patroni_requests() -> None:
    """Scrapes come a scrape interval apart give or take some ms; one landing just before
    a full round, the next just after the next one, is still the word of the last scrape."""
    watch, asked, now = recording_watch()
    period = TIMING.patroni_every * TIMING.interval
    scrapes = [k * period - 0.01 + 0.02 * (k - 1) for k in range(1, 5)]  # 4.99, 10.01, …: 20 ms late each
    with ThreadPoolExecutor(max_workers=1) as pool:
        watch.poll_once(pool)  # learns the leader from Patroni
        for poll in range(1, 4 * TIMING.patroni_every + 1):
            for at in [a for a in scrapes if now[0] < a <= poll * TIMING.interval]:
                now[0] = at
                watch.patroni_named("registry", "pg-main")
            now[0] = poll * TIMING.interval
            watch.poll_once(pool)
    assert asked == [False] + [True] * 4 * TIMING.patroni_every


def test_a_primary_restarted_in_place_after_refusing_for_the_grace_counts() -> None:
    """db-primary-crash: PostgreSQL refuses at 0.0 and 1.2 s, Patroni has it back at 2.3 s."""
    watch = LeaderWatch(runtime(), never, TIMING)
    feed_at(watch, (-1.1, CONFIRMED), (0.0, LeaderPoll("pg-main", REFUSED)),
            (1.2, LeaderPoll("pg-main", REFUSED)), (2.3, CONFIRMED))
    assert watch.counts() == {"registry": 1}


def test_a_primary_back_within_the_grace_or_only_slow_is_no_episode() -> None:
    watch = LeaderWatch(runtime(), never, TIMING)
    feed_at(watch, (0.0, CONFIRMED), (1.1, LeaderPoll("pg-main", REFUSED)), (2.2, CONFIRMED),
            (3.3, LeaderPoll("pg-main", SILENT, ("pg-main",))),
            (4.4, LeaderPoll("pg-main", SILENT, ("pg-main",))), (6.5, CONFIRMED))
    assert watch.counts() == {"registry": 0}


def test_quick_confirmations_go_out_together_and_only_the_doubtful_are_polled() -> None:
    rt = runtime()
    second = rt.systems["registry"].model_copy(update={"name": "charity"})
    rt.systems["charity"] = second.model_copy(update={"database": second.database.model_copy(
        update={"cluster": "charity"})})
    polled: list[tuple[str, bool]] = []
    batches: list[dict] = []
    frozen = {"charity"}  # its leader's database does not answer the quick question

    def poll(db, leader, timeout, quick) -> LeaderPoll:
        polled.append((db.cluster, quick))
        return CONFIRMED

    def confirm(asks, timeout) -> set[str]:
        batches.append({name: leader for name, (_, leader) in asks.items()})
        return set(asks) - frozen

    now = [0.0]
    watch = LeaderWatch(rt, poll, TIMING, clock=lambda: now[0], confirm=confirm)
    with ThreadPoolExecutor(max_workers=2) as pool:
        watch.poll_once(pool)  # no leader known yet: Patroni for both, no batch
        assert batches == [] and sorted(polled) == [("charity", False), ("registry", False)]
        polled.clear()
        now[0] += TIMING.interval
        for name in ("registry", "charity"):
            watch.patroni_named(name, "pg-main")
        watch.poll_once(pool)
    assert batches == [{"registry": "pg-main", "charity": "pg-main"}]
    # The one the batch left unconfirmed is polled, through Patroni, not quickly again.
    assert polled == [("charity", False)]
    assert watch.counts() == {"registry": 0, "charity": 0}


def test_a_quick_confirmation_that_breaks_leaves_every_cluster_to_its_poll() -> None:
    polled: list[bool] = []

    def poll(db, leader, timeout, quick) -> LeaderPoll:
        polled.append(quick)
        return CONFIRMED

    def broken(asks, timeout) -> set[str]:
        raise OSError("bad file descriptor")

    now = [0.0]
    watch = LeaderWatch(runtime(), poll, TIMING, clock=lambda: now[0], confirm=broken)
    with ThreadPoolExecutor(max_workers=1) as pool:
        watch.poll_once(pool)
        now[0] += TIMING.interval
        watch.patroni_named("registry", "pg-main")
        watch.poll_once(pool)  # the batch breaks: the watch goes on, through the poll
    assert polled == [False, False] and watch.counts() == {"registry": 0}
