"""Pictures a person gives the models: ``files`` decodes untrusted PNG and JPEG bytes (bounded,
checked before Pillow sees them), ``imageops`` holds the array operations, and ``preprocess``
turns any picture into one 28x28 MNIST-style input. ``cvae_core.numbers`` cuts a written number
into digits with the same pieces.
"""
