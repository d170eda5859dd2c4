# Shared helpers for the project's scripts (sourced, not run).
LATECHUNK_CACHE=${LATECHUNK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/latechunk}
UV_VERSION=0.13.9

log() { printf '[latechunk] %s\n' "$*" >&2; }
die() { printf '[latechunk] error: %s\n' "$*" >&2; exit 1; }

# Print the path of a uv binary, installing the pinned version into the cache on first use.
ensure_uv() {
    local dir="$LATECHUNK_CACHE/uv-$UV_VERSION"
    if [[ ! -x "$dir/bin/uv" ]]; then
        command -v python3 >/dev/null || die "python3 is required"
        log "installing uv $UV_VERSION into $dir"
        python3 -m venv "$dir" >&2
        "$dir/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2
    fi
    echo "$dir/bin/uv"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stop the process in a pid file: TERM, up to 60 s to exit, then KILL.
stop_pidfile() {
    local name=$1 pidfile=$2
    if pid_alive "$pidfile"; then
        local pid; pid=$(cat "$pidfile")
        log "stopping $name (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}
