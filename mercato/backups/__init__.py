"""Backups of a stack: every topic's records and the GridFS file content, with a manifest.

A backup is a directory: ``manifest.json``, ``topics/<topic>/<partition>.jsonl.gz`` (one
record a line, bytes in base64) and ``content/fs.files.bson.gz`` / ``fs.chunks.bson.gz``.
MongoDB read models are not in it: a restored stack rebuilds them from the topics
(docs/operations.md).
"""
