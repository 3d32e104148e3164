"""The headless commands: classify, watch, listen, merge, tune."""
