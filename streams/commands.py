"""What each command a gateway waits on may answer: its rejection codes and their errors.

The topic and the record key of a command come from its event registration
(``streams.registry``); this table adds the one thing only commands have, the
refusals an agent may answer and the domain error each one becomes, so a
rejection is mapped in this one place and never by the code that sent it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pydantic import BaseModel

from streams.errors import Conflict, Forbidden, MercatoError, NotFound, PreconditionFailed
from streams.events.files import (
    FileDeleted,
    FilePermissionGranted,
    FilePermissionRevoked,
    FileUploaded,
)
from streams.events.inventory import AdjustRequested
from streams.events.notifications import (
    NotificationDeleteRequested,
    NotificationReadAllRequested,
    NotificationReadRequested,
)
from streams.events.products import (
    ProductArchiveRequested,
    ProductCreateRequested,
    ProductUpdateRequested,
    ReviewSubmitRequested,
)
from streams.events.saga import OrderCancelRequested, OrderRequested, OrderRetryRequested
from streams.events.users import (
    PasswordChangeRequested,
    ProfileUpdateRequested,
    RegistrationRequested,
    RolesChangeRequested,
)


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
FILES = CommandSpec({"NOT_FOUND": NotFound}, "the files agent refused")

_BY_MODEL: dict[type[BaseModel], CommandSpec] = {
    ProductCreateRequested: CATALOG,
    ProductUpdateRequested: CATALOG,
    ProductArchiveRequested: CATALOG,
    ReviewSubmitRequested: CATALOG,
    ProfileUpdateRequested: USERS,
    RolesChangeRequested: USERS,
    PasswordChangeRequested: USERS,
    RegistrationRequested: REGISTRATIONS,
    OrderRequested: ORDERS,
    OrderCancelRequested: ORDERS,
    OrderRetryRequested: ORDERS,
    NotificationReadRequested: NOTIFICATIONS,
    NotificationDeleteRequested: NOTIFICATIONS,
    NotificationReadAllRequested: NOTIFICATIONS,
    AdjustRequested: STOCK,
    # File facts are answered once the files agent has projected them.
    FileUploaded: FILES,
    FileDeleted: FILES,
    FilePermissionGranted: FILES,
    FilePermissionRevoked: FILES,
}


def command_spec(model: type[BaseModel]) -> CommandSpec:
    """The spec of a command payload; a payload nobody answers is not a command."""
    try:
        return _BY_MODEL[model]
    except KeyError:
        raise KeyError(f"{model.__name__} is not a command a gateway waits on") from None


def answered_models() -> Mapping[type[BaseModel], CommandSpec]:
    """Every command a gateway waits on, with its spec."""
    return _BY_MODEL
