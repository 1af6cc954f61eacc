"""Benchmarks of ``evolink_async`` against hand-written loops, run with ``python -m benchmarks [--quick]``.

Every scenario talks to a sandbox running in a separate process (``benchmarks._server``), so the
client's cost is measured alone. Results go to ``benchmarks/results/latest.json``; a full run also
writes the markdown table ``benchmarks/RESULTS.md``.
"""
