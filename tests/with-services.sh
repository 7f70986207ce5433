#!/usr/bin/env bash
# Runs a command (the test suite) with what the tests need beyond Python, provisioned when it can be.
#
# Usage: tests/with-services.sh COMMAND [ARG...]      (make test runs: tests/with-services.sh pytest)
#
#   Chromium + ChromeDriver   the report page tests (tests/reports/test_report_html.py, test_browser.py)
#                             open pages in Debian's headless chromium through /usr/bin/chromedriver
#   SLURM + MariaDB           the sweep tests submit real jobs to a single-node cluster
#                             (sweeps/slurm/local-cluster.sh), started before COMMAND and stopped
#                             after it by pid, also when COMMAND fails or is interrupted
#
# As root with apt-get, whatever is missing is installed (Debian packages) and the cluster is
# started. Otherwise one line per missing piece names the command that provides it, and COMMAND
# runs without it: those tests then skip (and under CI=true a skip fails the run).
# OPTBENCH_PROVISION=0 provisions nothing (and starts no cluster).
set -uo pipefail
cd "$(dirname "$0")/.."
CLUSTER=sweeps/slurm/local-cluster.sh
(($# > 0)) || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

note() { echo "make test: $*" >&2; }
is_root() { [[ $(id -u) == 0 ]]; }
can_install() { is_root && command -v apt-get >/dev/null 2>&1 && [[ ${OPTBENCH_PROVISION:-1} != 0 ]]; }
have_browser() { [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; }
have_slurm() { "$CLUSTER" check >/dev/null 2>&1; }

if ! have_browser; then
    if can_install; then
        note "installing chromium and chromium-driver for the report page tests"
        if ! log=$({ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends chromium chromium-driver; } 2>&1); then
            echo "$log" | tail -n 20 >&2
            note "installing chromium failed; the report page tests will skip"
        fi
    else
        note "no headless Chromium: the report page tests skip (as root: apt-get install chromium chromium-driver)"
    fi
fi

if ! have_slurm; then
    if can_install; then
        note "installing SLURM and MariaDB for the SLURM sweep tests ($CLUSTER install)"
        if ! log=$("$CLUSTER" install 2>&1); then
            echo "$log" | tail -n 20 >&2
            note "installing SLURM failed; the SLURM tests will skip"
        fi
    else
        note "no SLURM: the SLURM sweep tests skip (as root: $CLUSTER install)"
    fi
fi

started_cluster=0
stop_cluster() {
    if ((started_cluster)); then
        "$CLUSTER" down >/dev/null || note "stopping the local SLURM cluster failed ($CLUSTER status)"
        started_cluster=0
    fi
}
if have_slurm && [[ ${OPTBENCH_PROVISION:-1} != 0 ]]; then
    if "$CLUSTER" status >/dev/null 2>&1; then
        note "using the local SLURM cluster already up (left running)"
    elif ! is_root; then
        note "the local SLURM cluster needs root to start: the SLURM tests skip (as root: $CLUSTER up)"
    else
        trap stop_cluster EXIT
        trap 'stop_cluster; exit 130' INT
        trap 'stop_cluster; exit 143' TERM
        started_cluster=1
        "$CLUSTER" up >&2 || { note "the local SLURM cluster did not start"; stop_cluster; }
    fi
fi
if have_slurm; then
    eval "$("$CLUSTER" env)"
fi

"$@"
status=$?
stop_cluster
exit "$status"
