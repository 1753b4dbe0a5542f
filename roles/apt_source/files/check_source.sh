#!/bin/bash
# Is the apt source reachable from this host? Prints one line:
#   OK <uri> | UNREACHABLE <uri> <reason>
# Needs only bash and coreutils (a bare host has no curl or python).
# Usage: check_source.sh URI SUITE TIMEOUT
uri=$1 suite=$2 timeout=${3:-10}
case "$uri" in
  file:*)
    dir=${uri#file:}
    if [ -r "$dir/dists/$suite/InRelease" ]; then echo "OK $uri"; else echo "UNREACHABLE $uri no $dir/dists/$suite/InRelease"; fi
    exit 0 ;;
  http://*)
    rest=${uri#http://}; hostport=${rest%%/*}; path=/${rest#*/}
    [ "$rest" = "$hostport" ] && path=/
    host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$hostport" ] && port=80
    status=$(timeout "$timeout" bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 1
      printf "HEAD %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
      head -n1 <&3' "$host" "$port" "${path%/}/dists/$suite/InRelease" 2>/dev/null | tr -d '\r')
    case "$status" in
      "HTTP/"*" 200"*) echo "OK $uri" ;;
      "") echo "UNREACHABLE $uri no answer from $host:$port within ${timeout}s" ;;
      *) echo "UNREACHABLE $uri $status" ;;
    esac
    exit 0 ;;
  *) echo "UNREACHABLE $uri unsupported scheme (http:// or file:)"; exit 0 ;;
esac
