"""Import every built-in signal module so each registers itself, in run order."""

# Order matters: a signal's requirements must be imported (registered) before it.
