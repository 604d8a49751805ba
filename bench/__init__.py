"""Outlast benchmarks: the JetStream floor and a Matrix workload, side by side in one run."""
