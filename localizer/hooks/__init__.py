"""Git hooks that keep the index fresh: install/uninstall and the background refresh they start."""
