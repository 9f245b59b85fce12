"""NERRE MOF task: metal-organic frameworks, their formulas, guests and applications."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from extraction.schemas.base import SchemaSpec, entries_need_one_of, extractive, load_examples

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=48)]


class Mof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Names, formulas and guests are copied from the text; descriptors and applications are
    # free text (often reworded), so left unconstrained.
    name_of_mof: Text = Field(description="name of the MOF as written, e.g. MOF-5, ZIF-8; "
                                          "empty if none", json_schema_extra=extractive())
    mof_formula: Text = Field(description="formula of the MOF as written, e.g. Zn4O(BDC)3; "
                                          "empty if none", json_schema_extra=extractive())
    mof_description: list[Item] = Field(
        max_length=4, description="descriptors of the MOF, e.g. porous, 3D, microporous")
    guest_species: list[Item] = Field(
        max_length=6, description="guest molecules or ions adsorbed or loaded, e.g. CO2, H2",
        json_schema_extra=extractive())
    applications: list[Item] = Field(
        max_length=4, description="what the MOF is used for, e.g. gas storage, catalysis")


class MofRecord(BaseModel):
    """Metal-organic frameworks described in a text."""

    model_config = ConfigDict(extra="forbid")

    mofs: list[Mof] = Field(max_length=6, description="each metal-organic framework studied")


SPEC = SchemaSpec(
    name="mof",
    version="1",
    model=MofRecord,
    instructions=(
        "Extract every metal-organic framework (MOF) the text studies: its name and formula "
        "exactly as written (empty string when absent), descriptors, guest species, and "
        "applications, using words from the text."),
    examples=load_examples("mof"),
    checks=(entries_need_one_of("mofs", ("name_of_mof", "mof_formula"), "a MOF"),),
    extra={"empty_output": {"mofs": []},
           "cues": {"mofs": r"\bMOFs?\b|[Mm]etal[\u2013\u2014-]organic frameworks?"
                            r"|\b(?:ZIF|UiO|HKUST|MIL)-\d+"}},
)
