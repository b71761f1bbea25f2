"""Library defaults are neutral; the bundled receptionist brings its own words unless set."""

from voiceagent.pipelines.receptionist import (
    RECEPTIONIST_GREETING,
    RECEPTIONIST_OUTBOUND_GREETING,
    RECEPTIONIST_PROMPT,
    RECEPTIONIST_VOICEMAIL_MESSAGE,
    ReceptionistBot,
    receptionist_settings,
)
from voiceagent.settings import Settings


def test_the_library_defaults_are_not_the_dental_office():
    settings = Settings.from_env({})
    said = [
        settings.agent.system_prompt,
        settings.agent.greeting,
        settings.telephony.outbound_greeting,
        settings.telephony.voicemail_message,
    ]
    assert not any("dental" in text.lower() or "smile" in text.lower() for text in said), said


def test_the_receptionist_greets_as_the_dental_office_by_default():
    bot = ReceptionistBot(Settings.from_env({}))
    assert bot.settings.agent.system_prompt == RECEPTIONIST_PROMPT
    assert bot.settings.agent.greeting == RECEPTIONIST_GREETING
    assert bot.settings.telephony.outbound_greeting == RECEPTIONIST_OUTBOUND_GREETING
    assert bot.settings.telephony.voicemail_message == RECEPTIONIST_VOICEMAIL_MESSAGE
    assert bot.resources.settings.agent.system_prompt == RECEPTIONIST_PROMPT  # warmed with it


def test_words_the_user_set_are_kept():
    settings = Settings.from_env(
        {"VOICEAGENT_AGENT__GREETING": "Acme plumbing, how can I help?"},
        agent={"system_prompt": "You answer for Acme plumbing."},
    )
    mine = receptionist_settings(settings)
    assert mine.agent.greeting == "Acme plumbing, how can I help?"
    assert mine.agent.system_prompt == "You answer for Acme plumbing."
    assert mine.telephony.outbound_greeting == RECEPTIONIST_OUTBOUND_GREETING
    assert settings.agent.greeting == "Acme plumbing, how can I help?"  # the input is unchanged
    assert receptionist_settings(mine) == mine
    silent = receptionist_settings(Settings.from_env({}, agent={"greeting": ""}))
    assert silent.agent.greeting == ""  # "" means no greeting, not "use the receptionist's"
