"""``localize serve``: a long-lived localizer for coding agents and editors, over MCP.

A fresh ``localize`` process pays for its imports, the index load and the model load on every
call; a server pays once and keeps the index fresh by itself. The package keeps its parts apart:

- :mod:`localizer.serve.watch`: which file changes matter, the debouncer that turns an edit storm
  into one or two refreshes, and the watcher (``watchfiles`` events, polling as the fallback);
- :mod:`localizer.serve.state`: the warm snapshot (index, pipeline, history), its background
  refresh and the atomic swap;
- :mod:`localizer.serve.tools`: what each tool answers, as plain functions of the warm state;
- :mod:`localizer.serve.server`: the MCP wiring (official ``mcp`` SDK), stdio or streamable HTTP,
  and a clean exit on SIGTERM.

Only ``server`` imports the ``mcp`` SDK (the ``serve`` extra); the rest is plain Python.
"""
