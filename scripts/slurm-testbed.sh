#!/usr/bin/env bash
# slurm-testbed.sh -- a REAL Slurm 22.05 testbed (Debian 12 packages) on this one
# machine, for Accord's integration tests and for developers.  Needs root; does
# not need systemd.  Design note: docs/design/slurm-testbed.md
#
# Usage: scripts/slurm-testbed.sh COMMAND [ARGS]
#   start              install missing Debian packages, write config, start what
#                      is not running, health-check.  Idempotent: daemons whose
#                      config did not change are left alone.
#   stop               cancel all jobs, stop our daemons (by PID file only)
#   purge              stop, then delete all state, logs, DB and generated config
#   status             print what runs; exit 0 only if everything is up
#   stop-ctld CLUSTER  stop only that cluster's slurmctld (fault-tolerance tests)
#   start-ctld CLUSTER start it again and wait until `scontrol ping` says UP
#   env CLUSTER        print `export SLURM_CONF=...` lines for that cluster
#   wait-idle CLUSTER [SECONDS]  wait until no job is pending/running there
#
# What `start` brings up (clients reach all of it on 127.0.0.1):
#   munged                   system socket /run/munge (reused if one answers)
#   mariadbd  :13306         private datadir $BASE/mysql (not the system MariaDB)
#   slurmdbd  :PORT_BASE     one, shared by all clusters (sacct -M CLUSTER works)
#   cluster i (0-based, in ACCORD_SLURM_CLUSTERS order), P = PORT_BASE+10*(i+1):
#     slurmctld :P,  slurmd for node CLUSTER-nK :P+K (K=1..NODES),
#     slurmrestd :P+9 (only with ACCORD_SLURM_RESTD=1)
#   Each node has GPUS_PER_NODE fake typed GPUs (gres gpu:TYPE, device files
#   /dev/accord-CLUSTER-gpuN that are really /dev/null).
#
# Knobs (environment, defaults in brackets):
#   ACCORD_SLURM_BASE           [/var/lib/accord-slurm] state, logs, pids, DB, config
#   ACCORD_SLURM_CLUSTERS       ["isambard jeanzay"]
#   ACCORD_SLURM_NODES          [2]    nodes (slurmd) per cluster, 1..8
#   ACCORD_SLURM_GPUS_PER_NODE  [4]    ACCORD_SLURM_GPU_TYPE [h100]
#   ACCORD_SLURM_CPUS_PER_NODE  [8]    ACCORD_SLURM_MEM_PER_NODE [16000] (MB)
#                                      (advertised, not checked against hardware)
#   ACCORD_SLURM_PARTITION      [gpu]  ACCORD_SLURM_ACCOUNT [accord] (root is a user of it)
#   ACCORD_SLURM_PORT_BASE      [16800] ACCORD_SLURM_DB_PORT [13306]
#   ACCORD_SLURM_MIN_JOB_AGE    [600]  seconds finished jobs stay in squeue/scontrol
#   ACCORD_SLURM_ACCT_FREQ      [2]    JobAcctGatherFrequency (seconds)
#   ACCORD_SLURM_JOBID_STRIDE   [100000] cluster i starts at job id 1+i*STRIDE
#                                      (0: all clusters use the same ids)
#   ACCORD_SLURM_RESTD          [0]    1: also slurmrestd (JWT auth) per cluster
#   ACCORD_SLURM_INSTALL        [1]    0: fail instead of apt-get install
#   ACCORD_SLURM_HEALTHCHECK    [1]    0: skip the test jobs at the end of start
#   ACCORD_SLURM_LINK_ETC       [1]    1: /etc/slurm/slurm.conf -> first cluster's
#                                      config (only if absent or already ours)
#   ACCORD_SLURM_TIMEOUT        [60]   seconds for each wait
# `start` converges to these knobs: daemons of clusters/nodes no longer listed
# are stopped.  The other commands default to the knobs of the last `start`
# (saved in $BASE/knobs), so `status` etc. need no knobs repeated.
set -Eeuo pipefail

BASE=${ACCORD_SLURM_BASE:-/var/lib/accord-slurm}
KNOBS_FILE=$BASE/knobs            # the knobs of the last `start`
# Every command but `start` defaults to the knobs the running testbed was started with.
if [ "${1:-}" != start ] && [ -r "$KNOBS_FILE" ]; then
  while IFS='=' read -r k v; do
    if [[ $k =~ ^ACCORD_SLURM_[A-Z_]+$ ]] && [ -z "${!k+x}" ]; then export "$k=$v"; fi
  done <"$KNOBS_FILE"
fi
read -r -a CLUSTERS <<<"${ACCORD_SLURM_CLUSTERS:-isambard jeanzay}"
NODES=${ACCORD_SLURM_NODES:-2}
GPUS=${ACCORD_SLURM_GPUS_PER_NODE:-4}
GPU_TYPE=${ACCORD_SLURM_GPU_TYPE:-h100}
CPUS=${ACCORD_SLURM_CPUS_PER_NODE:-8}
MEM=${ACCORD_SLURM_MEM_PER_NODE:-16000}
PARTITION=${ACCORD_SLURM_PARTITION:-gpu}
ACCOUNT=${ACCORD_SLURM_ACCOUNT:-accord}
PORT_BASE=${ACCORD_SLURM_PORT_BASE:-16800}
DB_PORT=${ACCORD_SLURM_DB_PORT:-13306}
MIN_JOB_AGE=${ACCORD_SLURM_MIN_JOB_AGE:-600}
ACCT_FREQ=${ACCORD_SLURM_ACCT_FREQ:-2}
JOBID_STRIDE=${ACCORD_SLURM_JOBID_STRIDE:-100000}
RESTD=${ACCORD_SLURM_RESTD:-0}
INSTALL=${ACCORD_SLURM_INSTALL:-1}
HEALTHCHECK=${ACCORD_SLURM_HEALTHCHECK:-1}
LINK_ETC=${ACCORD_SLURM_LINK_ETC:-1}
TIMEOUT=${ACCORD_SLURM_TIMEOUT:-60}

DBD_PORT=$PORT_BASE
DB_PASS=accord-testbed            # loopback-only throwaway database
ETC=$BASE/etc                     # generated config: $ETC/<cluster>/, $ETC/slurmdbd/
PIDS=$BASE/pids                   # <daemon>.pid (written by start-stop-daemon) + .stamp
LOG=$BASE/log
RUN=$BASE/run                     # pid files the daemons write themselves, DB socket
JOBS=$BASE/jobs                   # world-writable scratch for job dirs (sticky)
DB_DIR=$BASE/mysql
DB_SOCK=$RUN/mysql/mysqld.sock
JWT_KEY=$BASE/jwt_hs256.key
MANIFEST=$BASE/manifest           # things created outside $BASE, removed by purge
LOCK=/run/lock/accord-slurm-testbed.lock

STOPPED_PIDS=""
unset SLURM_CONF                  # never talk to whatever the caller pointed at

T0=$(date +%s.%N)
dt()    { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", a-b}'; }   # dt LATER EARLIER
since() { dt "$(date +%s.%N)" "${1:-$T0}"; }
log()   { echo "[slurm-testbed $(since)s] $*" >&2; }
warn()  { log "WARNING: $*"; }
tail_logs() {
  local f; for f in "$@"; do
    [ -s "$f" ] && { echo "---- last lines of $f" >&2; tail -n 30 "$f" >&2; }
  done; return 0
}
# die MESSAGE [LOGFILE...]: print the logs' tails, then fail
die() { local m=$1; shift; tail_logs "$@"; log "ERROR: $m"; exit 1; }
trap 'rc=$?; echo "[slurm-testbed] FAILED (exit $rc) at line $LINENO: $BASH_COMMAND" >&2' ERR

# wait_for SECONDS WHAT CMD...: poll CMD every 0.5 s.  With WATCH="daemon names"
# set, give up at once when one of those daemons has exited.
wait_for() {
  local t=$1 what=$2 d; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then log "timeout (${t}s) waiting for $what"; return 1; fi
    for d in ${WATCH:-}; do alive "$d" || { log "$d exited while waiting for $what"; return 1; }; done
    sleep 0.5
  done
}

# ------------------------------------------------------------------ layout
cluster_index() {   # cluster_index NAME -> 0-based position, or fail
  local i; for i in "${!CLUSTERS[@]}"; do [ "${CLUSTERS[$i]}" = "$1" ] && { echo "$i"; return 0; }; done
  return 1
}
need_cluster() {
  [ -n "${1:-}" ] || die "missing CLUSTER argument (one of: ${CLUSTERS[*]})"
  cluster_index "$1" >/dev/null || die "unknown cluster '$1' (ACCORD_SLURM_CLUSTERS: ${CLUSTERS[*]})"
}
conf_of()    { echo "$ETC/$1/slurm.conf"; }
ctld_port()  { echo $(( PORT_BASE + 10 * ($(cluster_index "$1") + 1) )); }
slurmd_port(){ echo $(( $(ctld_port "$1") + $2 )); }
restd_port() { echo $(( $(ctld_port "$1") + 9 )); }
node_name()  { echo "$1-n$2"; }
node_list()  { if [ "$NODES" -eq 1 ]; then echo "$1-n1"; else echo "$1-n[1-$NODES]"; fi; }
gpu_dev()    { echo "/dev/accord-$1-gpu$2"; }
as_cluster() { local c=$1; shift; SLURM_CONF=$(conf_of "$c") "$@"; }   # as_cluster C CMD...

validate_knobs() {
  [ "${#CLUSTERS[@]}" -ge 1 ] || die "ACCORD_SLURM_CLUSTERS is empty"
  local c n
  for c in "${CLUSTERS[@]}"; do
    [[ $c =~ ^[a-z][a-z0-9_]{0,30}$ ]] || die "bad cluster name '$c' (lowercase letters, digits, _)"
  done
  for n in NODES GPUS CPUS MEM PORT_BASE DB_PORT MIN_JOB_AGE ACCT_FREQ JOBID_STRIDE TIMEOUT; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "knob $n must be a number, got '${!n}'"
  done
  [ "$NODES" -ge 1 ] && [ "$NODES" -le 8 ] || die "ACCORD_SLURM_NODES must be 1..8"
  [ "$GPUS" -ge 1 ] || die "ACCORD_SLURM_GPUS_PER_NODE must be >= 1"
}

# ------------------------------------------------------------------ daemons
# Every daemon runs in the foreground under start-stop-daemon --background with a
# PID file $PIDS/NAME.pid; liveness = that PID is alive AND runs the right binary.
exe_of() {
  case $1 in
    slurmctld-*) echo /usr/sbin/slurmctld ;;  slurmd-*)   echo /usr/sbin/slurmd ;;
    slurmrestd-*) echo /usr/sbin/slurmrestd ;; slurmdbd)  echo /usr/sbin/slurmdbd ;;
    mariadb)     echo /usr/sbin/mariadbd ;;   munged)     echo /usr/sbin/munged ;;
    *) return 1 ;;
  esac
}
is_up() {   # is_up NAME
  [ -f "$PIDS/$1.pid" ] && start-stop-daemon --status --pidfile "$PIDS/$1.pid" --exec "$(exe_of "$1")"
}
alive() {   # alive NAME: its PID exists and is not a zombie (no exe check: right
            # after start-stop-daemon forks, the PID does not run the daemon yet)
  local pid; pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
  [ -r "/proc/$pid/stat" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}
pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || echo -; }

stop_d() {  # stop_d NAME: TERM, after 20 s KILL; only the PID in our PID file
  local n=$1
  [ -f "$PIDS/$n.pid" ] || return 0
  if is_up "$n"; then
    log "stopping $n (pid $(pid_of "$n"))"
    STOPPED_PIDS+=" $(pid_of "$n")"
    start-stop-daemon --stop --quiet --pidfile "$PIDS/$n.pid" --exec "$(exe_of "$n")" \
      --retry TERM/20/KILL/5 || warn "$n did not stop cleanly"
  fi
  rm -f "$PIDS/$n.pid" "$PIDS/$n.stamp"
}

# start_d NAME USER STAMP CMD ARGS...: start unless our instance runs with the same STAMP
start_d() {
  local n=$1 user=$2 stamp=$3; shift 3
  if is_up "$n"; then
    if [ "$(cat "$PIDS/$n.stamp" 2>/dev/null)" = "$stamp" ]; then
      log "$n already running (pid $(pid_of "$n")), config unchanged"; return 0
    fi
    log "$n: config changed, restarting"; stop_d "$n"
  fi
  local port; port=$(port_of "$n")
  if [ -n "$port" ] && [ -n "$(ss -Hltn "sport = :$port")" ]; then
    ss -Hltnp "sport = :$port" >&2 || true
    die "cannot start $n: port $port is already in use by another program (see ACCORD_SLURM_PORT_BASE / ACCORD_SLURM_DB_PORT)"
  fi
  local chuid=(); [ "$user" = root ] || chuid=(--chuid "$user")
  start-stop-daemon --start --background --make-pidfile --pidfile "$PIDS/$n.pid" \
    "${chuid[@]}" --output "$LOG/$n.out" --exec "$1" -- "${@:2}"
  echo "$stamp" >"$PIDS/$n.stamp"
  log "$n started (pid $(pid_of "$n"))"
}
port_of() {   # the TCP port a daemon listens on ("" for munged)
  case $1 in
    mariadb) echo "$DB_PORT" ;;  slurmdbd) echo "$DBD_PORT" ;;
    slurmctld-*) ctld_port "${1#slurmctld-}" ;;
    slurmrestd-*) restd_port "${1#slurmrestd-}" ;;
    slurmd-*) local cn=${1#slurmd-}; slurmd_port "${cn%-n*}" "${cn##*-n}" ;;
  esac
}
stamp_of() { cat "$@" | md5sum | cut -c1-32; }   # stamp_of FILE... (config fingerprint)

# ------------------------------------------------------------------ install
packages() {
  local p=(munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins slurmdbd
           slurm-wlm-mysql-plugin mariadb-server mariadb-client)
  [ "$RESTD" = 1 ] && p+=(slurmrestd slurm-wlm-jwt-plugin curl)
  echo "${p[@]}"
}
install_packages() {
  local p missing=()
  for p in $(packages); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then log "packages: all installed"; return 0; fi
  [ "$INSTALL" = 1 ] || die "missing Debian packages (ACCORD_SLURM_INSTALL=0): ${missing[*]}"
  log "installing: ${missing[*]}"
  # Package scripts must not start services: we start only our own daemons.
  local policy=0 apt_log=/tmp/slurm-testbed-apt.$$.log
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1
  fi
  local rc=0
  { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
      --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 || rc=$?
  [ "$policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get failed (rc=$rc)" "$apt_log"
  rm -f "$apt_log"
}

# ------------------------------------------------------------------ configuration
manifest_add() { touch "$MANIFEST"; grep -qxF "$1" "$MANIFEST" || echo "$1" >>"$MANIFEST"; }

write_if_changed() {   # write_if_changed FILE MODE OWNER:GROUP < content
  local f=$1 tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$f" ] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; return 0; fi
  install -D -m "$2" -o "${3%%:*}" -g "${3##*:}" "$tmp" "$f"; rm -f "$tmp"
}

prepare_host() {
  getent passwd slurm >/dev/null ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin slurm
  if [ "$RESTD" = 1 ] && ! getent passwd slurmrestd >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin slurmrestd
  fi
  mkdir -p "$BASE" "$ETC" "$PIDS" "$LOG" "$RUN/mysql" "$JOBS"
  chmod 755 "$BASE" "$ETC" "$RUN" "$LOG"
  chmod 1777 "$JOBS"
  chown slurm:slurm "$LOG" "$RUN"      # slurmctld/slurmdbd write here after dropping root
  chown mysql:mysql "$RUN/mysql"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge; chmod 755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then log "creating munge key"; mungekey --create --keyfile=/etc/munge/munge.key; fi
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  if [ "$RESTD" = 1 ] && [ ! -s "$JWT_KEY" ]; then dd if=/dev/urandom of="$JWT_KEY" bs=32 count=1 status=none; fi
  [ ! -f "$JWT_KEY" ] || { chown slurm:slurm "$JWT_KEY"; chmod 600 "$JWT_KEY"; }
}

# Fake GPUs: GRES needs a device file per GPU; ours are char devices 1:3 (= /dev/null).
make_gpu_devices() {
  local c i dev
  for c in "${CLUSTERS[@]}"; do
    for i in $(seq 0 $(( NODES * GPUS - 1 ))); do
      dev=$(gpu_dev "$c" "$i")
      [ -c "$dev" ] || mknod -m 666 "$dev" c 1 3
      manifest_add "$dev"
    done
  done
}

write_configs() {
  local auth_lines="" c i k conf
  if [ "$RESTD" = 1 ]; then
    auth_lines="AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY"
  fi
  for c in "${CLUSTERS[@]}"; do
    i=$(cluster_index "$c"); conf=$(conf_of "$c")
    mkdir -p "$BASE/$c/state"; chown slurm:slurm "$BASE/$c/state"
    for k in $(seq 1 "$NODES"); do mkdir -p "$BASE/$c/spool/$(node_name "$c" "$k")"; done
    {
      cat <<EOF
# Generated by scripts/slurm-testbed.sh -- do not edit (rerun start instead).
# Testbed cluster "$c": slurmctld 127.0.0.1:$(ctld_port "$c"), $NODES node(s) x $GPUS fake $GPU_TYPE GPUs.
ClusterName=$c
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(ctld_port "$c")
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
$auth_lines
StateSaveLocation=$BASE/$c/state
SlurmdSpoolDir=$BASE/$c/spool/%n
SlurmctldPidFile=$RUN/slurmctld-$c.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld-$c.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups/systemd here: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
# bind to 127.0.0.1 (NodeAddr / SlurmctldHost address) instead of all interfaces
CommunicationParameters=NoInAddrAny
# Several slurmd on one host; they advertise the node shape written below.
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
GresTypes=gpu
ReturnToService=2
MailProg=/bin/true
FirstJobId=$(( 1 + i * JOBID_STRIDE ))
# finished jobs stay visible to squeue -t all / scontrol show job this long:
MinJobAge=$MIN_JOB_AGE
KillWait=5
OverTimeLimit=0
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=$ACCT_FREQ
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu,gres/gpu:$GPU_TYPE
AccountingStoreFlags=job_comment,job_script
# Slurm enforces Accord's agreements (docs/design/site-enforcement.md): every job needs an
# association, and association limits (GrpTRESMins=gres/gpu=N) hold; "safe" refuses to start
# a job that could not finish inside them.  GrpTRESMins needs the multifactor priority plugin;
# usage never decays nor resets, so a limit is a total, not a rate.
AccountingStorageEnforce=associations,limits,safe
PriorityType=priority/multifactor
PriorityDecayHalfLife=0
PriorityUsageResetPeriod=NONE
JobCompType=jobcomp/none
EOF
      for k in $(seq 1 "$NODES"); do
        echo "NodeName=$(node_name "$c" "$k") NodeAddr=127.0.0.1 Port=$(slurmd_port "$c" "$k")" \
             "CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM" \
             "Gres=gpu:$GPU_TYPE:$GPUS State=UNKNOWN"
      done
      echo "PartitionName=$PARTITION Nodes=$(node_list "$c") Default=YES MaxTime=INFINITE State=UP"
    } | write_if_changed "$conf" 644 root:root
    {
      echo "# Generated by scripts/slurm-testbed.sh: fake GPUs (device files are /dev/null clones)"
      echo "AutoDetect=off"
      for k in $(seq 1 "$NODES"); do
        local first=$(( (k - 1) * GPUS )) last=$(( k * GPUS - 1 ))
        echo "NodeName=$(node_name "$c" "$k") Name=gpu Type=$GPU_TYPE File=/dev/accord-$c-gpu[$first-$last]"
      done
    } | write_if_changed "$ETC/$c/gres.conf" 644 root:root
  done

  # slurmdbd finds slurmdbd.conf next to $SLURM_CONF, so it gets its own directory.
  write_if_changed "$ETC/slurmdbd/slurmdbd.conf" 600 slurm:slurm <<EOF
# Generated by scripts/slurm-testbed.sh
AuthType=auth/munge
$auth_lines
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

  # Plain `sacct`/`squeue` (no SLURM_CONF) talk to the first cluster.
  if [ "$LINK_ETC" = 1 ]; then
    local want; want=$(conf_of "${CLUSTERS[0]}")
    if [ -L /etc/slurm/slurm.conf ] && [[ $(readlink /etc/slurm/slurm.conf) == "$ETC"/* ]]; then
      [ "$(readlink /etc/slurm/slurm.conf)" = "$want" ] || ln -sfn "$want" /etc/slurm/slurm.conf
    elif [ ! -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
      mkdir -p /etc/slurm; ln -s "$want" /etc/slurm/slurm.conf
      manifest_add /etc/slurm/slurm.conf
    else
      warn "/etc/slurm/slurm.conf exists and is not ours: left alone (use SLURM_CONF, see: $0 env CLUSTER)"
    fi
  fi
}

# ------------------------------------------------------------------ bring-up steps
start_munged() {
  if ! is_up munged && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged: one not started by us already answers; using it"; return 0
  fi
  start_d munged munge "$(stamp_of /etc/munge/munge.key)" /usr/sbin/munged -F
  WATCH=munged wait_for "$TIMEOUT" munged sh -c 'munge -n | unmunge' ||
    die "munged did not come up" /var/log/munge/munged.log "$LOG/munged.out"
}

start_mariadb() {
  if [ ! -d "$DB_DIR/mysql" ]; then
    log "initialising private MariaDB datadir $DB_DIR"
    mkdir -p "$DB_DIR"; chown mysql:mysql "$DB_DIR"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
      --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install-db.log" 2>&1 ||
      die "mariadb-install-db failed" "$LOG/mariadb-install-db.log"
  fi
  touch "$LOG/mariadb.err"; chown mysql:mysql "$LOG/mariadb.err"
  # --no-defaults: nothing from /etc/mysql (the system MariaDB's config) applies.
  # A buffer pool < 1G makes slurmdbd log "Database settings not recommended";
  # it is virtual memory, the resident size stays ~150 MB.
  local args=(--no-defaults --datadir="$DB_DIR" --socket="$DB_SOCK" --port="$DB_PORT"
              --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$RUN/mysql/mariadbd.pid"
              --log-error="$LOG/mariadb.err" --innodb-buffer-pool-size=1024M
              --innodb-log-file-size=64M --innodb-lock-wait-timeout=900)
  start_d mariadb mysql "$(echo "${args[*]}" | md5sum | cut -c1-32)" /usr/sbin/mariadbd "${args[@]}"
  WATCH=mariadb wait_for "$TIMEOUT" "mariadb" mariadb-admin --socket="$DB_SOCK" ping ||
    die "mariadb did not come up" "$LOG/mariadb.err" "$LOG/mariadb.out"
  local u
  for u in localhost 127.0.0.1; do
    echo "CREATE USER IF NOT EXISTS 'slurm'@'$u' IDENTIFIED BY '$DB_PASS';
          ALTER USER 'slurm'@'$u' IDENTIFIED BY '$DB_PASS';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'$u';"
  done | mariadb --socket="$DB_SOCK" -u root
}

start_slurmdbd() {
  SLURM_CONF=$ETC/slurmdbd/slurm.conf \
    start_d slurmdbd root "$(stamp_of "$ETC/slurmdbd/slurmdbd.conf")" /usr/sbin/slurmdbd -D
  WATCH=slurmdbd wait_for "$TIMEOUT" slurmdbd as_cluster "${CLUSTERS[0]}" sacctmgr -n -P list cluster ||
    die "slurmdbd did not come up" "$LOG/slurmdbd.log" "$LOG/slurmdbd.out"
  # Register clusters (`sacctmgr add` fails for ones that exist) and give root an
  # association with the Accord account on each.  Batched: each add costs ~0.5 s.
  local c known missing=()
  known=$(sacctmgr_ -n -P list cluster format=cluster)
  for c in "${CLUSTERS[@]}"; do grep -qxF "$c" <<<"$known" || missing+=("$c"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    sacctmgr_ -i add cluster "$(IFS=,; echo "${missing[*]}")" >/dev/null
    log "registered in slurmdbd: ${missing[*]}"
  fi
  missing=()
  known=$(sacctmgr_ -n -P list assoc account="$ACCOUNT" user=root format=cluster)
  for c in "${CLUSTERS[@]}"; do grep -qxF "$c" <<<"$known" || missing+=("$c"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    local list; list=$(IFS=,; echo "${missing[*]}")
    sacctmgr_ -i add account "$ACCOUNT" cluster="$list" description=accord organization=accord >/dev/null || true
    sacctmgr_ -i add user root account="$ACCOUNT" cluster="$list" >/dev/null
    log "account $ACCOUNT (user root) added on: ${missing[*]}"
  fi
}
sacctmgr_() { as_cluster "${CLUSTERS[0]}" sacctmgr "$@"; }

slurmd_stamp() { stamp_of "$(conf_of "$1")" "$ETC/$1/gres.conf"; }

start_ctld() {   # start_ctld CLUSTER  (no wait)
  local c=$1 conf; conf=$(conf_of "$c")
  [ -f "$conf" ] || die "no config for $c yet: run '$0 start' first"
  start_d "slurmctld-$c" root "$(slurmd_stamp "$c")" /usr/sbin/slurmctld -D -f "$conf"
}
wait_ctld() {
  local c=$1
  WATCH=slurmctld-$c wait_for "$TIMEOUT" "slurmctld $c" sh -c "SLURM_CONF='$(conf_of "$c")' scontrol ping | grep -q 'is UP'" ||
    die "slurmctld of $c is not UP" "$LOG/slurmctld-$c.log" "$LOG/slurmctld-$c.out"
}
nodes_ready() {  # all nodes of CLUSTER idle/mixed/allocated
  local n
  n=$(as_cluster "$1" sinfo -h -N -o '%N %T' | sort -u | grep -cE ' (idle|mixed|allocated|completing)$') || true
  [ "$n" -eq "$NODES" ]
}

start_cluster() {
  local c=$1 k n
  start_ctld "$c"
  for k in $(seq 1 "$NODES"); do
    n=$(node_name "$c" "$k")
    start_d "slurmd-$n" root "$(slurmd_stamp "$c")" /usr/sbin/slurmd -D -N "$n" -f "$(conf_of "$c")"
  done
  if [ "$RESTD" = 1 ]; then
    local plugins=openapi/v0.0.38,openapi/dbv0.0.38
    # slurmrestd refuses to run as root (-u) and must not use munge itself (SLURM_JWT=daemon)
    SLURM_JWT=daemon start_d "slurmrestd-$c" root "$(slurmd_stamp "$c")$plugins" /usr/sbin/slurmrestd \
      -f "$(conf_of "$c")" -u slurmrestd -a rest_auth/jwt -s "$plugins" "127.0.0.1:$(restd_port "$c")"
  fi
}

wait_cluster() {
  local c=$1
  wait_ctld "$c"
  local k watch=""
  for k in $(seq 1 "$NODES"); do watch+=" slurmd-$(node_name "$c" "$k")"; done
  if ! WATCH=$watch wait_for "$TIMEOUT" "nodes of $c" nodes_ready "$c"; then
    as_cluster "$c" sinfo -N -o '%N %T %E' >&2 || true
    die "nodes of $c not ready" "$LOG/slurmctld-$c.log" "$LOG"/slurmd-"$c"-n*.log
  fi
  if [ "$RESTD" = 1 ]; then
    local tok url
    tok=$(as_cluster "$c" scontrol token username=root lifespan=600 | sed 's/^SLURM_JWT=//')
    url=http://127.0.0.1:$(restd_port "$c")/slurm/v0.0.38/ping
    WATCH=slurmrestd-$c wait_for "$TIMEOUT" "slurmrestd $c" sh -c "curl -sf -H 'X-SLURM-USER-NAME: root' -H 'X-SLURM-USER-TOKEN: $tok' $url | grep -q UP" ||
      die "slurmrestd of $c not answering" "$LOG/slurmrestd-$c.out"
  fi
  log "cluster $c up: slurmctld 127.0.0.1:$(ctld_port "$c"), nodes $(node_list "$c") (slurmd ports $(slurmd_port "$c" 1)..$(slurmd_port "$c" "$NODES"))"
}

save_knobs() {
  cat >"$KNOBS_FILE" <<EOF
ACCORD_SLURM_CLUSTERS=${CLUSTERS[*]}
ACCORD_SLURM_NODES=$NODES
ACCORD_SLURM_GPUS_PER_NODE=$GPUS
ACCORD_SLURM_GPU_TYPE=$GPU_TYPE
ACCORD_SLURM_CPUS_PER_NODE=$CPUS
ACCORD_SLURM_MEM_PER_NODE=$MEM
ACCORD_SLURM_PARTITION=$PARTITION
ACCORD_SLURM_ACCOUNT=$ACCOUNT
ACCORD_SLURM_PORT_BASE=$PORT_BASE
ACCORD_SLURM_DB_PORT=$DB_PORT
ACCORD_SLURM_RESTD=$RESTD
EOF
}

# Stop daemons of clusters/nodes that the knobs no longer ask for.
converge() {
  local f n want c k
  local wanted=" munged mariadb slurmdbd "
  for c in "${CLUSTERS[@]}"; do
    wanted+="slurmctld-$c "
    [ "$RESTD" = 1 ] && wanted+="slurmrestd-$c "
    for k in $(seq 1 "$NODES"); do wanted+="slurmd-$(node_name "$c" "$k") "; done
  done
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid)
    [[ $wanted == *" $n "* ]] || { log "$n is no longer configured"; stop_d "$n"; }
  done
}

# ------------------------------------------------------------------ health check
job_state() { as_cluster "$1" scontrol show job "$2" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
job_done()  { [[ $(job_state "$1" "$2") =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$ ]]; }
sacct_has() { as_cluster "$1" sacct -M "$1" -j "$2" -X -n -P -o State,AllocTRES | grep -Eq "$3"; }

healthcheck() {
  local dir=$JOBS/healthcheck c out jid
  mkdir -p "$dir"; chmod 1777 "$dir"; rm -f "$dir"/accord-health*.out
  declare -A gpu_job multi_job
  for c in "${CLUSTERS[@]}"; do   # submit everywhere first, then wait
    out=$(cd "$dir" && as_cluster "$c" sbatch --parsable -M "$c" -J accord-health -t 2 \
            -o "$dir/%x-%j.out" --gpus=2 --wrap 'echo "gpus=$CUDA_VISIBLE_DEVICES"')
    gpu_job[$c]=${out%%;*}
    if [ "$NODES" -ge 2 ]; then
      out=$(cd "$dir" && as_cluster "$c" sbatch --parsable -M "$c" -J accord-health-multi -t 2 \
              -o "$dir/%x-%j.out" -N "$NODES" --ntasks-per-node=1 --gpus-per-node=1 \
              --wrap 'srun printenv SLURMD_NODENAME | sort | tr "\n" " "; echo')
      multi_job[$c]=${out%%;*}
    fi
    log "health: submitted ${gpu_job[$c]} ${multi_job[$c]:-} on $c"
  done
  for c in "${CLUSTERS[@]}"; do
    for jid in "${gpu_job[$c]}" ${multi_job[$c]:-}; do
      if ! wait_for "$TIMEOUT" "job $jid on $c" job_done "$c" "$jid" || [ "$(job_state "$c" "$jid")" != COMPLETED ]; then
        as_cluster "$c" scontrol show job "$jid" >&2 || true
        die "health job $jid on $c did not complete" "$dir"/*-"$jid".out "$LOG/slurmctld-$c.log"
      fi
    done
    grep -qx 'gpus=0,1' "$dir/accord-health-${gpu_job[$c]}.out" ||
      die "GPU job ${gpu_job[$c]} on $c printed: $(cat "$dir/accord-health-${gpu_job[$c]}.out")"
    if [ -n "${multi_job[$c]:-}" ]; then
      grep -q "$c-n1 $c-n2" "$dir/accord-health-multi-${multi_job[$c]}.out" ||
        die "multi-node job ${multi_job[$c]} on $c printed: $(cat "$dir/accord-health-multi-${multi_job[$c]}.out")"
    fi
    wait_for "$TIMEOUT" "sacct record of ${gpu_job[$c]}" sacct_has "$c" "${gpu_job[$c]}" '^COMPLETED[|](.*,)?gres/gpu=2(,|$)' || {
      as_cluster "$c" sacct -M "$c" -j "${gpu_job[$c]}" -X -P -o JobID,State,AllocTRES >&2 || true
      die "sacct -M $c does not show job ${gpu_job[$c]} COMPLETED with gres/gpu=2" "$LOG/slurmdbd.log"; }
    log "health: $c ok: job ${gpu_job[$c]} got CUDA_VISIBLE_DEVICES=0,1, sacct AllocTRES has gres/gpu=2${multi_job[$c]:+, $NODES-node job ${multi_job[$c]} ran srun on all nodes}"
  done
}

# ------------------------------------------------------------------ commands
cmd_start() {
  validate_knobs
  install_packages
  local t_installed; t_installed=$(date +%s.%N)
  log "slurm $(slurmctld -V | awk '{print $2}'), clusters: ${CLUSTERS[*]}, $NODES node(s) x $GPUS $GPU_TYPE each"
  prepare_host
  make_gpu_devices
  write_configs
  converge
  save_knobs
  start_munged
  start_mariadb
  start_slurmdbd
  local c
  for c in "${CLUSTERS[@]}"; do start_cluster "$c"; done
  for c in "${CLUSTERS[@]}"; do wait_cluster "$c"; done
  local t_up; t_up=$(date +%s.%N)
  [ "$HEALTHCHECK" != 1 ] || healthcheck
  log "timings: install $(dt "$t_installed" "$T0")s, configure+start $(dt "$t_up" "$t_installed")s," \
      "healthcheck $(since "$t_up")s, total $(since)s"
  log "ALL UP. Use: eval \"\$($0 env ${CLUSTERS[0]})\"   (logs: $LOG)"
}

cancel_all_jobs() {
  local c ids conf
  for c in $(ls "$PIDS" 2>/dev/null | sed -n 's/^slurmctld-\(.*\)\.pid$/\1/p'); do
    conf=$(conf_of "$c")
    is_up "slurmctld-$c" && [ -f "$conf" ] || continue
    ids=$(SLURM_CONF=$conf squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || true
    [ -n "${ids// }" ] || continue
    log "cancelling jobs on $c: $ids"
    # shellcheck disable=SC2086
    SLURM_CONF=$conf scancel $ids 2>/dev/null || true
    wait_for 30 "jobs on $c to end" sh -c "[ -z \"\$(SLURM_CONF='$conf' squeue -h 2>/dev/null)\" ]" || warn "jobs still listed on $c"
  done
}

cmd_stop() {
  [ -d "$PIDS" ] || { log "nothing to stop ($PIDS does not exist)"; return 0; }
  cancel_all_jobs
  local pat f
  for pat in 'slurmrestd-*' 'slurmd-*' 'slurmctld-*' slurmdbd mariadb munged; do
    for f in "$PIDS"/$pat.pid; do [ -e "$f" ] && stop_d "$(basename "$f" .pid)"; done
  done
  # Stopped daemons stay <defunct> until PID 1 reaps them (a few seconds here).
  [ -z "$STOPPED_PIDS" ] || wait_for 15 "stopped daemons to be reaped" \
    sh -c "! ps -o pid= -p '${STOPPED_PIDS# }' | grep -q ." || warn "still in the process table: $STOPPED_PIDS"
  local left; left=$(ps -e -o pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 ~ /^slurmstepd$/ {print $1}' | tr '\n' ' ')
  [ -z "$left" ] || warn "slurmstepd processes still alive (pids: $left); not ours to kill blindly"
  log "stopped"
}

cmd_purge() {
  cmd_stop
  if [ -f "$MANIFEST" ]; then
    local p
    while read -r p; do
      case $p in
        /dev/accord-*) [ -c "$p" ] && rm -f "$p" ;;
        /etc/slurm/slurm.conf) [ -L "$p" ] && [[ $(readlink "$p") == "$ETC"/* ]] && rm -f "$p" ;;
      esac
    done <"$MANIFEST"
  fi
  rm -rf "$BASE"
  log "purged $BASE (packages stay installed)"
}

cmd_status() {
  local bad=0 c k n line
  show() {   # show NAME DETAIL
    if is_up "$1"; then printf '%-24s up    pid %-7s %s\n' "$1" "$(pid_of "$1")" "$2"
    else printf '%-24s DOWN  %-11s %s\n' "$1" "" "$2"; bad=1; fi
  }
  if ! is_up munged && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    printf '%-24s up    %-11s %s\n' munged "" "(not started by this script)"
  else show munged "/run/munge"; fi
  show mariadb "127.0.0.1:$DB_PORT datadir $DB_DIR"
  show slurmdbd "127.0.0.1:$DBD_PORT"
  for c in "${CLUSTERS[@]}"; do
    line=""
    if is_up "slurmctld-$c"; then
      line=$(as_cluster "$c" scontrol ping 2>/dev/null | grep -o 'is [A-Z]*' || echo "ping failed")
      [ "$line" = "is UP" ] || bad=1
    fi
    show "slurmctld-$c" "127.0.0.1:$(ctld_port "$c") ${line:+(scontrol ping: $line)}"
    for k in $(seq 1 "$NODES"); do
      n=$(node_name "$c" "$k")
      line=$(as_cluster "$c" sinfo -h -n "$n" -o '%T %G' 2>/dev/null | head -1) || true
      show "slurmd-$n" "127.0.0.1:$(slurmd_port "$c" "$k") ${line:+($line)}"
    done
    [ "$RESTD" != 1 ] || show "slurmrestd-$c" "http://127.0.0.1:$(restd_port "$c")"
  done
  if [ "$bad" = 0 ]; then echo "all up"; return 0; fi
  echo "NOT all up"; trap - ERR; exit 1
}

cmd_env() {
  need_cluster "${1:-}"
  local c=$1
  echo "export SLURM_CONF=$(conf_of "$c")"
  echo "export ACCORD_SLURM_CLUSTER=$c"
  echo "export ACCORD_SLURM_PARTITION=$PARTITION"
  echo "export ACCORD_SLURM_JOBS_DIR=$JOBS"
  [ "$RESTD" != 1 ] || echo "export SLURMRESTD_URL=http://127.0.0.1:$(restd_port "$c")"
}

cmd_stop_ctld() {
  need_cluster "${1:-}"
  is_up "slurmctld-$1" || { log "slurmctld-$1 is not running"; return 0; }
  stop_d "slurmctld-$1"
}

cmd_start_ctld() {
  need_cluster "${1:-}"
  start_ctld "$1"
  wait_ctld "$1"
  log "slurmctld-$1 is UP"
}

cmd_wait_idle() {
  need_cluster "${1:-}"
  local c=$1 t=${2:-$TIMEOUT}
  wait_for "$t" "cluster $c idle" sh -c "[ -z \"\$(SLURM_CONF='$(conf_of "$c")' squeue -h -t PD,R,CG,CF,S 2>&1)\" ]" ||
    { as_cluster "$c" squeue >&2 || true; die "cluster $c not idle after ${t}s"; }
  log "cluster $c idle"
}

usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

main() {
  local cmd=${1:-}; shift || true
  case $cmd in
    start|stop|purge|stop-ctld|start-ctld)
      [ "$(id -u)" -eq 0 ] || die "must run as root"
      exec 9>"$LOCK"; flock -w 600 9 || die "another slurm-testbed.sh holds $LOCK" ;;
    status|env|wait-idle) ;;
    -h|--help|help) usage; return 0 ;;
    *) usage >&2; return 2 ;;
  esac
  case $cmd in
    start) cmd_start ;;          stop) cmd_stop ;;          purge) cmd_purge ;;
    status) cmd_status ;;        env) cmd_env "$@" ;;
    stop-ctld) cmd_stop_ctld "$@" ;;  start-ctld) cmd_start_ctld "$@" ;;
    wait-idle) cmd_wait_idle "$@" ;;
  esac
}
main "$@"
