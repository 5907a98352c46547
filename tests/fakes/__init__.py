"""Dev-only simulators of the services stemhub talks to and cannot reach in tests.

Shared by the test suite and the benchmarks, never shipped in a product wheel:
``stemsplit`` (the hosted StemSplit API), ``slack`` (Slack's Web API), ``discord``
(Discord's REST API). Each refuses what the real service refuses; see its docstring for
the rules and the documents they come from.
"""
