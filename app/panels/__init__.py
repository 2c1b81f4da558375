"""The areas of the main window, each a widget that talks to the window through signals."""
