"""RQ job functions and worker entry points (the outbox relay, ranking, selection).

They call the same command functions as the API and the CLI; see service/commands.py.
"""
