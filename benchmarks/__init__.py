"""``make bench``: dlfs measured against its peers, as ratios within one run.

Benchmarks are not timed tests: nothing here fails a build. Every figure is printed
beside the same workload on baselines measured in the same run (a plain directory,
``bindfs`` of it, a minimal pyfuse3 + trio passthrough of it, ``cp -r``), because on
a shared, noisy VM only ratios within one run mean anything.

Modules, one concern each:

- :mod:`benchmarks.config`: sizes, counts and repetitions, from env vars or ``--quick``;
- :mod:`benchmarks.system`: page-cache dropping, the machine, mounting helpers;
- :mod:`benchmarks.dataset`: generated source trees, cached under the bench-data dir;
- :mod:`benchmarks.passthrough`: the Python peer, a read-only pyfuse3 passthrough;
- :mod:`benchmarks.targets`: what is read: plain, bindfs, passthrough, dlfs;
- :mod:`benchmarks.workloads`: what reading means: small files, large files, walks...;
- :mod:`benchmarks.reads`: the read suite, cold and warm, every target side by side;
- :mod:`benchmarks.foundation`: publish cost and ``dlfs add`` against ``cp -r``;
- :mod:`benchmarks.report`: medians, ratios, PASS/FAIL, tables and JSON.

Run ``python -m benchmarks --help``.
"""
