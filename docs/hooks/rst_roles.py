"""MkDocs hook: the docstrings' Sphinx roles (:func:`x`, :class:`x`, ...) shown as plain code.

The package's docstrings are prose that cites objects with Sphinx roles; mkdocstrings renders
Markdown, where ``:func:`read_ras``` would show the role name before the code span. This hook
drops the role name from the rendered page, leaving the code span.
"""

import re

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const):(?=<code>)")


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub("", html)
