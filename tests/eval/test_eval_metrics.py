"""WER and latency percentile maths."""

import pytest

from voiceagent.eval.metrics import LatencySummary, corpus_wer, percentile, wer, word_errors


def test_identical_words_have_no_errors_whatever_the_case_and_punctuation():
    assert wer("What time do you close on Fridays?", "what time do you close on fridays") == 0.0


def test_one_substitution_in_four_words_is_a_quarter():
    errors = word_errors("book a cleaning please", "book a clinic please")
    assert (errors.edits, errors.reference_words) == (1, 4)
    assert errors.rate == 0.25


def test_deletions_and_insertions_count_once_each():
    assert word_errors("next tuesday afternoon", "tuesday afternoon").edits == 1
    assert word_errors("next tuesday", "uh next tuesday please").edits == 2
    assert wer("yes", "no no no") == 3.0  # insertions can exceed one error per word


def test_nothing_understood_is_every_word_missed_and_nothing_said_is_zero():
    assert wer("how much is a cleaning", "") == 1.0
    assert wer("", "") == 0.0


def test_corpus_wer_weights_sentences_by_their_words():
    total = corpus_wer([("one two three four", "one two three for"), ("yes", "yes")])
    assert (total.edits, total.reference_words) == (1, 5)
    assert total.rate == pytest.approx(0.2)


def test_percentiles_interpolate_between_ranks():
    latencies = [900.0, 700.0, 1500.0, 800.0, 1000.0]  # sorted: 700 800 900 1000 1500
    assert percentile(latencies, 0.5) == 900.0
    assert percentile(latencies, 0.9) == pytest.approx(1300.0)  # 1000 + 0.6 * 500
    assert percentile(latencies, 0.0) == 700.0 and percentile(latencies, 1.0) == 1500.0
    assert percentile([812.0], 0.9) == 812.0
    assert percentile([100.0, 200.0], 0.5) == 150.0


def test_percentile_refuses_no_values_and_a_bad_quantile():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="within 0..1"):
        percentile([1.0], 90)


def test_latency_summary_of_turns():
    summary = LatencySummary.of([700.0, 800.0, 900.0, 1000.0, 1500.0])
    assert summary is not None
    assert (summary.count, summary.p50_ms, summary.max_ms) == (5, 900.0, 1500.0)
    assert summary.p90_ms == pytest.approx(1300.0)
    assert LatencySummary.of([]) is None


def test_a_dictated_number_matches_digits_written_either_way():
    assert wer("my number is five five five, zero one two three", "My number is 5550123.") == 0.0
    errors = word_errors("call 5550123", "call 5550124 now")
    assert (errors.edits, errors.reference_words) == (2, 8)  # one digit wrong, one word more
