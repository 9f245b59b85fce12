"""NERRE doping task: host materials, dopants, and which dopant sits in which host."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from extraction.schemas.base import SchemaSpec, extractive, load_examples

Entity = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=48)]


class DopingLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: Entity = Field(description="a host material, exactly as listed in hosts",
                         json_schema_extra=extractive())
    dopant: Entity = Field(description="a dopant in that host, exactly as listed in dopants",
                           json_schema_extra=extractive())


class DopingRecord(BaseModel):
    """Doping facts stated in a text."""

    model_config = ConfigDict(extra="forbid")

    hosts: list[Entity] = Field(
        max_length=6,
        description="host (base) materials that are doped, written as in the text, "
                    "e.g. ZnO, SrTiO3, perovskite",
        json_schema_extra=extractive())
    dopants: list[Entity] = Field(
        max_length=6,
        description="dopant elements or ions added to a host, written as in the text, "
                    "e.g. Er3+, Mn, nitrogen",
        json_schema_extra=extractive())
    links: list[DopingLink] = Field(
        max_length=8, description="which dopant is in which host")


def links_use_listed_entities(record: DopingRecord) -> list[str]:
    """Cross-field rule the grammar cannot enforce: links name listed hosts and dopants."""
    problems = []
    for position, link in enumerate(record.links):
        if link.host not in record.hosts:
            problems.append(f"links[{position}].host {link.host!r} is not listed in hosts")
        if link.dopant not in record.dopants:
            problems.append(f"links[{position}].dopant {link.dopant!r} is not listed in dopants")
    return problems


def nothing_dopes_itself(record: DopingRecord) -> list[str]:
    """A material is not its own dopant: the same text as host and as dopant is a misreading."""
    hosts = {host.casefold() for host in record.hosts}
    return [f"{dopant!r} is listed both as a host and as a dopant"
            for dopant in record.dopants if dopant.casefold() in hosts]


SPEC = SchemaSpec(
    name="doping",
    version="1",
    model=DopingRecord,
    instructions=(
        "Extract doping information. List every host material that is doped and every "
        "dopant, copying each exactly as written in the text, then link each dopant to its "
        "host. Use empty lists when the text reports no doping."),
    examples=load_examples("doping"),
    checks=(links_use_listed_entities, nothing_dopes_itself),
    extra={"empty_output": {"hosts": [], "dopants": [], "links": []},
           "cues": {"hosts": r"\b[\w\-+]*-?(?:co-?)?doped\b|\b[Dd]op(?:ing|ants?)\b"}},
)
