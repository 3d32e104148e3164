"""The Qt shell: widgets that wire the Qt-free core (imaging, model, engine, overlay) to the screen."""
