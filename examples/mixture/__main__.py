from examples.mixture.main import run

run()
