from examples.made.main import run

run()
