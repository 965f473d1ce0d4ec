"""Rules that the UI process (app/), the stores (state/) and the trainer (trainer/) must agree
on, written once: data paths, run states, the event wire contract, accelerate launch flags,
platform detection, dataset file rules and the demo dataset.

Contract: torch-free and NiceGUI-free (stdlib, pydantic, platformdirs, Pillow only), and it
imports no other project package, so every layer above may import it.
"""
