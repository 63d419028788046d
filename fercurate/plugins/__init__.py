"""FiftyOne plugins shipped with fercurate: this folder is a ``FIFTYONE_PLUGINS_DIR``.

FiftyOne finds a plugin by the ``fiftyone.yml`` beneath the folder it is pointed at, so
the review plugin lives inside the package and every install (a wheel, ``pip install .``
or an editable checkout) carries it; ``fercurate plugin-path`` prints the folder.
"""
