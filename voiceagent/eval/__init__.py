"""The eval harness: scripted calls (TOML scenarios) judged on turn latency and accuracy.

``scenario`` reads and validates the files, ``runner`` places the calls with the Twilio caller
emulator, ``observe`` joins the caller's and the server's view of each call line by line,
``checks`` judges the expectations, ``metrics`` computes WER and latency percentiles and
``report`` prints and writes the verdict. ``voiceagent eval`` is the command (``eval.cli``).
"""
