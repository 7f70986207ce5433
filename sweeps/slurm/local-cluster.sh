#!/usr/bin/env bash
# A real single-node SLURM cluster (slurmctld + slurmd + slurmdbd + MariaDB) for tests and development.
#
# Usage: sweeps/slurm/local-cluster.sh check|install|up|down|status|env
#   check    exit 0 if every binary is installed, 1 (naming the missing ones) if not
#   install  apt-get install Slurm, slurmdbd, MariaDB and munge if a binary is missing (needs root)
#   up       start whatever is not running and wait until the node is idle and sacct answers
#   down     stop every daemon by the pid in its pid file (SIGTERM, then SIGKILL), newest first
#   status   each daemon's pid and liveness, then sinfo; exit 0 if all are up, 3 if not
#   env      print `export SLURM_CONF=...` for clients: eval "$(sweeps/slurm/local-cluster.sh env)"
#
# Everything (configs, spool, state, logs, pid files, the MariaDB datadir and socket) lives under
# ${OPTBENCH_SLURM_DIR:-/tmp/optbench-slurm}; nothing is written to /etc. Daemons listen on 127.0.0.1
# only (ports 6817-6819; MariaDB on a unix socket). Auth is auth/none, so munge is not needed.
set -euo pipefail

STATE_DIR=${OPTBENCH_SLURM_DIR:-/tmp/optbench-slurm}
CLUSTER_NAME=optbench
WAIT_S=${OPTBENCH_SLURM_WAIT_S:-60}
STOP_WAIT_S=10
# Start order; `down` walks it backwards so nothing loses the daemon it reports to mid-shutdown.
DAEMONS=(mariadbd slurmdbd slurmctld slurmd)
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
BINARIES=(sbatch sinfo sacct sacctmgr scontrol slurmctld slurmd slurmdbd mariadbd mariadb-install-db mariadb)

CONF=$STATE_DIR/slurm.conf
DBD_CONF=$STATE_DIR/slurmdbd.conf
RUN=$STATE_DIR/run
LOG=$STATE_DIR/log
DB_DATA=$STATE_DIR/mysql
DB_SOCKET=$RUN/mysqld.sock
DB_USER=slurm
DB_PASS=optbench-local

usage() {
    sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "local-cluster: $*" >&2
    exit 1
}

pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$LOG/$1.log"; }

# The pid in a daemon's pid file if that process is alive and is that daemon (a stale file's pid may
# have been reused by something else, which must never be signalled); empty otherwise.
live_pid() {
    local name=$1 file pid comm
    file=$(pidfile "$name")
    [[ -s $file ]] || return 0
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 0
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    [[ $comm == "$name" ]] && echo "$pid"
    return 0
}

all_up() {
    local name
    for name in "${DAEMONS[@]}"; do
        [[ -n $(live_pid "$name") ]] || return 1
    done
}

# Clients and daemons read this config; exported so every command below talks to this cluster only.
export SLURM_CONF=$CONF

missing_binaries() {
    local bin
    for bin in "${BINARIES[@]}"; do
        command -v "$bin" >/dev/null 2>&1 || [[ -x /usr/sbin/$bin ]] || echo "$bin"
    done
}

cmd_check() {
    local missing
    missing=$(missing_binaries | tr '\n' ' ')
    [[ -z $missing ]] && return 0
    echo "local-cluster: missing ${missing% }" >&2
    return 1
}

cmd_install() {
    local missing=()
    mapfile -t missing < <(missing_binaries)
    if ((${#missing[@]} == 0)); then
        echo "local-cluster: SLURM and MariaDB are installed"
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; run install as root"
    echo "local-cluster: missing ${missing[*]}; installing ${PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
}

# Daemons are found in /usr/sbin, which a non-login PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

write_configs() {
    local mem_mib cpus tmp
    cpus=$(nproc)
    # Leave ~2 GiB for the OS and the daemons: slurmd drains a node whose RealMemory exceeds what it sees.
    mem_mib=$(awk '/^MemTotal:/ {m = int($2 / 1024) - 2048; print (m < 1024 ? 1024 : m)}' /proc/meminfo)
    mkdir -p "$RUN" "$LOG" "$STATE_DIR/spool/ctld" "$STATE_DIR/spool/d"
    tmp=$(mktemp "$STATE_DIR/.slurm.conf.XXXXXX")
    cat >"$tmp" <<EOF
# Written by sweeps/slurm/local-cluster.sh; rewritten on every \`up\`.
ClusterName=$CLUSTER_NAME
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
# A requeued job waits cred_expire + 1 s before it may start again (default 120 s); tests requeue.
AuthInfo=cred_expire=5
# Bind to what localhost / the node address resolve to (127.0.0.1), not to every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/spool/ctld
SlurmdSpoolDir=$STATE_DIR/spool/d
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$(logfile slurmctld)
SlurmdLogFile=$(logfile slurmd)
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# Jobs here use no MPI. (Slurm still probes its PMIx plugins and logs that Debian lacks the library.)
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default memory per CPU one job takes the whole node.
DefMemPerCPU=2000
# Tests requeue jobs (scontrol requeue) and expect a requeued job to run again.
JobRequeue=1
ReturnToService=2
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=300
SchedulerType=sched/backfill
# Schedule at once on submit and completion (not batched for up to 3 s), and re-scan every second:
# a requeued job only becomes eligible when its begin time passes, which no event announces.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1,default_queue_depth=100
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$tmp" "$CONF"
    chmod 644 "$CONF"

    # slurmdbd refuses a config that others can read (it holds the database password).
    tmp=$(mktemp "$STATE_DIR/.slurmdbd.conf.XXXXXX")
    chmod 600 "$tmp"
    cat >"$tmp" <<EOF
# Written by sweeps/slurm/local-cluster.sh; rewritten on every \`up\`.
AuthType=auth/none
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
# Undocumented for slurmdbd.conf but honoured: bind to 127.0.0.1 (DbdAddr), not every interface.
CommunicationParameters=NoInAddrAny
SlurmUser=root
PidFile=$(pidfile slurmdbd)
LogFile=$(logfile slurmdbd)
DebugLevel=info
StorageType=accounting_storage/mysql
# "localhost" makes the client library use the unix socket named by MYSQL_UNIX_PORT (set at start):
# slurmdbd.conf has no socket option, and MariaDB here listens on no TCP port.
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=$DB_USER
StoragePass=$DB_PASS
EOF
    mv "$tmp" "$DBD_CONF"
}

# Poll `check` (a shell command) until it succeeds or WAIT_S passes; on timeout show the log and fail.
# With a daemon name, also fail as soon as that daemon is gone (after a grace period to write its pid
# file), instead of waiting out WAIT_S for a daemon that died at start.
wait_for() {
    local what=$1 log=$2 check=$3 daemon=${4:-} start=$SECONDS
    until eval "$check" >/dev/null 2>&1; do
        if [[ -n $daemon ]] && ((SECONDS - start >= 5)) && [[ -z $(live_pid "$daemon") ]]; then
            echo "local-cluster: $daemon exited before $what was ready; last lines of $log:" >&2
            tail -n 30 "$log" >&2 2>/dev/null || true
            exit 1
        fi
        if ((SECONDS - start >= WAIT_S)); then
            echo "local-cluster: $what not ready after ${WAIT_S}s; last lines of $log:" >&2
            tail -n 30 "$log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.2
    done
}

# Another cluster (another OPTBENCH_SLURM_DIR) on our ports would answer our clients' health checks
# and make a half-started cluster look up; refuse instead.
require_port_free() {
    local name=$1 port=$2
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port (for $name) is taken by a process not in $RUN; is another cluster up?"
    fi
}

start_failed() {
    echo "local-cluster: $1 did not start; last lines of $(logfile "$1"):" >&2
    tail -n 30 "$(logfile "$1")" >&2 2>/dev/null || true
    exit 1
}

db() { mariadb --socket="$DB_SOCKET" --user=root "$@"; }

start_mariadbd() {
    local log
    log=$(logfile mariadbd)
    if [[ ! -d $DB_DATA/mysql ]]; then
        mkdir -p "$DB_DATA"
        # auth via the unix socket for root: only this machine's root can administer it.
        mariadb-install-db --user="$(id -un)" --datadir="$DB_DATA" --skip-test-db \
            --auth-root-authentication-method=socket >"$LOG/mariadb-install-db.log" 2>&1 ||
            { tail -n 30 "$LOG/mariadb-install-db.log" >&2; die "mariadb-install-db failed"; }
    fi
    # --no-defaults: the system my.cnf points at /run/mysqld and /var/lib/mysql. No TCP at all.
    # setsid and closed stdio: the server must outlive the caller and not hold its pipes open.
    setsid mariadbd --no-defaults --user="$(id -un)" --datadir="$DB_DATA" --skip-networking \
        --socket="$DB_SOCKET" --pid-file="$(pidfile mariadbd)" --log-error="$log" \
        --innodb-buffer-pool-size=64M --skip-log-bin </dev/null >>"$log" 2>&1 &
    wait_for "MariaDB" "$log" "db -e 'SELECT 1'" mariadbd
    db <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'localhost';
EOF
}

start_slurmdbd() {
    # slurmdbd has no -f: it reads slurmdbd.conf from the directory of $SLURM_CONF.
    MYSQL_UNIX_PORT=$DB_SOCKET slurmdbd </dev/null >>"$(logfile slurmdbd)" 2>&1 ||
        start_failed slurmdbd
    wait_for "slurmdbd" "$(logfile slurmdbd)" "sacctmgr -n list cluster" slurmdbd
    # slurmctld only sends job records for a cluster that accounting knows.
    if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER_NAME" format=cluster 2>/dev/null) ]]; then
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
    fi
}

start_slurmctld() {
    slurmctld -f "$CONF" </dev/null >>"$(logfile slurmctld)" 2>&1 || start_failed slurmctld
    wait_for "slurmctld" "$(logfile slurmctld)" "scontrol ping | grep -q UP" slurmctld
}

start_slurmd() {
    # The machine's hostname is not "localhost", so name the node explicitly.
    slurmd -f "$CONF" -N localhost </dev/null >>"$(logfile slurmd)" 2>&1 || start_failed slurmd
}

node_idle() {
    sinfo -h -n localhost -o %T | grep -qE '^(idle|mixed|allocated)'
}

cmd_up() {
    local name t0=$SECONDS
    if all_up; then
        echo "local-cluster: already up ($STATE_DIR)"
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "up needs root (SlurmUser=root; slurmd runs jobs as their user)"
    for bin in "${BINARIES[@]}"; do
        command -v "$bin" >/dev/null || die "$bin not found; run: $0 install"
    done
    # Check every port first, so a conflict starts nothing.
    [[ -n $(live_pid slurmdbd) ]] || require_port_free slurmdbd 6819
    [[ -n $(live_pid slurmctld) ]] || require_port_free slurmctld 6817
    [[ -n $(live_pid slurmd) ]] || require_port_free slurmd 6818
    write_configs
    for name in "${DAEMONS[@]}"; do
        [[ -n $(live_pid "$name") ]] && continue
        rm -f "$(pidfile "$name")"
        "start_$name"
    done
    wait_for "node localhost (idle in sinfo)" "$(logfile slurmd)" node_idle slurmd
    wait_for "sacct" "$(logfile slurmdbd)" "sacct -n -X -S now-1minutes" slurmdbd
    for name in "${DAEMONS[@]}"; do
        [[ -n $(live_pid "$name") ]] || start_failed "$name"
    done
    echo "local-cluster: up in $((SECONDS - t0))s ($STATE_DIR)"
}

# SIGTERM, wait up to STOP_WAIT_S, then SIGKILL; only ever the pid from the daemon's own pid file.
stop_daemon() {
    local name=$1 pid deadline
    pid=$(live_pid "$name")
    if [[ -z $pid ]]; then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_WAIT_S))
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if [[ -e /proc/$pid ]]; then
        echo "local-cluster: $name ($pid) ignored SIGTERM for ${STOP_WAIT_S}s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$name")"
    echo "local-cluster: stopped $name ($pid)"
}

# Jobs run under slurmstepd, which outlives slurmd: cancel every job (of every user: the cluster is
# going away) so `down` leaves no job processes behind.
cancel_jobs() {
    local ids deadline=$((SECONDS + 15))
    [[ -n $(live_pid slurmctld) ]] || return 0
    ids=$(squeue -h -t PENDING,RUNNING,SUSPENDED,REQUEUED -o %i 2>/dev/null || true)
    [[ -n $ids ]] || return 0
    # shellcheck disable=SC2086 # one job id per word
    scancel $ids 2>/dev/null || true
    while [[ -n $(squeue -h -t PENDING,RUNNING,COMPLETING -o %i 2>/dev/null) ]] && ((SECONDS < deadline)); do
        sleep 0.2
    done
}

cmd_down() {
    local i
    [[ -d $RUN ]] || return 0
    cancel_jobs
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop_daemon "${DAEMONS[i]}"
    done
}

cmd_status() {
    local name pid rc=0
    for name in "${DAEMONS[@]}"; do
        pid=$(live_pid "$name")
        if [[ -n $pid ]]; then
            printf '%-10s pid %-8s up\n' "$name" "$pid"
        else
            printf '%-10s %-12s down\n' "$name" ""
            rc=3
        fi
    done
    if [[ -n $(live_pid slurmctld) ]]; then
        sinfo || rc=3
    fi
    return "$rc"
}

cmd_env() {
    echo "export SLURM_CONF=$CONF"
}

(($# == 1)) || usage
case $1 in
check) cmd_check ;;
install) cmd_install ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
-h | --help | help) sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//' ;;
*) usage ;;
esac
