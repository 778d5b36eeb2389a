"""What a command a gateway waits on may answer: its rejection codes and their errors.

The topic and the record key of a command come from its event registration
(``streams.registry``); a spec here adds the one thing only commands have, the
refusals an agent may answer and the domain error each one becomes, so a
rejection is mapped in one place and never by the code that sent it. Each
command names its spec where it is declared (``@event(..., answers=CATALOG)``),
so this module imports no events and the registry can import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from streams.errors import Conflict, Forbidden, MercatoError, NotFound, PreconditionFailed


@dataclasses.dataclass(frozen=True, slots=True)
class CommandSpec:
    """The refusals one agent may answer: each code and the domain error it becomes."""

    rejections: Mapping[str, type[MercatoError]]
    refused: str  # the detail when an answer carries none

    def error(self, code: str | None, detail: str | None) -> MercatoError:
        """The domain error of a rejection; a code outside the table stays a plain failure."""
        error = self.rejections.get(code or "", MercatoError)
        return error(detail or self.refused, code=code)


CATALOG = CommandSpec(
    {
        "NOT_FOUND": NotFound,
        "FORBIDDEN": Forbidden,
        "PRECONDITION_FAILED": PreconditionFailed,
        "PRODUCT_ARCHIVED": Conflict,
        "PRODUCT_EXISTS": Conflict,
        "REVIEW_EXISTS": Conflict,
    },
    "the catalog refused the change",
)
USERS = CommandSpec({"NOT_FOUND": NotFound, "VERSION_CONFLICT": Conflict}, "the change was refused")
REGISTRATIONS = CommandSpec({"EMAIL_TAKEN": Conflict}, "registration failed")
ORDERS = CommandSpec(
    {"NOT_FOUND": NotFound, "ORDER_NOT_CANCELLABLE": Conflict, "ORDER_NOT_STUCK": Conflict},
    "the order saga refused the command",
)
# Someone else's notification is refused exactly like a missing one: NOT_FOUND.
NOTIFICATIONS = CommandSpec({"NOT_FOUND": NotFound}, "no such notification")
STOCK = CommandSpec({"INSUFFICIENT_STOCK": Conflict}, "the stock change was refused")
# File facts (uploaded, deleted, permissions) are answered once the files agent projected them.
FILES = CommandSpec({"NOT_FOUND": NotFound}, "the files agent refused")
# Groups: a missing group, or a limit of settings reached (members per group, groups per owner).
GROUPS = CommandSpec(
    {"NOT_FOUND": NotFound, "FORBIDDEN": Forbidden, "GROUP_LIMIT_REACHED": Conflict,
     "GROUP_FULL": Conflict, "ALREADY_MEMBER": Conflict},
    "the groups agent refused",
)
