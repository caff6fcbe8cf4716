"""The development stack: embedded PostgreSQL and MQTT broker, the demo seed and the demo inbox.
Imported only by `eldercare up`, the tests and the benchmarks.
"""
