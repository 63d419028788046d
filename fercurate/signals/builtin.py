"""Import every built-in signal module so each registers itself, and fix their run order.

The run order is ``ORDER``, not the order in which modules happen to be imported (another
module importing ``balance`` first must not make it run first). It matters: a signal runs
after the signals it requires; quality runs before faces (faces adds ~15 kB of landmarks
per sample, which makes every later single-field rewrite of a sample slower); embeddings
after label_issues (it may reuse its network); balance last (it reads the other signals'
flags).
"""

ORDER: tuple[str, ...] = ("quality", "faces", "usability", "duplicates", "label_issues", "embeddings", "balance")

from fercurate.signals import quality  # noqa: F401
from fercurate.signals import faces  # noqa: F401
from fercurate.signals import usability  # noqa: F401
from fercurate.signals import duplicates  # noqa: F401
from fercurate.signals import label_issues  # noqa: F401
from fercurate.signals import embeddings  # noqa: F401
from fercurate.signals import balance  # noqa: F401
