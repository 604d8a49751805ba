"""Fuzzing a real ``outlast serve`` through every implemented endpoint.

    python -m bench.fuzz --requests 10000      # the long run (results in bench/RESULTS.md)
    python -m bench.fuzz --requests 500 --seed 1

The short variant runs in ``./run test`` (tests/e2e/test_fuzz.py).

Why Hypothesis rather than schemathesis: the requests are driven by
Outlast's own route table and our own body schemas (bench/fuzz/schemas.py)
— we do not copy the Matrix spec's OpenAPI files — and Hypothesis lets the
generator mix those valid-shaped bodies with arbitrary JSON and bytes, real
ids with garbage, and hostile transport details (non-ASCII tokens, corrupt
gzip, odd content types) in one strategy, with seeds to replay a run.
schemathesis would need an OpenAPI document of ours for every route and
brings a large stack for little more. The schemas are turned into
strategies by a few lines of our own (``schemas.strategy``):
hypothesis-jsonschema, the usual bridge, does not work with current
Hypothesis releases (its last release is from early 2024).
"""
