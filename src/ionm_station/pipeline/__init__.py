"""The live pipeline: acquisition thread, free-run chain, processing thread."""
