from examples.factorized_categorical.main import run

run()
