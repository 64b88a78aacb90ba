"""The showdown harness: jwt-validator (native and wasm) against the Node baseline and its peers.

    python3 bench/showdown.py [--quick] [--out DIR] [--render-only]

Modules, by concern (each phase returns its part of results.json; report and chart are pure):
  cli          the command line and the phases in order
  context      the run's settings, paths, environment, secret and tokens
  contenders   who runs and how: contenders and host modes (the one place to add either)
  prepare      builds, npm ci, the HS256 token and the seven-key JWKS with its tokens
  builds       clean and incremental build times (native, wasm, wasm-dev)
  servers      starting, readiness, contract checks and stopping of server processes
  http1        raw-socket HTTP/1.1 and the fixed-rate client
  load         wrk runs and the fixed-rate runs, with status counts and CPU per request
  measure      sizes, cold starts, idle RSS, criterion verify cost, containers
  floors       runtime floors: ours ÷ floor per host mode and algorithm
  gateway      gateway mode: proxies in front of an upstream, with and without auth
  report       summary and report.md
  chart        chart.svg
  common       paths, failures, progress, /proc readers, formatting
"""
