"""Measures a function's init phase locally: from process start to its first Runtime API
request (GET /2018-06-01/runtime/invocation/next). Usage: measure-init.py BINARY [RUNS]."""
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

binary, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
first = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        first.set()
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
           AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
           FANOUT_TOPIC_ARN="arn:aws:sns:us-east-1:000000000000:t", FANOUT_QUEUE_URL="http://127.0.0.1:1/q",
           FANOUT_DEAD_LETTER_QUEUE_URL="http://127.0.0.1:1/dlq", AWS_LAMBDA_FUNCTION_NAME="fanout",
           AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512", AWS_LAMBDA_FUNCTION_VERSION="$LATEST")
times = []
for _ in range(runs):
    first.clear()
    start = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not first.wait(10):
        p.kill()
        sys.exit(f"{binary}: no Runtime API request within 10 s")
    times.append((time.perf_counter() - start) * 1000)
    p.kill()
    p.wait()
print(f"{os.path.basename(binary)}: init {statistics.median(times):.1f} ms median, "
      f"{min(times):.1f}–{max(times):.1f} ms over {runs} runs")
