"""Scoring: the benchmark protocol over pysodmetrics (metrics), folder evaluation (evaluate), the summary
and ratio tables (summary), untrained baselines (baselines), the scene world's reference segmenter and its
audits of generated pairs (oracle), and the demo's scorecard against ground truth (scorecard).

Imports are left to the modules (importing the package loads nothing).
"""
