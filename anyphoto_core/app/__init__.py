"""The standalone AnyPhoto application: pipeline, ``anyphoto`` CLI, previews and model loaders.

Built on the method in :mod:`anyphoto_core`; the method never imports this package.
"""
