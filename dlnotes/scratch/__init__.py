"""From-scratch NumPy references, each checked against PyTorch or Keras in ``tests/scratch/``.

One module per concept; see the package docstring (``dlnotes``) for the gradient convention.
Nothing in this subpackage imports torch or keras.
"""
