#!/usr/bin/env bash
# The testbed of the end-to-end tests of `hl apply`: real OpenSSH test hosts and real Docker
# engines on this machine, so the tests drive what a homelab runs. See docs/testing.md.
#
#   scripts/testbed.sh up             install what is missing, start everything, verify (idempotent)
#   scripts/testbed.sh down           stop the test hosts (sshd, their engines), delete their network
#   scripts/testbed.sh status         what is up; exit 0 only when every host answers over SSH
#   scripts/testbed.sh cut HOST       cut HOST off the network (connections to it time out)
#   scripts/testbed.sh restore HOST   undo `cut` and wait until HOST answers again
#   scripts/testbed.sh reset [HOST..] remove the containers of the hosts' engines, empty their runtime roots
#
# Each test host (h1 h2 h3) is an sshd in its own network namespace (hl-h1 ..., addresses
# 10.213.7.11-13, the root side is 10.213.7.1) with its own Docker engine running in that
# namespace, which its SSH sessions reach through DOCKER_HOST (set by its sshd). Where network
# namespaces cannot be made, the hosts are sshds on 127.0.0.1:2201-2203 sharing the local engine
# (HL_TESTBED_MODE=loopback in the env file). HL_TESTBED_MODE=loopback forces that mode.
#
# Everything lives under HL_TESTBED_DIR (default /tmp/hl-testbed); runtime files of the hosts'
# engines under /run/<prefix>-testbed. Network names are global: a second testbed on the same
# machine needs its own HL_TESTBED_PREFIX (default hl: namespaces hl-h1 ...) and
# HL_TESTBED_SUBNET (default 10.213.7), given to its first `up` and remembered in its dir.
# Needs root. Nothing here reads stdin.
set -eEuo pipefail
# A failing command is named once (the innermost), not again by each function or $(..) around it.
ERR_MARK=/tmp/.hl-testbed-err.$$
trap 'rc=$?; [ -e "$ERR_MARK" ] || { : >"$ERR_MARK"; printf "testbed: error: line %s: \"%s\" failed (exit %s)\n" "$LINENO" "$BASH_COMMAND" "$rc" >&2; }' ERR
trap 'rm -f "$ERR_MARK"' EXIT

DIR=${HL_TESTBED_DIR:-/tmp/hl-testbed}
# What the first `up` of this testbed was given (prefix, subnet), unless given again.
if [ -f "$DIR/testbed.conf" ]; then
  PREFIX=${HL_TESTBED_PREFIX:-$(sed -n 's/^PREFIX=//p' "$DIR/testbed.conf")}
  SUBNET_PREFIX=${HL_TESTBED_SUBNET:-$(sed -n 's/^SUBNET=//p' "$DIR/testbed.conf")}
fi
PREFIX=${PREFIX:-${HL_TESTBED_PREFIX:-hl}}
SUBNET_PREFIX=${SUBNET_PREFIX:-${HL_TESTBED_SUBNET:-10.213.7}}
RUN=/run/$PREFIX-testbed
HOSTS=(h1 h2 h3)
IMAGE=hl-test/busybox:1
COMPOSE=docker-compose
ROOT_ADDR=$SUBNET_PREFIX.1
VOID=$PREFIX-void
WAIT_S=${HL_TESTBED_TIMEOUT:-60} # how long an engine may take to answer
PACKAGES=(openssh-server openssh-client docker.io docker-compose busybox-static iproute2)

# The local engine is the one on the default socket: a DOCKER_HOST or context of the caller's
# would point this script (and not the hosts' SSH sessions) elsewhere.
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_BUILDKIT=0 # the legacy builder: no buildx plugin here, and none is needed

say() { printf 'testbed: %s\n' "$*" >&2; }
die() {
  printf 'testbed: error: %s\n' "$*" >&2
  exit 1
}
now_ms() { date +%s%3N; }
T0=$(now_ms)
# step WHAT: with HL_TESTBED_VERBOSE=1, when each step of `up` starts (ms since the start).
step() { [ -z "${HL_TESTBED_VERBOSE:-}" ] || printf 'testbed: %6d ms  %s\n' "$(($(now_ms) - T0))" "$*" >&2; }

# ---- host helpers --------------------------------------------------------------------------

idx() { echo "${1#h}"; }                                   # h2 -> 2
addr_of() { echo "$SUBNET_PREFIX.$((10 + $(idx "$1")))"; } # h2 -> 10.213.7.12
ns_of() { echo "$PREFIX-$1"; }                                  # network namespace, and root-side veth
hdir() { echo "$DIR/hosts/$1"; }
runtime_root() { echo "$DIR/hosts/$1/opt/homelab"; }
engine_sock() { echo "$RUN/$1/docker.sock"; }

# $DIR/mode exists from the first step of `up` to the end of `down`: the testbed is (partly) up.
recorded_mode() { if [ -f "$DIR/mode" ]; then cat "$DIR/mode"; fi; }
mode() {
  if [ -n "${HL_TESTBED_MODE:-}" ]; then
    echo "$HL_TESTBED_MODE"
  elif [ -n "$(recorded_mode)" ]; then
    recorded_mode
  else
    echo netns
  fi
}
host_addr() { if [ "$(mode)" = netns ]; then addr_of "$1"; else echo 127.0.0.1; fi; }
host_port() { if [ "$(mode)" = netns ]; then echo 22; else echo $((2200 + $(idx "$1"))); fi; }
host_docker_host() {
  if [ "$(mode)" = netns ]; then echo "unix://$(engine_sock "$1")"; else echo unix:///var/run/docker.sock; fi
}

check_host() {
  local h
  for h in "${HOSTS[@]}"; do [ "$1" = "$h" ] && return 0; done
  die "no test host '$1' (hosts: ${HOSTS[*]})"
}

# pid_alive PIDFILE NAME: the pid in PIDFILE is a running process whose command line has NAME.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# ssh_host HOST ARGS..: one command on a test host, through the testbed's ssh_config.
ssh_host() {
  local h=$1
  shift
  ssh -F "$DIR/ssh_config" -o BatchMode=yes "$h" -- "$@"
}

# check_owner: the names and addresses of this prefix are not another testbed's that is up.
check_owner() {
  local owner
  owner=$(cat "$RUN/owner" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$DIR" ] && [ -f "$owner/mode" ]; then
    die "prefix $PREFIX (namespaces $PREFIX-h1 ...) belongs to the testbed at $owner, which is up: give this one its own HL_TESTBED_PREFIX and HL_TESTBED_SUBNET, or bring that one down (HL_TESTBED_DIR=$owner $0 down)"
  fi
  mkdir -p "$RUN"
}

# ---- up: packages ----------------------------------------------------------------------------

install_packages() {
  local missing=() p st
  for p in "${PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ "$st" == ii* ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
  say "installing: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=120 update -qq || die "apt-get update failed"
  # policy-rc.d or no init system: packages' services are not started here, this script does it.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}" \
    >"$DIR/apt.log" 2>&1 || {
    tail -n 20 "$DIR/apt.log" >&2
    die "apt-get install ${missing[*]} failed (log: $DIR/apt.log)"
  }
}

# ---- up: the local engine and the test image -------------------------------------------------

# wait_engine SOCKET PIDFILE LOG WHAT: until the engine on SOCKET answers, or it died, or WAIT_S.
wait_engine() {
  local sock=$1 pidfile=$2 log=$3 what=$4 deadline=$(($(date +%s) + WAIT_S))
  while ! docker -H "unix://$sock" info >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 20 "$log" >&2 || true
      die "$what did not answer within ${WAIT_S}s (log: $log)"
    fi
    if [ -n "$pidfile" ] && [ -s "$pidfile" ] && ! pid_alive "$pidfile" dockerd; then
      sleep 0.2 # it may have just written its pid file; look once more
      if ! pid_alive "$pidfile" dockerd && ! docker -H "unix://$sock" info >/dev/null 2>&1; then
        tail -n 20 "$log" >&2 || true
        die "$what exited while starting (log: $log)"
      fi
    fi
    sleep 0.2
  done
}

local_engine() {
  docker info >/dev/null 2>&1 && return 0
  [ -x /usr/sbin/dockerd ] || die "no Docker engine answers and /usr/sbin/dockerd is missing (apt-get install docker.io)"
  if pid_alive /var/run/docker.pid dockerd; then
    # A dockerd that does not answer yet: it may be starting. Wait for it rather than race it.
    say "waiting for the local Docker engine (pid $(cat /var/run/docker.pid)) to answer"
    wait_engine /var/run/docker.sock /var/run/docker.pid "$DIR/dockerd.log" "the local Docker engine (pid $(cat /var/run/docker.pid))"
    return 0
  fi
  # A pid file left by a dockerd that was killed (dead, or a zombie nobody reaped) stops a new one.
  rm -f /var/run/docker.pid
  say "starting the local Docker engine (log: $DIR/dockerd.log)"
  # No init system runs it here (policy-rc.d denies it, there is no systemd): start it ourselves.
  setsid /usr/sbin/dockerd >>"$DIR/dockerd.log" 2>&1 </dev/null 9>&- &
  wait_engine /var/run/docker.sock /var/run/docker.pid "$DIR/dockerd.log" "the local Docker engine (dockerd)"
}

# image_recipe: the hash of what the test image is built from; a label of the image.
image_recipe() { cat "$DIR/image/Dockerfile" /bin/busybox | sha256sum | cut -c1-16; }

image_label() { # image_label [-H SOCK]
  docker "$@" image inspect -f '{{index .Config.Labels "hl.testbed.recipe"}}' "$IMAGE" 2>/dev/null || true
}

build_image() {
  [ -x /bin/busybox ] || die "/bin/busybox is missing (apt-get install busybox-static)"
  mkdir -p "$DIR/image"
  cat >"$DIR/image/Dockerfile.new" <<'EOF'
# hl-test/busybox:1, the image of the testbed's services: Debian's busybox-static and nothing else
# (no registry is reached from here). Built by scripts/testbed.sh.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /www /etc /root && chmod 1777 /tmp && echo ok >/www/index.html \
 && echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd && echo 'root:x:0:' >/etc/group
ENV PATH=/bin
CMD ["sh"]
EOF
  mv "$DIR/image/Dockerfile.new" "$DIR/image/Dockerfile"
  local recipe
  recipe=$(image_recipe)
  [ "$(image_label)" = "$recipe" ] && return 0
  say "building $IMAGE from scratch with /bin/busybox"
  cp /bin/busybox "$DIR/image/busybox"
  docker build -q --label "hl.testbed.recipe=$recipe" -t "$IMAGE" "$DIR/image" >"$DIR/image/build.log" 2>&1 || {
    cat "$DIR/image/build.log" >&2
    die "docker build of $IMAGE failed"
  }
  rm -f "$DIR/smoke.ok" # a new image is smoke-tested again
}

# smoke_compose SOCK TAG: `docker-compose up -d` of a one-service project (a long-running sleep)
# on the engine at SOCK ("" for the local one), on the default network, else with
# network_mode: none. Prints the network that worked.
smoke_compose() {
  local sock=$1 tag=$2 dir net out
  dk() { if [ -n "$sock" ]; then docker -H "$sock" "$@"; else docker "$@"; fi; }
  dc() { (cd "$dir" && if [ -n "$sock" ]; then DOCKER_HOST=$sock $COMPOSE "$@"; else $COMPOSE "$@"; fi); }
  dir=$(mktemp -d "$DIR/smoke.XXXXXX")
  for net in bridge none; do
    {
      echo "services:"
      echo "  sleeper:"
      echo "    image: $IMAGE"
      echo "    command: [\"sleep\", \"3600\"]"
      [ "$net" = none ] && echo "    network_mode: none"
    } >"$dir/docker-compose.yml"
    if out=$(dc -p "$PREFIX-testbed-smoke" up -d 2>&1) &&
      [ "$(dk ps -q --filter "label=com.docker.compose.project=$PREFIX-testbed-smoke" --filter status=running | wc -l)" = 1 ]; then
      dc -p "$PREFIX-testbed-smoke" down -t 0 >/dev/null 2>&1 || true
      rm -rf "$dir"
      echo "$net"
      return 0
    fi
    printf '%s\n' "$out" >"$DIR/smoke-$tag-$net.log"
    dc -p "$PREFIX-testbed-smoke" down -t 0 >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
  return 1
}

smoke_local() {
  local stamp out net
  stamp="$(cat /var/run/docker.pid 2>/dev/null) $(docker image inspect -f '{{.Id}}' "$IMAGE")"
  [ -f "$DIR/smoke.ok" ] && [ "$(head -n1 "$DIR/smoke.ok")" = "$stamp" ] && return 0
  out=$(docker run --rm "$IMAGE" sh -c 'echo ok' 2>&1) || die "docker run --rm $IMAGE sh -c 'echo ok' failed: $out"
  [ "$out" = ok ] || die "docker run --rm $IMAGE printed '$out', not 'ok'"
  local id
  id=$(docker run -d --rm "$IMAGE" sleep 30 2>&1) || die "docker run -d $IMAGE sleep 30 failed: $id"
  [ "$(docker inspect -f '{{.State.Running}}' "$id")" = true ] || die "a sleep container of $IMAGE is not running"
  docker rm -f "$id" >/dev/null
  net=$(smoke_compose "" local) || die "$COMPOSE could not up -d a one-service project of $IMAGE, on the default network nor with network_mode: none (logs: $DIR/smoke-*.log)"
  printf '%s\n%s\n' "$stamp" "$net" >"$DIR/smoke.ok"
}

# ---- up: the test hosts ----------------------------------------------------------------------

client_key() {
  mkdir -p "$DIR/client"
  [ -s "$DIR/client/id_ed25519" ] ||
    ssh-keygen -q -t ed25519 -N '' -C hl-testbed -f "$DIR/client/id_ed25519" </dev/null >/dev/null
  cp "$DIR/client/id_ed25519.pub" "$DIR/client/authorized_keys"
  chmod 600 "$DIR/client/id_ed25519"
}

netns_network() {
  local h=$1 ns addr
  ns=$(ns_of "$h")
  addr=$(addr_of "$h")
  [ -e "/run/netns/$ns" ] || ip netns add "$ns" || return 1
  if ! ip link show "$ns" >/dev/null 2>&1; then
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip link add "$ns" type veth peer name eth0 netns "$ns" || return 1
  fi
  ip addr replace "$ROOT_ADDR" peer "$addr/32" dev "$ns" || return 1
  ip link set "$ns" up || return 1 # also undoes a `cut`
  ip -n "$ns" link set lo up || return 1
  ip -n "$ns" addr replace "$addr" peer "$ROOT_ADDR/32" dev eth0 || return 1
  ip -n "$ns" link set eth0 up || return 1
  ip -n "$ns" route replace default via "$ROOT_ADDR" dev eth0 || return 1
}

# Packets to a cut host (its veth down, so its /32 route gone) fall to this route and are
# dropped without an answer: connections time out, as to a host whose cable was pulled, rather
# than failing at once or leaving through the default route. The sink is a veth whose peer stays
# down, without ARP (no `dummy` link type in every kernel, this sandbox's among them).
void_route() {
  ip link show "$VOID" >/dev/null 2>&1 || ip link add "$VOID" type veth peer name "$VOID-peer"
  ip link set "$VOID" arp off
  ip link set "$VOID" up
  ip route replace "$SUBNET_PREFIX.0/24" dev "$VOID"
}

host_dirs() {
  local h=$1 d
  d=$(hdir "$h")
  mkdir -p "$d" "$(runtime_root "$h")"
  [ -s "$d/ssh_host_ed25519_key" ] ||
    ssh-keygen -q -t ed25519 -N '' -C "hl-testbed-$h" -f "$d/ssh_host_ed25519_key" </dev/null >/dev/null
}

sshd_config() {
  local h=$1 d
  d=$(hdir "$h")
  cat >"$d/sshd_config.new" <<EOF
# sshd of test host $h, written by scripts/testbed.sh
ListenAddress $(host_addr "$h"):$(host_port "$h")
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $DIR/client/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
LogLevel VERBOSE
SetEnv DOCKER_HOST=$(host_docker_host "$h") HL_TESTBED_HOST=$h
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  if ! cmp -s "$d/sshd_config.new" "$d/sshd_config"; then
    mv "$d/sshd_config.new" "$d/sshd_config"
    if pid_alive "$d/sshd.pid" "$d/sshd_config"; then kill "$(cat "$d/sshd.pid")"; fi
  else
    rm -f "$d/sshd_config.new"
  fi
}

start_sshd() {
  local h=$1 d
  d=$(hdir "$h")
  pid_alive "$d/sshd.pid" "$d/sshd_config" && return 0
  mkdir -p /run/sshd # sshd's privilege separation directory
  chmod 755 /run/sshd
  /usr/sbin/sshd -t -f "$d/sshd_config" 2>"$d/sshd.err" || die "sshd of $h: bad config: $(cat "$d/sshd.err")"
  rm -f "$d/sshd.pid"
  # Its own UTS namespace, so `hostname` on the host says its name.
  # shellcheck disable=SC2016 # expanded by that sh
  local cmd=(unshare --uts sh -c 'hostname "$0" && exec /usr/sbin/sshd -f "$1" -E "$2"' "$h" "$d/sshd_config" "$d/sshd.log")
  if [ "$(mode)" = netns ]; then
    ip netns exec "$(ns_of "$h")" "${cmd[@]}" 2>"$d/sshd.err" 9>&- || die "sshd of $h did not start: $(cat "$d/sshd.err"; tail -n 5 "$d/sshd.log")"
  else
    "${cmd[@]}" 2>"$d/sshd.err" 9>&- || die "sshd of $h did not start: $(cat "$d/sshd.err"; tail -n 5 "$d/sshd.log")"
  fi
}

# The host's own Docker engine, inside its network namespace: its containers, networks and
# published ports are its own, as on a real host (the same project name on two hosts is two
# projects). nsenter --net, not `ip netns exec`: the latter remounts /sys and so hides the
# cgroup hierarchies dockerd needs.
start_host_engine() {
  local h=$1 d r
  d=$(hdir "$h")
  r="$RUN/$h"
  mkdir -p "$r" "$d/docker"
  docker -H "unix://$r/docker.sock" info >/dev/null 2>&1 && return 0
  pid_alive "$r/dockerd.pid" dockerd && kill "$(cat "$r/dockerd.pid")" && sleep 1
  rm -f "$r/dockerd.pid"
  echo '{}' >"$d/daemon.json"
  setsid nsenter --net="/run/netns/$(ns_of "$h")" -- /usr/sbin/dockerd \
    --config-file "$d/daemon.json" \
    --data-root "$d/docker" \
    --exec-root "$r/exec" \
    --pidfile "$r/dockerd.pid" \
    --host "unix://$r/docker.sock" \
    --cgroup-parent "$(ns_of "$h")" \
    >>"$d/dockerd.log" 2>&1 </dev/null 9>&- &
}

# The host's engine answers, has the test image, and its compose works (once per engine start).
ready_host_engine() {
  local h=$1 d r sock stamp net out
  d=$(hdir "$h")
  r="$RUN/$h"
  sock="$r/docker.sock"
  wait_engine "$sock" "$r/dockerd.pid" "$d/dockerd.log" "the Docker engine of $h"
  step "$h: engine answers"
  if [ "$(image_label -H "unix://$sock")" != "$(image_label)" ]; then
    docker save "$IMAGE" | docker -H "unix://$sock" load -q >/dev/null || die "loading $IMAGE into the engine of $h failed"
    step "$h: image loaded"
  fi
  stamp="$(cat "$r/dockerd.pid") $(docker -H "unix://$sock" image inspect -f '{{.Id}}' "$IMAGE")"
  [ -f "$d/smoke.ok" ] && [ "$(head -n1 "$d/smoke.ok")" = "$stamp" ] && return 0
  if [ "$h" = "${HOSTS[0]}" ]; then
    # The engines are alike: compose (a second of CPU per run) is tried on the first only.
    net=$(smoke_compose "unix://$sock" "$h") || die "$COMPOSE could not up -d a one-service project on the engine of $h (logs: $DIR/smoke-*.log)"
    step "$h: compose smoke test passed"
  else
    out=$(docker -H "unix://$sock" run --rm --network none "$IMAGE" sh -c 'echo ok' 2>&1) || die "docker run --rm $IMAGE on the engine of $h failed: $out"
    [ "$out" = ok ] || die "docker run --rm $IMAGE on the engine of $h printed '$out', not 'ok'"
    net=-
    step "$h: docker run passed"
  fi
  printf '%s\n%s\n' "$stamp" "$net" >"$d/smoke.ok"
}

write_client_files() {
  local h tmp addrs
  if [ "$(mode)" = netns ]; then addrs="$SUBNET_PREFIX.*"; else addrs=127.0.0.1; fi
  tmp=$(mktemp "$DIR/ssh_config.XXXXXX")
  {
    echo "# The testbed's hosts, written by scripts/testbed.sh: ssh -F $DIR/ssh_config h1 -- docker ps"
    echo "# Each is reached by its name or by its address (as an inventory may name it)."
    for h in "${HOSTS[@]}"; do
      cat <<EOF
Host $h
  HostName $(host_addr "$h")
  Port $(host_port "$h")
EOF
    done
    cat <<EOF
Host ${HOSTS[*]} $addrs
  User root
  IdentityFile $DIR/client/id_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 3
EOF
  } >"$tmp"
  mv "$tmp" "$DIR/ssh_config"
  tmp=$(mktemp "$DIR/known_hosts.XXXXXX")
  for h in "${HOSTS[@]}"; do
    local who
    who=$(host_addr "$h")
    [ "$(host_port "$h")" = 22 ] || who="[$who]:$(host_port "$h")"
    echo "$who $(cut -d' ' -f1-2 "$(hdir "$h")/ssh_host_ed25519_key.pub")"
  done >"$tmp"
  mv "$tmp" "$DIR/known_hosts"
}

write_env() {
  local h H tmp net
  net=$(sed -n 2p "$DIR/smoke.ok" 2>/dev/null || echo bridge)
  if [ "$(mode)" = netns ]; then net=$(sed -n 2p "$(hdir h1)/smoke.ok"); fi
  tmp=$(mktemp "$DIR/env.XXXXXX")
  {
    echo "# The testbed, written by scripts/testbed.sh up: sourceable by sh, read by tests/common/testbed.rs"
    echo "HL_TESTBED_DIR=$DIR"
    echo "HL_TESTBED_MODE=$(mode)"
    echo "HL_TESTBED_SSH_CONFIG=$DIR/ssh_config"
    echo "HL_TESTBED_SSH_KEY=$DIR/client/id_ed25519"
    echo "HL_TESTBED_KNOWN_HOSTS=$DIR/known_hosts"
    echo "HL_TESTBED_HOSTS=\"${HOSTS[*]}\""
    for h in "${HOSTS[@]}"; do
      H=${h^^}
      echo "HL_TESTBED_${H}_ADDRESS=$(host_addr "$h")"
      echo "HL_TESTBED_${H}_PORT=$(host_port "$h")"
      echo "HL_TESTBED_${H}_RUNTIME_ROOT=$(runtime_root "$h")"
      echo "HL_TESTBED_${H}_DOCKER_HOST=$(host_docker_host "$h")"
    done
    echo "HL_TESTBED_IMAGE=$IMAGE"
    echo "HL_TESTBED_COMPOSE=$COMPOSE"
    # per-host: each host has its own engine (netns mode); shared: all use the local one.
    echo "HL_TESTBED_ENGINES=$([ "$(mode)" = netns ] && echo per-host || echo shared)"
    echo "HL_TESTBED_NETWORK=$net"
  } >"$tmp"
  mv "$tmp" "$DIR/env"
}

# verify: every host answers `docker ps` over SSH, reaching its own engine. In parallel.
verify() {
  local h pids=() failed=()
  for h in "${HOSTS[@]}"; do
    (
      # One round trip: the session's view of itself, then `docker ps` on the host's engine.
      # shellcheck disable=SC2016 # expanded by the host's shell
      out=$(ssh_host "$h" 'echo "$HL_TESTBED_HOST $DOCKER_HOST"; docker ps' 2>&1) || {
        printf 'testbed: error: ssh %s -- docker ps failed: %s\n' "$h" "$out" >&2
        exit 1
      }
      [ "${out%%$'\n'*}" = "$h $(host_docker_host "$h")" ] || {
        printf 'testbed: error: %s: the SSH session says "%s", expected "%s"\n' "$h" "${out%%$'\n'*}" "$h $(host_docker_host "$h")" >&2
        exit 1
      }
    ) &
    pids+=($!)
  done
  local i=0
  for h in "${HOSTS[@]}"; do
    wait "${pids[$i]}" || failed+=("$h")
    i=$((i + 1))
  done
  if ((${#failed[@]})); then
    for h in "${failed[@]}"; do
      say "$h: sshd log $(hdir "$h")/sshd.log, engine log $(hdir "$h")/dockerd.log"
    done
    die "test host(s) ${failed[*]} unusable: see above"
  fi
}

cmd_up() {
  local t0 h
  t0=$(now_ms)
  step packages
  install_packages
  step local engine
  local_engine
  step image
  build_image
  step smoke test of the local engine, in the background
  smoke_local &
  local smoke_pid=$!
  client_key

  check_owner

  # netns, unless forced or impossible.
  local want=${HL_TESTBED_MODE:-} was
  was=$(recorded_mode)
  if [ -n "$was" ] && [ -n "$want" ] && [ "$want" != "$was" ]; then
    say "switching from $was to $want mode"
    HL_TESTBED_MODE=$was cmd_down_unlocked
  fi
  [ -n "$want" ] || want=$was
  if [ -z "$want" ]; then
    want=netns
    if ! netns_network "${HOSTS[0]}" 2>"$DIR/netns.err"; then
      say "network namespaces do not work here ($(tail -n1 "$DIR/netns.err")): hosts on 127.0.0.1:2201-2203"
      want=loopback
    fi
  fi
  case "$want" in netns | loopback) ;; *) die "HL_TESTBED_MODE must be netns or loopback, not '$want'" ;; esac
  printf 'PREFIX=%s\nSUBNET=%s\n' "$PREFIX" "$SUBNET_PREFIX" >"$DIR/testbed.conf"
  echo "$want" >"$DIR/mode"
  echo "$DIR" >"$RUN/owner"
  export HL_TESTBED_MODE=$want

  step "network ($want)"
  if [ "$want" = netns ]; then
    void_route
    for h in "${HOSTS[@]}"; do netns_network "$h" 2>"$DIR/netns.err" || die "could not make the network namespace of $h: $(tail -n1 "$DIR/netns.err")"; done
  fi
  step "hosts: sshd, engines"
  for h in "${HOSTS[@]}"; do
    host_dirs "$h"
    sshd_config "$h"
    [ "$want" = netns ] && start_host_engine "$h"
    start_sshd "$h"
  done
  write_client_files
  if [ "$want" = netns ]; then
    local jobs=() bad=0 p
    for h in "${HOSTS[@]}"; do
      ready_host_engine "$h" &
      jobs+=($!)
    done
    for p in "${jobs[@]}"; do wait "$p" || bad=1; done
    ((bad == 0)) || exit 1
  fi
  step waiting for the smoke test of the local engine
  wait "$smoke_pid" || exit 1
  step verify
  verify
  write_env
  say "up ($want, ${HOSTS[*]}) in $(($(now_ms) - t0)) ms: . $DIR/env; ssh -F $DIR/ssh_config h1 -- docker ps"
}

# ---- down, status, cut, restore, reset -------------------------------------------------------

# stop_pid PIDFILE NAME SECONDS: TERM the process, KILL it if it is still there after SECONDS.
stop_pid() {
  local pid i
  pid_alive "$1" "$2" || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $3 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

# stop_sshd HOST: its listener and the sessions it forked (by their parent's pid).
stop_sshd() {
  local d
  d=$(hdir "$1")
  pid_alive "$d/sshd.pid" "$d/sshd_config" || return 0
  pkill -9 -P "$(cat "$d/sshd.pid")" 2>/dev/null || true
  stop_pid "$d/sshd.pid" "$d/sshd_config" 5
}

# down_host HOST: its sshd, its engine (after its containers), its namespace and veth.
down_host() {
  local h=$1 d r ns ids=() pids=()
  d=$(hdir "$h")
  r="$RUN/$h"
  ns=$(ns_of "$h")
  stop_sshd "$h"
  rm -f "$d/smoke.ok"
  [ "$(mode)" = netns ] || return 0
  if [ -S "$r/docker.sock" ] && docker -H "unix://$r/docker.sock" info >/dev/null 2>&1; then
    # The host goes away with its containers; its image store stays (a fast next `up`).
    mapfile -t ids < <(docker -H "unix://$r/docker.sock" ps -aq)
    ((${#ids[@]} == 0)) || docker -H "unix://$r/docker.sock" rm -f "${ids[@]}" >/dev/null 2>&1 || true
  fi
  stop_pid "$r/dockerd.pid" dockerd 20
  # dockerd bind-mounts its data root onto itself (and a killed one leaves its containers'
  # mounts): unmount what is left under the host's folders, deepest first.
  local m
  awk -v a="$d/docker" -v b="$r" '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 { print $5 }' \
    /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if [ -e "/run/netns/$ns" ]; then
    # Whatever still runs in the namespace was started by the testbed (SSH sessions, the
    # engine's proxies): end it, by pid, so the namespace and its veth go with it.
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  fi
  ip link del "$ns" 2>/dev/null || true
}

cmd_down_unlocked() {
  local h pids=() p owner
  rm -f "$DIR/env"
  owner=$(cat "$RUN/owner" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$DIR" ] && [ -f "$owner/mode" ]; then
    # Only what this dir's pid files name: the namespaces and engines are the other testbed's.
    say "prefix $PREFIX belongs to the testbed at $owner: its network and engines are left alone"
    for h in "${HOSTS[@]}"; do stop_sshd "$h"; done
    rm -f "$DIR/mode"
    return 0
  fi
  for h in "${HOSTS[@]}"; do
    down_host "$h" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  ip link del "$VOID" 2>/dev/null || true
  rm -f "$DIR/mode" "$RUN/owner"
}

cmd_down() {
  cmd_down_unlocked
  say "down (the local Docker engine and the images stay)"
}

cmd_status() {
  local h d r state rc=0 engine sshd link reach
  if [ ! -f "$DIR/env" ]; then
    echo "testbed $DIR: down (no $DIR/env)"
    rc=1
  else
    echo "testbed $DIR: $(mode) mode"
  fi
  if docker info >/dev/null 2>&1; then
    engine="answers (dockerd $(docker version -f '{{.Server.Version}}' 2>/dev/null))"
  else
    engine="does not answer"
    rc=1
  fi
  echo "local engine: $engine; image $IMAGE: $([ -n "$(image_label)" ] && echo present || echo missing)"
  [ -f "$DIR/mode" ] || exit 1
  for h in "${HOSTS[@]}"; do
    d=$(hdir "$h")
    r="$RUN/$h"
    sshd=$(pid_alive "$d/sshd.pid" "$d/sshd_config" && echo "sshd $(cat "$d/sshd.pid")" || echo "sshd stopped")
    if [ "$(mode)" = netns ]; then
      link=$(ip -br link show "$(ns_of "$h")" 2>/dev/null | awk '{print $2}' || true)
      case "$link" in UP | UNKNOWN) link="link up" ;; "") link="no link" ;; *) link="link CUT" ;; esac
      engine=$(docker -H "unix://$r/docker.sock" info >/dev/null 2>&1 && echo "engine $(cat "$r/dockerd.pid" 2>/dev/null)" || echo "engine stopped")
    else
      link="loopback"
      engine="shared engine"
    fi
    if state=$(ssh -F "$DIR/ssh_config" -o BatchMode=yes -o ConnectTimeout=2 "$h" -- docker ps -q 2>&1); then
      reach="ssh ok ($(printf '%s' "$state" | grep -c . || true) containers)"
    else
      reach="ssh FAILS"
      rc=1
    fi
    printf '%s  %s:%s  %-9s %-12s %-13s %s\n' "$h" "$(host_addr "$h")" "$(host_port "$h")" "$link" "$sshd" "$engine" "$reach"
  done
  exit $rc # not `return`: a non-zero status is an answer here, not an error to report
}

cmd_cut() {
  local h=$1
  check_host "$h"
  [ -f "$DIR/mode" ] || die "the testbed is not up"
  if [ "$(mode)" = netns ]; then
    ip link set "$(ns_of "$h")" down
  else
    stop_sshd "$h" # the listener and the sessions it forked (a ControlMaster's among them)
  fi
  say "$h cut off"
}

cmd_restore() {
  local h=$1 i
  check_host "$h"
  [ -f "$DIR/mode" ] || die "the testbed is not up"
  if [ "$(mode)" = netns ]; then
    ip link set "$(ns_of "$h")" up
  else
    start_sshd "$h"
  fi
  for ((i = 0; i < 50; i++)); do
    ssh_host "$h" true >/dev/null 2>&1 && {
      say "$h restored"
      return 0
    }
    sleep 0.2
  done
  die "$h restored but does not answer over SSH (sshd log: $(hdir "$h")/sshd.log)"
}

cmd_reset() {
  local h sock ids=()
  [ -f "$DIR/env" ] || die "the testbed is not up"
  (($#)) || set -- "${HOSTS[@]}"
  for h in "$@"; do
    check_host "$h"
    sock=$(host_docker_host "$h")
    # A host's own engine is the testbed's: all of it goes. The shared (local) one of loopback
    # mode keeps what compose did not make.
    if [ "$(mode)" = netns ]; then
      mapfile -t ids < <(docker -H "$sock" ps -aq)
    else
      mapfile -t ids < <(docker -H "$sock" ps -aq --filter label=com.docker.compose.project)
    fi
    ((${#ids[@]} == 0)) || docker -H "$sock" rm -f "${ids[@]}" >/dev/null
    docker -H "$sock" network prune -f >/dev/null
    find "$(runtime_root "$h")" -mindepth 1 -delete
  done
}

# ---- main ------------------------------------------------------------------------------------

usage() {
  sed -n '2,/testbed.sh reset/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
sub=$1
shift
[ "$(id -u)" = 0 ] || die "the testbed needs root (network namespaces, sshd, dockerd): run it as root"
[[ "$DIR" = /* && "$DIR" != *[[:space:]\"\'\$\\]* ]] || die "HL_TESTBED_DIR must be an absolute path without spaces or quotes: '$DIR'"
[[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,4}$ ]] || die "HL_TESTBED_PREFIX must be 1-5 lowercase letters or digits: '$PREFIX'"
[[ "$SUBNET_PREFIX" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "HL_TESTBED_SUBNET must be the first three octets of a /24, e.g. 10.213.7: '$SUBNET_PREFIX'"
mkdir -p "$DIR"
if [ "$sub" != status ]; then
  # One command at a time on a testbed. What it starts in the background must not inherit fd 9
  # (9>&- on each), or the lock would outlive the command.
  exec 9>"$DIR/lock"
  flock 9
fi

case "$sub" in
up) [ $# = 0 ] || usage && cmd_up ;;
down) [ $# = 0 ] || usage && cmd_down ;;
status) [ $# = 0 ] || usage && cmd_status ;;
cut) [ $# = 1 ] || usage && cmd_cut "$1" ;;
restore) [ $# = 1 ] || usage && cmd_restore "$1" ;;
reset) cmd_reset "$@" ;;
*) usage ;;
esac
