"""The Qt-free core: reader, model contract, engine, overlay maths, logs, resources and the headless
``classify`` command. Nothing here imports Qt (an import-linter contract checks it); ``gui.app`` is
the thin Qt shell on top, ``gui.launcher`` the entry point that chooses between them."""
