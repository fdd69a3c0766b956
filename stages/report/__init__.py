"""HTML pages to see and hear runs: a run's report, the comparison of runs, the clips of `foley generate`."""

from foley.stages.report.clips_page import write_clips_page
from foley.stages.report.comparison import write_comparison_page
from foley.stages.report.run_page import write_run_report

__all__ = ["write_clips_page", "write_comparison_page", "write_run_report"]
