"""What every keel HTML report shares: the style sheet and plots embedded as PNG.

Reports are single files (inline CSS, images as data URLs), so they can be mailed,
attached to a ticket or opened from an artifact store without a server.
"""

from __future__ import annotations

import base64
import io
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2430;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:.3rem .5rem;border-bottom:1px solid #eef1f4;
text-align:left;vertical-align:top}th{background:#f6f8fa}.block{color:#fff;background:#c62828}.warn{background:#ffe08a}
.info{background:#e3eaf2}.sev{padding:.1rem .45rem;border-radius:.3rem;font-size:12px;font-weight:600}
.muted{color:#5b6573}img{max-width:100%}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
code{background:#f6f8fa;padding:0 .25rem;border-radius:.2rem}
"""

DPI = 80


def embed_png(png: bytes | None) -> str:
    if png is None:
        return ""
    return f"<img alt='plot' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def figure_png(fig: Any, tight: bool = True) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt
