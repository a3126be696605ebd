# The shared fixtures (measure, bench_size, bench_device) live in bench/conftest.py.
