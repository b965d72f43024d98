"""``python -m localizer.cli``: what installed git hooks run (``localizer.hooks.install``)."""

from localizer.cli.main import main

main()
