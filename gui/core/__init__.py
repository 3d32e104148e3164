"""The Qt-free core, by folder: ``readers`` (files to frames), ``engine`` (frames to answers), ``records``
(answers to files on disk), ``commands`` (the headless commands). Nothing here imports Qt (an import-linter contract checks it); ``gui.app`` is
the thin Qt shell on top, ``gui.launcher`` the entry point that chooses between them."""
