"""Common library of the EAí Agent Gateway functions.

Every behaviour of the gateway lives here; the functions under ``functions/`` only translate an
HTTP request into a call of this package and its answer back.
"""
