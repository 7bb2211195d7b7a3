"""Streaming signal processing: chunk in, chunk out, state carried between chunks."""
