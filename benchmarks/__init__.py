"""Speed benchmarks and the SWE-bench harness (``localize-bench``).

A wheel installs this folder as ``localizer_benchmarks`` (setup.cfg), not as a
top-level ``benchmarks`` that could clash with another project's folder of that
name; a checkout still runs it as ``python -m benchmarks.swebench.run``. So
modules in here import each other relatively, and nothing else imports them.
"""
