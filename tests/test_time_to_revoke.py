"""Time to revoke on loopback stays within a few seconds (the benchmark prints the figures)."""

from __future__ import annotations

from benchmarks.time_to_revoke import measure, percentile


def test_a_revoked_session_is_refused_within_a_few_seconds():
    figures = measure(runs=5, timeout=5.0)
    assert len(figures) == 5
    assert 0 < min(figures) <= max(figures) < 3.0, figures


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([7.0], 0.99)) == (
        50.0,
        99.0,
        7.0,
    )
