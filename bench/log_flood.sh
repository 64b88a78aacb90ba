#!/usr/bin/env bash
# How many bytes of decision log a refused request costs under a flood (issue 22, item 6): the
# native server with its default logging, wrk with 4 connections for SECONDS, half the requests a
# token with a bad signature. Prints refusals (from /metrics), log bytes and lines (stderr), and
# log bytes per refused request.
#
#   bench/log_flood.sh BINARY [SECONDS] [VAR=VALUE...]   e.g. JWT_LOG_REFUSALS_PER_SEC=0 for no bound
#
# FLOOD_KEEP=FILE keeps the server's stderr there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="$(realpath "${1:?usage: bench/log_flood.sh BINARY [SECONDS] [VAR=VALUE...]}")"
seconds="${2:-30}"
shift $(($# > 1 ? 2 : 1))

dir="$(mktemp -d)"
server=""
trap '[[ -n "$server" ]] && kill "$server" 2>/dev/null; [[ -n "${FLOOD_KEEP:-}" ]] && cp "$dir/stderr" "$FLOOD_KEEP"; rm -rf "$dir"' EXIT
export JWT_SECRET="log-flood-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export JWT_ISSUER=log-flood
for setting in "$@"; do export "${setting?}"; done

"$bin" --listen 127.0.0.1:0 >"$dir/stdout" 2>"$dir/stderr" &
server=$!
for _ in $(seq 200); do
    addr="$(sed -n 's|^jwt-validator listening on http://||p' "$dir/stdout")"
    [[ -n "$addr" ]] && break
    sleep 0.05
done
[[ -n "$addr" ]] || { cat "$dir/stderr" >&2; echo "bench/log_flood.sh: the server did not listen" >&2; exit 1; }

valid="$("$bin" mint --ttl 86400)"
# The last signature character changed: a refusal with code invalid_signature.
last="${valid: -1}"
invalid="${valid%?}$([[ "$last" == A ]] && echo B || echo A)"
before=$(wc -c <"$dir/stderr")
FLOOD_VALID="$valid" FLOOD_INVALID="$invalid" \
    wrk -t2 -c4 -d"${seconds}s" -s bench/log_flood.lua "http://$addr/validate" >"$dir/wrk"
sleep 1.5 # the summary of the last second's suppressed lines
refused=$(curl -s "http://$addr/metrics" |
    awk '/^jwtv_decisions_total\{route="validate",result="deny"/ { n += $NF } END { print n + 0 }')
kill -TERM "$server"
wait "$server" || true
server=""
bytes=$(($(wc -c <"$dir/stderr") - before))
lines=$(($(wc -l <"$dir/stderr") - $(head -c "$before" "$dir/stderr" | wc -l)))
requests=$(awk '/requests in/ { print $1 }' "$dir/wrk")
printf 'requests %s, refused %s, log %s bytes in %s lines, %s bytes per refused request\n' \
    "$requests" "$refused" "$bytes" "$lines" "$(awk -v b="$bytes" -v r="$refused" 'BEGIN { printf "%.2f", r ? b / r : 0 }')"
