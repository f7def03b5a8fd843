#!/usr/bin/env python3
"""After the suite: every line the test servers logged is JSON (or one of voxprov's own
start-up refusals), and no secret a test created or was shown (noted by tests/common in
target/test-secrets/) appears in any of them.

    python3 scripts/check-logs.py [target]
"""
import json
import pathlib
import sys

target = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target")
secrets = set()
for f in (target / "test-secrets").glob("*.txt"):
    secrets.update(line.strip() for line in f.read_text(errors="replace").splitlines() if len(line.strip()) >= 8)
logs = sorted((target / "test-logs").glob("*.log"))
if not logs:
    sys.exit("check-logs: no server logs in %s/test-logs (did the suite run?)" % target)
lines = json_lines = 0
other = []
leaks = []
for log in logs:
    text = log.read_text(errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        lines += 1
        try:
            json.loads(line)
            json_lines += 1
        except ValueError:
            # A server that refused to start says so on stderr in words; anything else is
            # a log line a collector could not read.
            if not line.startswith(("voxprov: ", "error: ")):
                other.append("%s:%d: %s" % (log.name, n, line[:160]))
    for s in secrets:
        if s in text:
            leaks.append("%s holds a secret the tests created (%s…)" % (log.name, s[:4]))
print("check-logs: %d logs, %d lines (%d JSON), %d secrets searched for"
      % (len(logs), lines, json_lines, len(secrets)))
for o in other[:20]:
    print("not JSON:", o)
for l in leaks[:20]:
    print("LEAK:", l)
sys.exit(1 if leaks or other else 0)
