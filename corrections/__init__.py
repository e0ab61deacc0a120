"""Correction files shipped with jettag (package data, installed as ``jettag.shipped_corrections``).

Load them by name with :func:`jettag.corrections.load`; list them with
:func:`jettag.corrections.available`.
"""
