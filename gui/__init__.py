"""MRI Tumor Classifier: the app's Qt-free core, with the Qt shell in ``gui.app``.

ONNX Runtime 1.29+ sends usage telemetry (a DNS lookup of a Microsoft events host and a device
id under ``~/.cache/Microsoft``) unless ``ORT_DISABLE_TELEMETRY=1`` is set before it is first
imported; ``ort.disable_telemetry_events()`` does not stop it. Every entry point (window,
``classify``, the frozen app, the training and export tools) imports this package first, so the
variable is set here, unconditionally: the app promises never to reach the network.
"""

import os

os.environ["ORT_DISABLE_TELEMETRY"] = "1"
