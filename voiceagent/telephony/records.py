"""A call's progress as steps of its record's status timeline (``CallStatusUpdate``).

Twilio's status and AMD callbacks, and the REST answer that placed a call, become timeline
entries of the call's row (created by call sid if the media stream has not started yet). A
call that ends without ever streaming (busy, no answer, failed, canceled) gets its end reason
from its final status here.
"""

from __future__ import annotations

import time

from voiceagent.storage.archive import CallArchive
from voiceagent.storage.store import CallStatusUpdate
from voiceagent.telephony.callbacks import AmdCallback, StatusCallback
from voiceagent.telephony.dial import OUTBOUND, PlacedCall
from voiceagent.telephony.end_reason import from_twilio_status


def status_update(callback: StatusCallback) -> CallStatusUpdate:
    """A status callback as a timeline step (ending a call that never streamed)."""
    end = from_twilio_status(callback.status)
    data = {} if callback.duration_s is None else {"duration_s": callback.duration_s}
    return CallStatusUpdate(
        call_sid=callback.call_sid,
        status=callback.status,
        at=callback.at,
        source="status_callback",
        sequence=callback.sequence,
        direction=callback.direction,
        from_number=callback.from_number,
        to_number=callback.to_number,
        account_sid=callback.account_sid,
        data=data,
        end_reason=None if end is None else end.value,
    )


def amd_update(callback: AmdCallback, at: float | None = None) -> CallStatusUpdate:
    """Twilio's AMD result as a timeline step (it also sets the call's ``answered_by``)."""
    data = {} if callback.detection_ms is None else {"detection_ms": callback.detection_ms}
    return CallStatusUpdate(
        call_sid=callback.call_sid,
        status=callback.answered_by,
        at=time.time() if at is None else at,
        source="amd",
        account_sid=callback.account_sid,
        data=data,
    )


def placed_update(placed: PlacedCall, at: float | None = None) -> CallStatusUpdate:
    """The REST answer that placed an outbound call, as its first timeline step.

    Stamped with Twilio's ``date_created`` when it gave one, like its callbacks' ``Timestamp``.
    """
    when = at if at is not None else placed.created_at
    return CallStatusUpdate(
        call_sid=placed.sid,
        status=placed.status,
        at=time.time() if when is None else when,
        source="rest",
        direction=OUTBOUND,
        from_number=placed.from_,
        to_number=placed.to,
        data={
            "machine_detection": placed.machine_detection,
            "voicemail_action": placed.voicemail_action,
        },
    )


class ArchiveStatusSink:
    """The server's callbacks, recorded through the call archive (never blocks the loop)."""

    def __init__(self, archive: CallArchive) -> None:
        self._archive = archive

    def record_status(self, callback: StatusCallback) -> None:
        """A call progress event."""
        self._archive.record_status(status_update(callback))

    def record_answered_by(self, callback: AmdCallback) -> None:
        """Twilio's AMD result."""
        self._archive.record_status(amd_update(callback))
