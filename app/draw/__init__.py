"""The Draw page, one module per job: ``canvas`` (the drawing widget, light: no torch),
``inputs`` (an upload or a drawing turned into the 28x28 model input), ``reading`` (what a model
makes of it, cached), ``answer`` (the recognised digit and the partner's), ``tally`` ("What did
you write?" and the session's score), ``details`` (images and charts), ``save`` (the archive
record and its controls) and ``results`` (the page below the input, in that order).
``app/views/draw.py`` is the page the router lists. Importing this package imports nothing.
"""
