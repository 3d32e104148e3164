"""Light and dark themes for the reading room: one palette each, chosen by the user or the system.

Every text colour here is checked against its background for WCAG 2.1 AA contrast (4.5:1 for body
text) by ``tests/test_theme.py``; answers are always said in words (colour only repeats them), and
the image area stays black in both themes. The PDF report is printed on white: it uses LIGHT.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

LIGHT = {"window": "#f3f3f3", "base": "#ffffff", "text": "#1a1a1a", "muted": "#595959", "button": "#e6e6e6",
         "highlight": "#1558b0", "highlight_text": "#ffffff", "link": "#1558b0",
         "tumor": "#b00020", "no_tumor": "#1b5e20", "warning": "#8a4b00", "error": "#b00020"}
DARK = {"window": "#202124", "base": "#17181a", "text": "#e8eaed", "muted": "#a9adb3", "button": "#303134",
        "highlight": "#8ab4f8", "highlight_text": "#17181a", "link": "#8ab4f8",
        "tumor": "#ff8a80", "no_tumor": "#7fd08f", "warning": "#ffc266", "error": "#ff8a80"}
CHOICES = ("system", "light", "dark")

#: The palette in use (the window's labels, the strip and the histogram read it when they paint).
current: dict[str, str] = dict(LIGHT)


def colour(name: str) -> str:
    return current[name]


def answer_colour(prediction: str, palette: dict[str, str] | None = None) -> str:
    """The colour that repeats an answer ("tumor" / "no_tumor"); the text colour for anything else."""
    p = palette or current
    return p.get(prediction, p["text"]) if prediction in ("tumor", "no_tumor") else p["text"]


def relative_luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour."""
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21; AA asks 4.5 for text)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def system_is_dark(app: QApplication) -> bool:
    """Whether the desktop asks for a dark look (Qt 6.5+ reads it from the platform)."""
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark


def resolve(choice: str, app: QApplication) -> str:
    """"light" or "dark" for a user's choice ("system" follows the desktop)."""
    if choice == "system":
        return "dark" if system_is_dark(app) else "light"
    return choice if choice in ("light", "dark") else "light"


def apply(app: QApplication, choice: str) -> str:
    """Give the application the palette of ``choice``; returns the theme applied ("light"/"dark").

    Qt's Fusion style is used in both, because it draws with the palette on every platform (native
    styles may ignore it, which would break the contrast checked here)."""
    name = resolve(choice, app)
    p = LIGHT if name == "light" else DARK
    current.clear()
    current.update(p)
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {QPalette.ColorRole.Window: "window", QPalette.ColorRole.WindowText: "text",
             QPalette.ColorRole.Base: "base", QPalette.ColorRole.AlternateBase: "window",
             QPalette.ColorRole.Text: "text", QPalette.ColorRole.Button: "button",
             QPalette.ColorRole.ButtonText: "text", QPalette.ColorRole.ToolTipBase: "base",
             QPalette.ColorRole.ToolTipText: "text", QPalette.ColorRole.Highlight: "highlight",
             QPalette.ColorRole.HighlightedText: "highlight_text", QPalette.ColorRole.Link: "link",
             QPalette.ColorRole.PlaceholderText: "muted", QPalette.ColorRole.BrightText: "error"}
    for role, key in roles.items():
        pal.setColor(role, QColor(p[key]))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(p["muted"]))
    app.setPalette(pal)
    app.setStyleSheet(indicator_style(p))
    return name


def indicator_style(p: dict[str, str]) -> str:
    """Check boxes and radio buttons outlined in the muted text colour (WCAG 1.4.11 asks 3:1 for a
    control's edge; Fusion's own outline on the dark window was ~1.1:1, an invisible box), filled with
    the highlight colour when checked."""
    return (f"QCheckBox::indicator, QRadioButton::indicator {{ width: 13px; height: 13px; "
            f"border: 2px solid {p['muted']}; background: {p['base']}; }} "
            f"QRadioButton::indicator {{ border-radius: 8px; }} "
            f"QCheckBox::indicator:checked, QRadioButton::indicator:checked {{ background: {p['highlight']}; "
            f"border-color: {p['highlight']}; }} "
            f"QCheckBox::indicator:disabled, QRadioButton::indicator:disabled {{ border-color: {p['button']}; }}")
