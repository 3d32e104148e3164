"""What the commands leave on disk: CSVs, the run journal, heatmap PNGs, the log."""
