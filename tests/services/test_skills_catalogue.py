"""examples/catalog.toml: a realistic catalogue that loads through the real services on both backends."""

from __future__ import annotations

import tomllib
from collections import Counter

from sqlalchemy.orm import Session

from bapp_cli.services.pathways import list_pathways
from bapp_cli.services.skills import add_skill, list_skills
from tests.conftest import REPO
from tests.services.test_progress_factories import NOW

CATALOG = REPO / "examples" / "catalog.toml"


def test_catalogue_loads_with_every_tier_filled(session: Session) -> None:
    catalog = tomllib.loads(CATALOG.read_text(encoding="utf-8"))
    for item in catalog["skills"]:
        add_skill(
            session,
            item["slug"],
            name=item["name"],
            now=NOW,
            description=item.get("description"),
            domain=item.get("domain"),
            fundamental=item.get("is_fundamental", False),
            links=item.get("links", []),
        )
    records = {record["slug"]: record for record in list_pathways(session)}
    # the catalogue describes exactly the pathways and tiers the default migration creates
    for pathway in catalog["pathways"]:
        record = records[pathway["slug"]]
        assert (record["name"], record["icon"], record["color"]) == (pathway["name"], pathway["icon"], pathway["color"])
        assert [(tier["tier"], tier["name"]) for tier in record["tiers"]] == [
            (t["tier"], t["name"]) for t in pathway["tiers"]
        ]
        sizes = [len(tier["skills"]) for tier in record["tiers"]]
        assert 12 <= sum(sizes) <= 15 and min(sizes) >= 3, (pathway["slug"], sizes)
    fundamentals = list_skills(session, fundamental=True)
    assert 3 <= len(fundamentals) <= 6
    links = Counter(link.split(":")[0] for view in list_skills(session) for link in view["links"])
    assert set(links) == {"accelerate", "pivot", "play"}
    assert len(list_skills(session)) == len(catalog["skills"])
