"""The password hash: what the app's own hash costs a replay on this machine.

Each report states:

- the hash's CPU cost, measured with the function the benchmarked service calls (``minitwit.auth.
  hash_password`` of ``BENCH_SERVICE_DIR`` too, so a side-by-side run states each side's own hash);
- the CPU the replay's registers need, as a share of what the cores offered during the run;
- how many registers the generator had in flight at once, against how many hashes the cores
  can finish within the simulator's timeout when they do nothing else;
- for local runs, the highest throughput possible if every request cost only what the no-op
  endpoint costs (framework + generator) and registers additionally paid their hash.
"""

import json
import math
import os
import subprocess
import sys

from bench.engines import Sample
from bench.local import SERVICE

REGISTER = "register"
# Runs in the benchmarked service's environment: its hash function, best of N, on the calling thread.
# Imported from minitwit.auth, which has it in every version (minitwit.passwords came with argon2id).
MEASURE = """
import json, sys, time
from minitwit.auth import hash_password
best, method = float("inf"), ""
for _ in range(int(sys.argv[1])):
    started = time.thread_time()
    method = hash_password("correct horse battery staple").rsplit("$", 2)[0]
    best = min(best, time.thread_time() - started)
print(json.dumps([method, best]))
"""


def hash_cost(samples: int = 3) -> tuple[str, float]:
    """The service's hash method (the hash without salt and digest) and CPU seconds of one hash."""
    env = {**os.environ, "PYTHONPATH": str(SERVICE)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(samples)], env=env, capture_output=True, text=True, check=True
    )
    method, seconds = json.loads(out.stdout.strip().splitlines()[-1])
    return method, seconds


def max_in_flight(samples: list[Sample], label: str = REGISTER) -> int:
    """The most requests labelled ``label`` outstanding at the same moment on the client side.

    A request that timed out stops counting at the timeout, while the server may still be
    hashing it: this is a lower bound of the server's concurrency.
    """
    events = []
    for s in samples:
        if s.label == label:
            events += [(s.started, 1), (s.started + s.latency, -1)]
    events.sort()  # at the same instant an end (-1) sorts before a start (+1)
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def hash_floor(
    samples: list[Sample],
    wall_s: float,
    cores: int,
    timeout_s: float,
    cost: tuple[str, float],
    noop_cpu_us: float | None = None,
) -> dict:
    """The floor's figures for one replay (see the module docstring)."""
    method, hash_s = cost
    registers = sum(1 for s in samples if s.label == REGISTER)
    floor = {
        "method": method,
        "hash_cpu_ms": round(hash_s * 1000, 1),
        "registers": registers,
        "registers_cpu_s": round(registers * hash_s, 2),
        "registers_share_of_cpu": round(registers * hash_s / (cores * wall_s), 3) if wall_s else None,
        "max_registers_in_flight": max_in_flight(samples),
        "cores": cores,
        "timeout_s": timeout_s,
        "hashes_within_timeout": math.floor(cores * timeout_s / hash_s + 1e-9),  # 2 * 0.3 / 0.1 is 5.999...
        "ceiling_rps": None,
        "ceiling_vs_noop": None,
    }
    if noop_cpu_us:
        noop_s = len(samples) * noop_cpu_us / 1e6
        needed_s = registers * hash_s + noop_s
        floor["ceiling_rps"] = round(len(samples) * cores / needed_s)
        floor["ceiling_vs_noop"] = round(noop_s / needed_s, 3)  # both bounded by CPU alone
    return floor
