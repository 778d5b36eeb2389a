"""Files: file facts projected into metadata, grants and usage, and image variants.

``decider`` projects each ``files`` event, ``images`` renders thumbnails with Pillow;
``install`` wires the agent and the orphaned-content sweep on a Faust app.
"""
