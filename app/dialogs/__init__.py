"""The app's dialogs, one file each."""
