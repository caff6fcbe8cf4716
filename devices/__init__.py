"""The device protocol: catalogue, topic scheme and payload decoding (pure data and
functions, no I/O), and the MQTT client every stage and the simulators speak it with
(`devices.mqtt`: URL rules, TLS, reconnect backoff, the acknowledged publisher)."""
