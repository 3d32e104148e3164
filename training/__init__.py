"""Importing ``gui`` first opts ONNX Runtime out of telemetry before anything here imports it."""

import gui  # noqa: F401
