from examples.vae.main import run

run()
