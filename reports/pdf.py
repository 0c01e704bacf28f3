"""The report as a PDF, printed server-side by headless Chromium from the same page.

The page is rendered self-contained (styles and the chart library inline, no network, no
cookies), written to a private temporary directory and printed with Chromium's
--print-to-pdf; the print stylesheet lays it out for A4/Letter. Without a Chromium binary
(HIVE_CHROMIUM_PATH, else `chromium` on PATH) the PDF is refused with a clear message and
the page can still be printed from the browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PDF_TIMEOUT_S = 90
# Time Chromium lets the page's scripts run (the charts) before printing.
VIRTUAL_TIME_BUDGET_MS = 5000


class PdfUnavailable(Exception):
    """Why no PDF could be produced; shown to the operator as it is."""


def chromium_path() -> str:
    configured = os.environ.get("HIVE_CHROMIUM_PATH") or os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).is_file() else ""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome") or ""


def html_to_pdf(html: str) -> bytes:
    binary = chromium_path()
    if not binary:
        raise PdfUnavailable(
            "No Chromium found for server-side PDFs (set HIVE_CHROMIUM_PATH); print the page from the browser instead."
        )
    with tempfile.TemporaryDirectory(prefix="hive-report-") as folder:
        page = Path(folder) / "report.html"
        out = Path(folder) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        argv = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={Path(folder) / 'profile'}",
            "--no-pdf-header-footer",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            f"--print-to-pdf={out}",
            page.as_uri(),
        ]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=PDF_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PdfUnavailable(f"Chromium did not finish the PDF within {PDF_TIMEOUT_S} s") from exc
        except OSError as exc:
            raise PdfUnavailable(f"Chromium could not start: {exc.strerror or exc}") from exc
        if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            detail = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise PdfUnavailable(f"Chromium failed to print the report (exit {proc.returncode}): {detail[0][:200]}")
        return out.read_bytes()
