"""MkDocs hook: docstrings and pages written for GitHub's Markdown, shown as they read there.

- The package's docstrings cite objects with Sphinx roles (:func:`read_ras`, :class:`Task`) and
  introduce literal blocks with a trailing "::". mkdocstrings renders docstrings as Markdown,
  where the role name would show before the code span and the paragraph would end in "::".
  The rendered page drops the role names (leaving the code span) and turns that "::" into ":".
- The pages in docs/ nest lists by two spaces, as GitHub reads them; Python-Markdown needs four.
  List items indented by two spaces under a list item are indented by four before rendering.
"""

import re

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const):(?=<code>)")
_LITERAL = re.compile(r"::(</p>\s*<div class=\"highlight\">)")
_ITEM = re.compile(r"^(?:[-*+]|\d+\.) ")
_NESTED = re.compile(r"^  (?=(?:[-*+]|\d+\.) )")


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    if not page.file.src_uri.endswith(".md"):
        return markdown
    out, fenced, in_list = [], False, False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            if _ITEM.match(line):
                in_list = True
            elif in_list and _NESTED.match(line):
                line = "  " + line
            elif line and not line.startswith(" "):
                in_list = False
        out.append(line)
    return "\n".join(out)


def on_page_content(html: str, **kwargs) -> str:
    return _LITERAL.sub(r":\1", _ROLE.sub("", html))
