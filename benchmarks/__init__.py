"""The benchmarks (not installed with ``vtwait``): ``python bench.py [MODE] --help``.

    cli.py          the one command line: a sub-command per mode, ``strategies`` the default
    common.py       what the modes share: percentiles, targets, Markdown, MeasuredServer,
                    parse_wrk, process CPU and memory, the JSON document and its section
    strategies.py   the client's waiting strategies (also plan_jobs/run_strategy for others)
    scale.py  many.py  redis_store.py  learned.py  ratelimit.py    one mode each
    report.py       docs/benchmarks.md generated from the modes' JSON

Each mode module exposes ``HELP``, ``add_arguments(parser)`` and ``run(options) -> int``.
"""
