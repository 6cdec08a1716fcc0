"""JVM options for the short-lived Spark processes the tests start (job subprocesses, a cluster)."""

# Several short-lived JVMs share a small machine: the quick C1 compiler and the serial collector
# cut the CPU they burn warming up (the tests check wiring and results, not JIT throughput).
SHORT_LIVED_JVM_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
