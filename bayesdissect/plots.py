"""The report's figures, each a function returning a matplotlib ``Figure`` (the public
path ``bayesdissect.plots``; they are defined in ``bayesdissect.report.figures``)."""

from bayesdissect.report.figures import *  # noqa: F403
