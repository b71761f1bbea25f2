"""The eval harness: scripted calls (TOML scenarios) judged on turn-taking, latency and words.

``scenario`` reads and validates the files, ``runner`` places the calls with the Twilio caller
emulator (under a phone-line condition) against a bot (``bots``), ``records`` reads the
server's record of each call (its timeline), ``observe`` joins the caller's and the server's
view line by line, ``checks`` judges the expectations, ``metrics`` and ``rates`` compute WER,
latency percentiles and turn-taking rates, ``report`` prints and writes the verdict,
``html`` + ``plots`` draw it, ``baseline`` compares two runs. ``voiceagent eval`` is the command
(``eval.cli``).
"""
