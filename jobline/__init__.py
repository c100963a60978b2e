"""The composition root: the CLI, the embedded runner and the Unsplash stand-in.

Nothing in the project imports this package; it imports everything.
"""
