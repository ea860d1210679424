"""The HTML report of a run: ``write_report(workspace)`` writes a self-contained ``report.html``."""

from medalist.report.page import REPORT_FILE, write_report

__all__ = ["REPORT_FILE", "write_report"]
