"""ATAL, active learning with point labels: adversarial uncertainty, the cyclic schedule's snapshots,
k-centre and dissimilarity queries (methods), and the rounds of training and querying (train).

Imports are left to the modules (importing the package loads nothing).
"""
