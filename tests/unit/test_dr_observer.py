"""What the drill's Patroni observer records when the members' views differ."""
from dr import checker
from dr.ledger import Observation, Write
from dr.patroni import agreed
from support.patroni import ClusterState, MemberState, Role


def view(seen_by: str, leader: str | None, timeline: int = 2) -> ClusterState:
    names = ("pg-main", "pg-samecity", "pg-remote")
    return ClusterState({n: MemberState(n, Role.leader if n == leader else Role.replica, "running",
                                        timeline, None) for n in names}, seen_by)


def test_a_partitioned_old_primary_naming_itself_is_outvoted() -> None:
    # main cut off from etcd answers from its watch cache: still "pg-main"
    obs = agreed(10.0, [view("pg-main", "pg-main", 1), view("pg-samecity", "pg-samecity"),
                        view("pg-remote", "pg-samecity")])
    assert (obs.leader, obs.timeline) == ("pg-samecity", 2)
    assert obs.members["pg-samecity"] == "leader/running"
    assert obs.disputed == {"pg-main": "pg-main", "pg-samecity": "pg-samecity",
                            "pg-remote": "pg-samecity"}


def test_two_members_disagreeing_name_no_leader() -> None:
    obs = agreed(10.0, [view("pg-main", "pg-main", 1), view("pg-samecity", "pg-samecity")])
    assert obs.leader is None and obs.timeline is None
    assert obs.disputed == {"pg-main": "pg-main", "pg-samecity": "pg-samecity"}


def test_agreeing_members_and_a_lone_answer_are_taken_as_they_are() -> None:
    both = agreed(10.0, [view("pg-samecity", "pg-main", 1), view("pg-remote", "pg-main", 1)])
    assert (both.leader, both.timeline, both.disputed) == ("pg-main", 1, {})
    alone = agreed(10.0, [view("pg-remote", "pg-samecity")])
    assert (alone.leader, alone.disputed) == ("pg-samecity", {})
    assert agreed(10.0, []) == Observation(10.0, None, None, {})


def test_the_new_primarys_writes_are_not_split_brain_while_the_old_one_names_itself() -> None:
    """CI saw this: in a main isolation, samecity's acknowledged writes were flagged
    'not-leader' because the observer kept asking the cut-off main, whose cache named
    itself. With every member asked, the majority names samecity."""
    write = Write(843, "db", 0, 100.0, 100.01, True, node="pg-samecity", timeline=2,
                  system_id="s", server_time=100.0)
    alone = [Observation(t, "pg-main", 1, {}) for t in (99.5, 99.8, 100.2, 100.5)]
    assert [e.kind for e in checker.split_brain([write], alone)] == ["not-leader"]
    asked_all = [agreed(t, [view("pg-main", "pg-main", 1), view("pg-samecity", "pg-samecity"),
                            view("pg-remote", "pg-samecity")]) for t in (99.5, 99.8, 100.2, 100.5)]
    assert checker.split_brain([write], asked_all) == []
