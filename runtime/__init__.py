"""The composition root and process lifecycle: one `Settings` from the environment, every stage
built from it and run as named tasks, the shutdown guard.
"""
