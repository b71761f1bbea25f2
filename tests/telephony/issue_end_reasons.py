"""The end reasons the telephony issue lists: every call record ends for one of them."""

ISSUE_END_REASONS = {
    "caller_hung_up",
    "agent_hung_up",
    "transferred",
    "voicemail",
    "no_answer",
    "busy",
    "failed",
    "canceled",
    "server_shutdown",
    "error",
}
