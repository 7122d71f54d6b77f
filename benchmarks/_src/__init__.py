"""Private helpers of the benchmark suites."""
