"""Files: streamed uploads, metadata, content with ranges, and read grants."""
