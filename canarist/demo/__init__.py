"""The demo: a real progressive delivery on one machine (`canarist demo`, `make demo`).

run.py orchestrates; scenario.py says what is released; view.py shows it; stack.py starts the
servers (also for the tests); service.py is the demo HTTP service and load.py its load.
"""
