"""The skill catalogue and assigning/starting/completing/resetting progress, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.db.models import AuditEntry, Enrolment, SkillPathwayLink, UserSkillProgress
from bapp_cli.errors import Conflict, InvalidInput, NotFound
from bapp_cli.services.pathway_admin import archive_pathway
from bapp_cli.services.skills import (
    add_skill,
    assign_skills,
    complete_skill,
    link_skill,
    list_skills,
    reset_skill,
    start_skill,
    unlink_skill,
    update_skill,
)
from tests.services.test_progress_factories import LATER, NOW, builder, client, pathway, small_catalogue


def progress_row(session: Session, user_id: int, slug: str) -> UserSkillProgress:
    from bapp_cli.services.skills import get_skill

    return session.scalars(
        select(UserSkillProgress).where(
            UserSkillProgress.client_id == user_id, UserSkillProgress.skill_id == get_skill(session, slug).id
        )
    ).one()


def test_add_skill_normalises_and_links(session: Session) -> None:
    change = add_skill(
        session,
        "Prompt-Design",
        name="  Prompt design ",
        now=NOW,
        domain="prompting",
        links=["ACCELERATE:1", "play:2"],
    )
    assert change.skill == {
        "slug": "prompt-design",
        "name": "Prompt design",
        "description": None,
        "domain": "prompting",
        "is_fundamental": False,
        "archived": False,
        "links": ["accelerate:1", "play:2"],
    }
    with pytest.raises(Conflict):
        add_skill(session, "PROMPT-DESIGN", name="Again", now=NOW)
    assert session.scalar(select(AuditEntry.entity_key).where(AuditEntry.entity == "skill")) == "prompt-design"


@pytest.mark.parametrize(
    ("links", "message"),
    [
        (["accelerate"], "^link: 'accelerate' is not PATHWAY:TIER"),
        (["accelerate:0"], "^link:"),
        (["accelerate:4"], "^link: pathway 'accelerate' has no tier 4"),
        (["accelerate:1", "accelerate:2"], "^link: 'accelerate' is given twice"),
    ],
)
def test_bad_links_are_refused_and_nothing_is_written(session: Session, links: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        add_skill(session, "x", name="X", now=NOW, links=links)
    assert list_skills(session, include_archived=True) == []


def test_unknown_pathway_is_not_found_and_archived_pathway_takes_no_links(session: Session) -> None:
    with pytest.raises(NotFound):
        add_skill(session, "x", name="X", now=NOW, links=["nowhere:1"])
    add_skill(session, "x", name="X", now=NOW, links=["play:1"])
    archive_pathway(session, "play", now=NOW)
    with pytest.raises(InvalidInput, match="archived"):
        link_skill(session, "x", "play:2", now=NOW)
    with pytest.raises(InvalidInput, match="archived"):
        add_skill(session, "y", name="Y", now=NOW, links=["Play:1"])


def test_one_tier_per_pathway_link_moves_and_unlink(session: Session) -> None:
    add_skill(session, "x", name="X", now=NOW, links=["accelerate:1"])
    same = link_skill(session, "x", "accelerate:1", now=NOW)
    assert same.changed == {}
    moved = link_skill(session, "x", "accelerate:3", now=NOW)
    assert moved.skill["links"] == ["accelerate:3"]
    assert session.scalar(select(func.count()).select_from(SkillPathwayLink)) == 1
    link_skill(session, "x", "pivot:2", now=NOW)
    assert unlink_skill(session, "x", "ACCELERATE", now=NOW).skill["links"] == ["pivot:2"]
    with pytest.raises(NotFound, match="not linked"):
        unlink_skill(session, "x", "accelerate", now=NOW)


def test_list_filters(session: Session) -> None:
    small_catalogue(session)
    assert [view["slug"] for view in list_skills(session, pathway="Accelerate", tier=2)] == ["a4", "shared"]
    assert [view["slug"] for view in list_skills(session, fundamental=True)] == ["f1", "f2"]
    assert [view["slug"] for view in list_skills(session, tier=1)] == ["a1", "a2", "a3", "f2", "shared"]
    update_skill(session, "a1", now=NOW, name="Renamed", fundamental=True)
    from bapp_cli.services.skills import archive_skill

    archive_skill(session, "a2", now=NOW)
    assert [view["slug"] for view in list_skills(session, fundamental=True)] == ["a1", "f1", "f2"]
    assert "a2" not in [view["slug"] for view in list_skills(session)]
    assert "a2" in [view["slug"] for view in list_skills(session, include_archived=True)]


def test_assign_a_tier_is_idempotent_and_enrols(session: Session) -> None:
    small_catalogue(session)
    ada = client(session)
    first, _ = assign_skills(session, ada.email, now=NOW, pathway="accelerate", tier=1, note="kick-off")
    assert (first["assigned"], first["enrolled"]) == (["a1", "a2", "a3"], ["accelerate"])
    again, _ = assign_skills(session, ada.email, now=LATER, pathway="accelerate", tier=1)
    assert (again["assigned"], again["updated"], again["unchanged"], again["enrolled"]) == (
        [],
        [],
        ["a1", "a2", "a3"],
        [],
    )
    assert session.scalar(select(func.count()).select_from(Enrolment)) == 1
    row = progress_row(session, ada.id, "a1")
    assert (row.status, row.notes, row.pathway_id, row.updated_at) == (
        "not_started",
        "kick-off",
        pathway(session, "accelerate").id,
        NOW,
    )


def test_assign_moves_forward_only(session: Session) -> None:
    small_catalogue(session)
    ada = client(session)
    assign_skills(session, ada.email, ["a1", "a2"], now=NOW, status="in_progress")
    complete_skill(session, ada.email, "a2", now=NOW)
    result, _ = assign_skills(session, ada.email, ["a1", "a2", "A1"], now=LATER, status="in_progress")
    assert (result["assigned"], result["updated"], result["unchanged"]) == ([], [], ["a1", "a2"])
    assert progress_row(session, ada.id, "a1").started_at == NOW
    assert progress_row(session, ada.id, "a2").status == "completed"
    advanced, _ = assign_skills(session, ada.email, ["a1"], now=LATER, status="completed")
    assert advanced["updated"] == ["a1"]
    row = progress_row(session, ada.id, "a1")
    assert (row.status, row.started_at, row.completed_at, row.completion_method, row.attempts) == (
        "completed",
        NOW,
        LATER,
        "manual",
        1,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"skills": []}, "^skill: name one or more skills"),
        ({"skills": ["a1"], "tier": 1}, "^tier:"),
        ({"skills": [], "pathway": "accelerate", "tier": 7}, "^tier: pathway 'accelerate' has no tier 7"),
        ({"skills": ["p2"], "pathway": "accelerate"}, "^skill: 'p2' is not linked to pathway 'accelerate'"),
        ({"skills": ["a1"], "status": "done"}, "^status:"),
        ({"skills": ["a1"], "via": "assessment"}, "^via:"),
        ({"skills": ["bad slug"]}, "^skill:"),
    ],
)
def test_assign_refuses_bad_input(session: Session, kwargs: dict[str, object], message: str) -> None:
    small_catalogue(session)
    ada = client(session)
    options = dict(kwargs)
    skills = options.pop("skills")
    with pytest.raises(InvalidInput, match=message):
        assign_skills(session, ada.email, skills, now=NOW, **options)  # type: ignore[arg-type]
    assert session.scalar(select(func.count()).select_from(UserSkillProgress)) == 0
    assert session.scalar(select(func.count()).select_from(Enrolment)) == 0


def test_unknown_client_or_skill_is_not_found(session: Session) -> None:
    small_catalogue(session)
    with pytest.raises(NotFound, match="no client"):
        complete_skill(session, "nobody@example.com", "a1", now=NOW)
    client(session)
    with pytest.raises(NotFound, match="no skill"):
        start_skill(session, "ada@example.com", "nothing", now=NOW)


def test_start_complete_reset_lifecycle(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "accelerate")
    coach = builder(session)
    started, _ = start_skill(session, ada.email, "a1", now=NOW)
    assert (started["previous_status"], started["status"], started["started_at"], started["pathway"]) == (
        None,
        "in_progress",
        NOW,
        "accelerate",
    )
    done, _ = complete_skill(session, "ADA@example.com", "a1", now=LATER, validated_by=coach.email, note="solid")
    assert done | {"badges_awarded": None} == {
        "client": "ada@example.com",
        "skill": "a1",
        "status": "completed",
        "previous_status": "in_progress",
        "changed": True,
        "attempts": 1,
        "started_at": NOW,
        "completed_at": LATER,
        "completed_via": "builder_validation",
        "validated_by": "bob@example.com",
        "pathway": "accelerate",
        "notes": "solid",
        "badges_awarded": None,
        "pathways_completed": [],
        "enrolled": [],
    }
    with pytest.raises(Conflict, match="already completed"):
        start_skill(session, ada.email, "a1", now=LATER)
    reset, _ = reset_skill(session, ada.email, "a1", now=LATER)
    row = progress_row(session, ada.id, "a1")
    assert reset["changed"] and (row.status, row.started_at, row.completed_at, row.validated_by_id) == (
        "not_started",
        None,
        None,
        None,
    )
    assert (row.attempts, row.last_attempt_at, row.notes) == (1, LATER, "solid")
    assert reset_skill(session, ada.email, "a1", now=LATER)[0]["changed"] is False
    with pytest.raises(NotFound, match="no builder"):
        complete_skill(session, ada.email, "a1", now=LATER, validated_by="ada@example.com")


def test_a_skill_in_several_enrolled_pathways_is_assigned_under_none(session: Session) -> None:
    small_catalogue(session)
    ada = client(session, "ada@example.com", "accelerate", "pivot")
    complete_skill(session, ada.email, "shared", now=NOW)
    assert progress_row(session, ada.id, "shared").pathway_id is None
    complete_skill(session, ada.email, "a1", now=NOW)
    assert progress_row(session, ada.id, "a1").pathway_id == pathway(session, "accelerate").id


def test_archived_skills_take_no_new_assignments(session: Session) -> None:
    from bapp_cli.services.skills import archive_skill

    small_catalogue(session)
    ada = client(session)
    assign_skills(session, ada.email, ["a1"], now=NOW)
    archive_skill(session, "a1", now=NOW)
    archive_skill(session, "a2", now=NOW)
    with pytest.raises(InvalidInput, match="archived"):
        assign_skills(session, ada.email, ["a2"], now=NOW)
    with pytest.raises(InvalidInput, match="archived"):
        link_skill(session, "a2", "pivot:1", now=NOW)
    # history of an archived skill can still be completed
    assert complete_skill(session, ada.email, "a1", now=NOW)[0]["status"] == "completed"
    by_pathway, _ = assign_skills(session, ada.email, now=NOW, pathway="accelerate", tier=1)
    assert by_pathway["assigned"] == ["a3"]
