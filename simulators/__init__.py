"""Simulated devices and homes that publish over real MQTT (for the demo, CI and load)."""
