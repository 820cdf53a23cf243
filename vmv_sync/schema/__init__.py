"""The workshop document: stages, value names, roots, tolerant readers and actions.

This package is the single description of contract section 3; the server, the
client and derived state all go through it rather than naming roots themselves.
"""

from __future__ import annotations

from vmv_sync.schema.actions import (
    MAX_MESSAGE_CHARS,
    add_participant,
    cast_vote,
    close_ballot,
    deselect_value,
    open_ballot,
    post_message,
    rate_value,
    retract_vote,
    select_value,
    set_catalogue,
    set_progress,
    set_stage,
    toggle_value,
)
from vmv_sync.schema.document import (
    ROOTS,
    SCHEMA_VERSION,
    InvalidAction,
    Roots,
    bind_roots,
    ensure_participant_entries,
    new_workshop,
    participant_entries_missing,
    read_workshop,
)
from vmv_sync.schema.names import choose_display_name, normalize_value_name, tidy_value_name
from vmv_sync.schema.records import (
    BALLOT_KINDS,
    ROLES,
    Ballot,
    BallotKind,
    ChatMessage,
    Choice,
    Participant,
    Progress,
    Rating,
    Role,
    WorkshopData,
)
from vmv_sync.schema.stages import STAGES, Stage, UnknownStage, is_stage, parse_stage, stage_number
from vmv_sync.schema.text import (
    MAX_TEXT_CHARS,
    edit_draft,
    edit_mission,
    edit_text,
    edit_vision,
    replace_text,
    set_draft,
    set_mission,
    set_vision,
)

__all__ = (
    "MAX_MESSAGE_CHARS",
    "MAX_TEXT_CHARS",
    # stages
    "Stage",
    "STAGES",
    "UnknownStage",
    "stage_number",
    "parse_stage",
    "is_stage",
    # names
    "normalize_value_name",
    "tidy_value_name",
    "choose_display_name",
    # records
    "Role",
    "ROLES",
    "BallotKind",
    "BALLOT_KINDS",
    "Choice",
    "Participant",
    "ChatMessage",
    "Ballot",
    "Rating",
    "Progress",
    "WorkshopData",
    # document
    "ROOTS",
    "SCHEMA_VERSION",
    "InvalidAction",
    "Roots",
    "bind_roots",
    "ensure_participant_entries",
    "participant_entries_missing",
    "new_workshop",
    "read_workshop",
    # actions
    "add_participant",
    "post_message",
    "toggle_value",
    "select_value",
    "deselect_value",
    "set_catalogue",
    "open_ballot",
    "close_ballot",
    "cast_vote",
    "retract_vote",
    "rate_value",
    "set_progress",
    "set_stage",
    # text
    "edit_text",
    "replace_text",
    "set_draft",
    "edit_draft",
    "set_mission",
    "edit_mission",
    "set_vision",
    "edit_vision",
)
