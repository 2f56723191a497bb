#!/usr/bin/env python3
"""Peak resident memory of the processes whose environment matches a regular expression.

Samples /proc every 20 ms until SIGTERM/SIGINT, then prints the largest VmHWM seen (KiB)
and how many matching processes there were. Used by e2e-emulator.sh to measure the producer
function's memory while the emulator runs it: its processes carry
AWS_LAMBDA_FUNCTION_NAME=<name of the producer>.
"""
import os
import re
import signal
import sys
import time

pattern = re.compile(sys.argv[1].encode())
peak, pids, running = 0, set(), True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
me = str(os.getpid())
while running:
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if not pattern.search(f.read()):
                    continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
                        pids.add(pid)
        except OSError:
            continue
    time.sleep(0.02)
print(f"peak_rss_kib {peak} processes {len(pids)}")
