"""Scoring: the benchmark protocol over pysodmetrics (metrics), folder evaluation (evaluate), the summary
and ratio tables (summary), and the baselines that tell a trivial dataset from a real one (baselines).

Imports are left to the modules (importing the package loads nothing).
"""
