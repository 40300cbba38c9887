"""Airflow-side glue for gogoku: the runner factory, the J-Quants connection mapping, params and plans.

DAG files import from here. Nothing in this package imports the core package `gogoku` at module
level: heavy work runs as `gogoku` CLI commands (a subprocess or a pod), and the few helpers that
need the JPX calendar import it inside the task that runs them.
"""
