"""The softphone page's files: plain HTML, CSS and JavaScript modules, no build step, no CDN.

``static/`` is served under ``/phone/static/`` and packaged with the wheel (pyproject
package-data). ``index.html`` is the page at ``/phone``.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The page's scripts, styles and the page itself."""


def page_html() -> str:
    """The page served at ``/phone``.

    Raises:
        FileNotFoundError: the package was installed without its static files.
    """
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")
