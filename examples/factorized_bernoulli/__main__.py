from examples.factorized_bernoulli.main import run

run()
