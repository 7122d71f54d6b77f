from examples.naive_bayes.main import run

run()
