"""mkdocs hooks for `make docs`.

The docstrings use Sphinx roles (``:class:`Catalog```, ``:meth:`publish```) because
they are read in editors and by ``help()`` too; in the generated pages the role name is
noise, so it is dropped and the code name kept.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):(?=<code)")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Remove Sphinx role prefixes left in front of inline code."""
    return _ROLE.sub("", html)
