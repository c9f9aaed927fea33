"""The data the workflow starts from: real datasets checked and indexed (prepare), and the procedural
scene world with exact masks (scenes), the project's miniature of ImageNet + DUTS.

Imports are left to the modules (importing the package loads nothing).
"""
