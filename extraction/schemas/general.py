"""NERRE general-materials task: formulas, names, acronyms, applications, phases, descriptions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from extraction.schemas.base import SchemaSpec, entries_need_one_of, extractive, load_examples

Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=48)]


class Material(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Names, formulas and phases are copied from the text (NERRE gold: 88-100% of them are
    # spans of it); applications and descriptors are often reworded (78%), so left free.
    formula: Text = Field(description="chemical formula as written, e.g. LiFePO4; empty if none",
                          json_schema_extra=extractive())
    name: Text = Field(description="material name as written, e.g. lithium iron phosphate; "
                                   "empty if none", json_schema_extra=extractive(ignore_case=True))
    acronym: Short = Field(description="acronym used for the material, e.g. LFP; empty if none",
                           json_schema_extra=extractive())
    applications: list[Item] = Field(
        max_length=4, description="what the material is used or studied for, e.g. cathode")
    structure_or_phase: list[Item] = Field(
        max_length=4, description="crystal structure or phase, e.g. olivine, rutile, amorphous",
        json_schema_extra=extractive(ignore_case=True))
    description: list[Item] = Field(
        max_length=4, description="other descriptors, e.g. nanoparticles, thin film, doped")


class GeneralRecord(BaseModel):
    """Materials described in a text."""

    model_config = ConfigDict(extra="forbid")

    materials: list[Material] = Field(max_length=8, description="each material the text studies")


SPEC = SchemaSpec(
    name="general",
    version="1",
    model=GeneralRecord,
    instructions=(
        "Extract every material the text studies. For each, copy its formula, name and "
        "acronym exactly as written (empty string when absent), and list its applications, "
        "crystal structure or phase, and other descriptors using words from the text."),
    examples=load_examples("general"),
    checks=(entries_need_one_of("materials", ("formula", "name", "acronym"), "a material"),),
    extra={"empty_output": {"materials": []},
           # a formula-like token: element symbols with at least one count, e.g. TiO2, Co3O4
           "cues": {"materials": r"\b(?:[A-Z][a-z]?)+\d+(?:[A-Z][a-z]?\d*)*\b"}},
)
