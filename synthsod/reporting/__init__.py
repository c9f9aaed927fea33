"""Figures for the Snakemake report (figures) and the SODGAN Fig. 5 dataset statistics they plot
(dataset_stats).

Imports are left to the modules (importing the package loads nothing).
"""
