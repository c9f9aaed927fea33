"""The synthetic data factory: sampling runs that propose image-mask pairs (sampling, biggan_sampling),
filter them (filters, filter_spec), and write verified Parquet shards (shards); runs wires a
configured run to its files.

Imports are left to the modules (importing the package loads nothing).
"""
