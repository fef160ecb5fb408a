"""Commands of the `nanorec` command line, one module each.

Modules here import torch and matplotlib inside the command bodies, so that
`nanorec --help` and the other commands start without loading them.
"""
