from examples.pretrained.main import run

run()
