"""Reports: AlgoPerf scoring, leaderboards and the AlgoPerf log importer.

Everything here reads the results store only (pandas, pyarrow, numpy; matplotlib for figures), so a
report builds on a laptop from results copied off a cluster: nothing here imports torch or jax.
"""

from reports.algoperf_import import (
    ALGOPERF_HARDWARE_CLASS,
    AlgoPerfTarget,
    AlgoPerfTargets,
    base_workload,
    find_targets_file,
    import_algoperf,
    is_minimized,
    load_targets,
)
from reports.leaderboard import leaderboard_table, render_html, render_markdown
from reports.scoring import (
    benchmark_scores,
    integrate_profiles,
    performance_profiles,
    select_trials,
    time_ratios,
    workload_times,
)

__all__ = [
    "ALGOPERF_HARDWARE_CLASS",
    "AlgoPerfTarget",
    "AlgoPerfTargets",
    "base_workload",
    "benchmark_scores",
    "find_targets_file",
    "import_algoperf",
    "integrate_profiles",
    "is_minimized",
    "leaderboard_table",
    "load_targets",
    "performance_profiles",
    "render_html",
    "render_markdown",
    "select_trials",
    "time_ratios",
    "workload_times",
]
