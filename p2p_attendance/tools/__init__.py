"""Tooling around the product, apart from it (issue 12).

bench.py (`p2p-attendance bench`), selftest.py (`--self-test`), demo.py (the sample faces behind
`p2p-attendance demo`), compose.py (class videos composed from face photos) and hall.py (a composed
lecture hall with its truth). The product never imports this package, except cli.py's bench, demo
and --self-test entry points (tests/test_layers.py checks it); tools may import anything but gui/.
"""
