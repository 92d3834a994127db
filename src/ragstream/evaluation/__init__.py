"""Retrieval evaluation: a labelled question set, its relevance rules and metrics.

``dataset`` and ``metrics`` are pure standard library and import nothing from
the services (``gateway``, ``ingest``, ``query``); ``runner`` drives a running
system over HTTP.
"""
