"""Import every built-in signal module so each registers itself, in run order."""

# Order matters: a signal's requirements must be registered before it. quality runs
# before faces: faces adds ~15 kB of landmarks per sample, which makes every later
# single-field rewrite of a sample slower.
from fercurate.signals import quality  # noqa: F401
from fercurate.signals import faces  # noqa: F401
from fercurate.signals import duplicates  # noqa: F401
from fercurate.signals import label_issues  # noqa: F401
from fercurate.signals import embeddings  # noqa: F401  (after label_issues: may reuse its network)
from fercurate.signals import balance  # noqa: F401  (last: reads the other signals' flags)
