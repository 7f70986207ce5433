"""Reports: AlgoPerf scoring, leaderboards, report statistics and the AlgoPerf log importer.

Everything here reads the results store only (pandas, pyarrow, numpy; matplotlib for figures), so a
report builds on a laptop from results copied off a cluster: nothing here imports torch or jax.
"""

from reports.algoperf_import import (
    ALGOPERF_LAYOUT,
    ImportSummary,
    algoperf_hardware_class,
    import_algoperf,
)
from reports.algoperf_targets import (
    AlgoPerfTarget,
    AlgoPerfTargets,
    base_workload,
    find_targets_file,
    is_minimized,
    load_held_out,
    load_targets,
)
from reports.held_out import (
    HELD_OUT_FACTOR,
    apply_held_out_rule,
    held_out_variants,
    workload_variants,
)
from reports.leaderboard import leaderboard_table, render_html, render_markdown
from reports.scoring import (
    benchmark_scores,
    integrate_profiles,
    performance_profiles,
    select_trials,
    selected_trials,
    time_ratios,
    workload_times,
)
from reports.stats import (
    PowerLaw,
    data_equivalence,
    fit_power_law,
    gated_workload_times,
    reference_speedups,
    seed_gate,
)

__all__ = [
    "ALGOPERF_LAYOUT",
    "HELD_OUT_FACTOR",
    "AlgoPerfTarget",
    "AlgoPerfTargets",
    "ImportSummary",
    "PowerLaw",
    "algoperf_hardware_class",
    "apply_held_out_rule",
    "base_workload",
    "benchmark_scores",
    "data_equivalence",
    "find_targets_file",
    "fit_power_law",
    "gated_workload_times",
    "held_out_variants",
    "import_algoperf",
    "integrate_profiles",
    "is_minimized",
    "leaderboard_table",
    "load_held_out",
    "load_targets",
    "performance_profiles",
    "reference_speedups",
    "render_html",
    "render_markdown",
    "seed_gate",
    "select_trials",
    "selected_trials",
    "time_ratios",
    "workload_times",
    "workload_variants",
]
