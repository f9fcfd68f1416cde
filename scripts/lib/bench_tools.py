#!/usr/bin/env python3
"""Helpers for scripts/bench-cluster and scripts/bench-registry (stdlib only).

    bench_tools.py config PATH --redis FLOW [--keys N] [--admin FLOW] [--plan 'NAME: FLOW']... [--key 'KEY PLAN']...
    bench_tools.py redis-stats PORT...          INFO commandstats/errorstats/cpu of each node, as JSON
    bench_tools.py decisions URL                 sum of sluice_decisions_total on a /metrics URL
    bench_tools.py metric URL NAME               one unlabelled metric's value
    bench_tools.py failover-load ...             paced checks on a few keys, SIGKILLs a node mid-run
    bench_tools.py failover-report ...           reads failover-load's records, prints the figures
    bench_tools.py preload ...                   creates runtime keys through the admin API, concurrently
    bench_tools.py churn ...                     creates, moves and revokes runtime keys at a fixed rate
                                                 (--mode reset: resets preloaded keys' state instead)
    bench_tools.py key-owners ...                key ids, their hash slots and the masters owning them
    bench_tools.py registry-pipe ...             RESP for redis-cli --pipe: registry.lua creates
    bench_tools.py key-id --secret S KEY         Sluice's key id of an API key
    bench_tools.py wrk-check PATH ...            a wrk script: POST /v1/check over N keys, or one key
    bench_tools.py cpu-sample NAME=PID[:tree]... CPU ticks of whole processes (all threads), as JSON
    bench_tools.py cpu-report RESULTS            the "CPU per request" table of scripts/bench
    bench_tools.py llm-config PATH ...           the config of scripts/bench-llm (a classic and an LLM plan)
    bench_tools.py commandstats PORT             INFO commandstats (calls, µs) and INFO cpu of one node, as JSON
    bench_tools.py machine-sample --shell PID    the machine's busy CPU and a shell's children's, as JSON
    bench_tools.py llm-report RESULTS ...        the tables of scripts/bench-llm
    bench_tools.py ledger-cost ...               callgrind instructions per ledger call (scripts/lua-cost ledger)
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor


# ---- config -------------------------------------------------------------------------------------

def cmd_config(args):
    """The config scripts/bench writes (10,000 keys, every 10th on a tight plan), with another
    redis section and optional admin listener, plans and keys."""
    with open(args.path, "w") as f:
        f.write(f"redis: {args.redis}\n")
        f.write("logging: { level: warning }\n")
        if args.admin:
            f.write(f"admin: {args.admin}\n")
        f.write("plans:\n")
        f.write("  roomy:\n    throttle: { rate: 1000, burst: 1000 }\n    quota: { limit: 100000000, period: month }\n")
        f.write("    routes:\n      \"POST /v1/predict\": { rate: 1000, burst: 1000, additional: true }\n")
        f.write("  tight:\n    throttle: { rate: 1, burst: 2 }\n    quota: { limit: 100000000, period: month }\n")
        f.write("    routes:\n      \"POST /v1/predict\": { rate: 1, burst: 2, additional: true }\n")
        f.write("  unbounded:\n    throttle: { rate: 1000000, burst: 1000000 }\n    quota: { limit: 1000000000000, period: month }\n")
        f.write("    routes:\n      \"POST /v1/predict\": { rate: 1000000, burst: 1000000, additional: true }\n")
        for plan in args.plan:
            name, flow = plan.split(":", 1)
            f.write(f"  {name.strip()}: {flow.strip()}\n")
        f.write("api_keys:\n  - { key: latency-key, plan: unbounded }\n")
        for i in range(args.keys):
            f.write(f"  - {{ key: bench-key-{i:05d}, plan: {'tight' if i % 10 == 0 else 'roomy'} }}\n")
        for key in args.key:
            k, p = key.split()
            f.write(f"  - {{ key: {k}, plan: {p} }}\n")


# ---- Redis and metrics ----------------------------------------------------------------------------

def redis_info(port, section):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", section], capture_output=True, text=True, timeout=10).stdout
    return dict(line.split(":", 1) for line in out.replace("\r", "").splitlines() if ":" in line and not line.startswith("#"))


def node_stats(port):
    """Calls (and rejected calls) per command, errors per kind, CPU seconds, role."""
    stats = {"commands": {}, "rejected": {}, "errors": {}}
    for name, value in redis_info(port, "commandstats").items():
        fields = dict(kv.split("=", 1) for kv in value.split(","))
        command = name.removeprefix("cmdstat_")
        stats["commands"][command] = int(fields.get("calls", 0))
        stats["rejected"][command] = int(fields.get("rejected_calls", 0))
    for name, value in redis_info(port, "errorstats").items():
        stats["errors"][name.removeprefix("errorstat_")] = int(value.split("=", 1)[1])
    cpu = redis_info(port, "cpu")
    stats["cpu"] = float(cpu.get("used_cpu_sys", 0)) + float(cpu.get("used_cpu_user", 0))
    stats["role"] = redis_info(port, "replication").get("role", "?")
    return stats


def cmd_redis_stats(args):
    json.dump({str(p): node_stats(p) for p in args.ports}, sys.stdout)


def http_get(url, timeout=5):
    host, port, path = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def split_url(url):
    m = re.match(r"http://([^:/]+):(\d+)(/.*)?$", url)
    return m.group(1), int(m.group(2)), m.group(3) or "/"


def metric_samples(url):
    _, text = http_get(url)
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            yield name_labels, float(value)


def cmd_decisions(args):
    """Every decision, or (--result) those of one result (allowed, unavailable, degraded...)."""
    label = f'result="{args.result}"' if args.result else ""
    print(int(sum(v for n, v in metric_samples(args.url)
                  if (n.startswith("sluice_decisions_total{") or n == "sluice_decisions_total") and label in n)))


def cmd_metric(args):
    print(int(sum(v for n, v in metric_samples(args.url) if n == args.name or n.startswith(args.name + "{"))))


def cluster_masters(port):
    """The slot ranges of every master in CLUSTER NODES, as [(first, last, master port)]."""
    out = subprocess.run(["redis-cli", "-p", str(port), "CLUSTER", "NODES"], capture_output=True, text=True, timeout=10).stdout
    ranges = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 8 or "master" not in parts[2].split(","):
            continue
        node_port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
        for r in parts[8:]:
            if r.startswith("["):
                continue  # a slot being migrated
            first, _, last = r.partition("-")
            ranges.append((int(first), int(last or first), node_port))
    return ranges


def cmd_key_owners(args):
    """Each API key's id (POST /admin/v1/keys/lookup), the hash slot of its state and the master
    that owns that slot now."""
    host, port, _ = split_url(args.admin)
    conn = http.client.HTTPConnection(host, port, timeout=5)
    ranges = cluster_masters(args.seed)
    owners = {}
    for key in args.keys:
        status, body = admin_request(conn, "POST", "/admin/v1/keys/lookup", args.token, {"api_key": key})
        kid = json.loads(body)["id"]
        slot = int(subprocess.run(["redis-cli", "-p", str(args.seed), "CLUSTER", "KEYSLOT", f"sl:{{{kid}}}:q"],
                                  capture_output=True, text=True, timeout=10).stdout.strip())
        master = next((p for a, b, p in ranges if a <= slot <= b), None)
        owners[key] = {"id": kid, "slot": slot, "master": master}
    json.dump(owners, sys.stdout)


# ---- failover load --------------------------------------------------------------------------------

def classify(status, body):
    """What a /v1/check answer was: normal (a decision from Redis), degraded, unavailable, other."""
    if status == 200:
        try:
            j = json.loads(body)
        except ValueError:
            return "other"
        if j.get("degraded"):
            return "degraded"
        return "allowed" if j.get("allowed") else "denied"
    if status == 503 and "backend_unavailable" in body:
        return "unavailable"
    return f"status_{status}"


def check_loop(host, port, key, rate, start, stop_at, records):
    """Paced POST /v1/check for one key over one keep-alive connection; one record per request:
    (sent, answered, outcome), seconds since start."""
    body = json.dumps({"api_key": key, "route": "POST /v1/predict", "cost": 1})
    interval = 1.0 / rate
    conn = None
    n = 0
    while True:
        due = start + n * interval
        now = time.monotonic()
        if due >= stop_at:
            break
        if due > now:
            time.sleep(due - now)
        n += 1
        sent = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("POST", "/v1/check", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            outcome = classify(r.status, r.read().decode())
        except Exception as e:  # connection refused, reset, timeout: counted, then a new connection
            outcome = "client_error:" + type(e).__name__
            try:
                conn.close()
            except Exception:
                pass
            conn = None
        records.append((sent - start, time.monotonic() - start, outcome))


def cmd_failover_load(args):
    """Checks on every key at a fixed rate each (one thread a key); SIGKILLs --kill-pid at
    --kill-at seconds. Writes {"kill_at", "keys": {key: [(sent, answered, outcome)...]}}."""
    host, port, _ = split_url(args.url)
    start = time.monotonic() + 0.2
    stop_at = start + args.duration
    records = {}
    threads = []
    for spec in args.keys:
        key, rate = spec.rsplit(":", 1)
        records[key] = []
        t = threading.Thread(target=check_loop, args=(host, port, key, float(rate), start, stop_at, records[key]), daemon=True)
        t.start()
        threads.append(t)
    time.sleep(max(0.0, start + args.kill_at - time.monotonic()))
    killed = time.monotonic() - start
    killed_wall = time.time()
    os.kill(args.kill_pid, signal.SIGKILL)
    for t in threads:
        t.join()
    with open(args.out, "w") as f:
        json.dump({"kill_at": killed, "kill_wall": killed_wall, "keys": records}, f)


def cmd_failover_report(args):
    """Per key: outcome counts; for keys on the killed master, the time without a normal answer
    around the kill; for the others, their longest gap between normal answers."""
    data = json.load(open(args.records))
    kill = data["kill_at"]
    roles = dict(spec.split("=", 1) for spec in args.role)
    result = {"kill_at": kill, "keys": {}}
    # When the cluster saw it: the first "Marking node ... as failing" on any node, and the
    # replica's "Failover election won" (Redis log times are local, to the millisecond).
    for name, pattern, logs in (("marked_failing_s", "as failing", args.node_log), ("promoted_s", "Failover election won", args.replica_log)):
        times = []
        for log in logs:
            for line in open(log, errors="replace"):
                if pattern in line:
                    m = re.search(r"(\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3})", line)
                    if m:
                        wall = time.mktime(time.strptime(m.group(1)[:-4], "%d %b %Y %H:%M:%S")) + int(m.group(1)[-3:]) / 1000
                        if wall >= data["kill_wall"] - 0.5:
                            times.append(wall - data["kill_wall"])
        result[name] = min(times, default=None)
    for key, recs in data["keys"].items():
        normal = [a for s, a, o in recs if o in ("allowed", "denied")]
        counts = {}
        for _, _, o in recs:
            counts[o] = counts.get(o, 0) + 1
        gaps = [b - a for a, b in zip(normal, normal[1:])]
        after_kill = [a for a in normal if a > kill]
        last_before = max([a for a in normal if a <= kill], default=None)
        first_bad = min([a for s, a, o in recs if o not in ("allowed", "denied") and a > kill], default=None)
        bad_after = [a for s, a, o in recs if o not in ("allowed", "denied") and a > kill]
        # Normal again: the first normal answer after the last abnormal one.
        recovered = min([a for a in after_kill if not bad_after or a > max(bad_after)], default=None)
        result["keys"][key] = {
            "role": roles.get(key, "other"),
            "requests": len(recs),
            "outcomes": counts,
            "longest_gap_s": max(gaps, default=None),
            "last_normal_before_kill_s": last_before,
            "first_abnormal_after_kill_s": first_bad,
            "normal_again_s": recovered,
            "outage_s": (recovered - kill) if (recovered is not None and bad_after) else 0.0,
            "rate": len(recs) / max(1e-9, (recs[-1][0] - recs[0][0])) if len(recs) > 1 else 0,
            "latency_p99_ms": percentile([(a - s) * 1000 for s, a, o in recs], 99),
            "abnormal_wait_ms": percentile([(a - s) * 1000 for s, a, o in recs if o not in ("allowed", "denied")], 50),
        }
    json.dump(result, sys.stdout)


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# ---- runtime keys -----------------------------------------------------------------------------------

def admin_request(conn, method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse()
    return r.status, r.read()


def preload_worker(job):
    url, token, plan, prefix, first, last = job
    host, port, _ = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    statuses = {}
    for i in range(first, last):
        for attempt in range(3):
            try:
                status, _ = admin_request(conn, "POST", "/admin/v1/keys", token, {"plan": plan, "api_key": f"{prefix}{i:06d}"})
                break
            except Exception:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                status = -1
        statuses[status] = statuses.get(status, 0) + 1
    conn.close()
    return statuses


def cmd_preload(args):
    """Creates --count runtime keys PREFIX000000... on --plan through POST /admin/v1/keys, with
    --workers processes (one keep-alive connection each). Prints {"seconds", "statuses"}."""
    per = (args.count + args.workers - 1) // args.workers
    jobs = [(args.url, args.token, args.plan, args.prefix, w * per, min(args.count, (w + 1) * per)) for w in range(args.workers)]
    jobs = [j for j in jobs if j[4] < j[5]]
    started = time.monotonic()
    statuses = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for result in pool.map(preload_worker, jobs):
            for k, v in result.items():
                statuses[k] = statuses.get(k, 0) + v
    json.dump({"seconds": time.monotonic() - started, "statuses": {str(k): v for k, v in statuses.items()}}, sys.stdout)


def key_id(secret, api_key):
    """Sluice's key id (KeyDigester): HMAC-SHA-256 under the secret of the key's SHA-256, its
    first 15 bytes in base64url (20 characters)."""
    import base64, hashlib, hmac
    mac = hmac.new(secret.encode(), hashlib.sha256(api_key.encode()).digest(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:15]).decode()


def cmd_registry_pipe(args):
    """RESP for redis-cli --pipe: one EVALSHA of Sluice's registry script (prelude + registry.lua,
    loaded as --sha) per key, with KeyRegistry.change's keys and arguments: the hash, version and
    token keys; "create", the key id, the record RuntimeKey encodes to, the notice channel. So
    the script itself makes the record, version, token and notice, as for an admin create."""
    out = sys.stdout.buffer
    created = int(time.time() * 1000)
    keys = ["sluice:registry:{keys}", "sluice:registry:{keys}:version", "sluice:registry:{keys}:token"]
    def command(*parts):
        chunks = [b"*%d\r\n" % len(parts)]
        for a in parts:
            b = a.encode()
            chunks.append(b"$%d\r\n%s\r\n" % (len(b), b))
        out.write(b"".join(chunks))
    for i in range(args.first, args.first + args.count):
        kid = key_id(args.secret, f"{args.prefix}{i:06d}")
        record = json.dumps({"id": kid, "plan": args.plan, "created": created}, separators=(",", ":"))
        command("EVALSHA", args.sha, "3", *keys, "create", kid, record, args.channel)


def cmd_key_id(args):
    print(key_id(args.secret, args.api_key))


def cmd_churn(args):
    """Runtime key changes on one instance at --rate a second for --duration seconds: create
    churn key i, move it to --move-plan, revoke it, in turn (each op one request, paced).
    Prints counts per op and status, and the ops' p50/p99 latency."""
    host, port, _ = split_url(args.url)
    conn = http.client.HTTPConnection(host, port, timeout=5)
    interval = 1.0 / args.rate
    start = time.monotonic()
    n = 0
    ids = {}
    counts, latencies = {}, []
    while True:
        due = start + n * interval
        if due >= start + args.duration:
            break
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        key_index, step = divmod(n, 3)
        key = f"{args.prefix}{args.round}-{key_index:06d}"
        n += 1
        t0 = time.monotonic()
        try:
            if args.mode == "reset":
                # The control: an admin change of limit state, not of the registry (the reset
                # script on Redis, a "state" notice every instance hears), on preloaded keys.
                op = "reset"
                kid = key_id(args.secret, f"{args.reset_prefix}{1000 + n % 1000:06d}")
                status, _ = admin_request(conn, "POST", f"/admin/v1/keys/{kid}/state/reset", args.token, None)
            elif step == 0:
                op = "create"
                status, body = admin_request(conn, "POST", "/admin/v1/keys", args.token, {"plan": args.plan, "api_key": key})
                if status == 201:
                    ids[key] = json.loads(body)["id"]
            elif key in ids:
                if step == 1:
                    op = "move"
                    status, _ = admin_request(conn, "PUT", f"/admin/v1/keys/{ids[key]}", args.token, {"plan": args.move_plan})
                else:
                    op = "revoke"
                    status, _ = admin_request(conn, "DELETE", f"/admin/v1/keys/{ids[key]}", args.token)
            else:
                op, status = "skipped", 0
        except Exception as e:
            op, status = "error", type(e).__name__
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
        latencies.append((time.monotonic() - t0) * 1000)
        counts[f"{op} {status}"] = counts.get(f"{op} {status}", 0) + 1
    elapsed = time.monotonic() - start
    json.dump({"ops": n, "seconds": elapsed, "rate": n / elapsed, "counts": counts,
               "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}, sys.stdout)


# ---- CPU per request ------------------------------------------------------------------------------

def cmd_wrk_check(args):
    """A wrk script for POST /v1/check: a random key of --prefix00000...(--keys - 1) a request,
    or always --key. done() prints one BENCH line like scripts/bench-lua/check-keys.lua's (socket
    errors, non-2xx, answers with "allowed":false), so the same parser reads both."""
    if args.key:
        key_expr = f'"{args.key}"'
    else:
        key_expr = f'string.format("{args.prefix}%05d", math.random(0, {args.keys - 1}))'
    with open(args.path, "w") as f:
        f.write(f"""-- Written by scripts/lib/bench_tools.py wrk-check.
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  denied = 0
end
function response(status, headers, body)
  if body and string.find(body, '"allowed":false', 1, true) then denied = denied + 1 end
end
request = function()
  local body = string.format('{{"api_key":"%s","route":"POST /v1/predict","cost":1}}', {key_expr})
  return wrk.format("POST", "/v1/check", {{ ["Content-Type"] = "application/json" }}, body)
end
done = function(summary, latency, requests)
  local total_denied = 0
  for _, thread in ipairs(threads) do total_denied = total_denied + (thread:get("denied") or 0) end
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d p999_us=%d non2xx=%d denied=%d\\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), summary.errors.status, total_denied))
end
""")


def proc_stat(pid):
    """/proc/PID/stat from field 3 (state) on: the command name, in parentheses, may hold spaces."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def process_tree(root):
    """ROOT and every process below it (nginx: the master and its workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(proc_stat(entry)[1]), []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass  # gone meanwhile
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(pids)


def cmd_cpu_sample(args):
    """utime + stime, in clock ticks (getconf CLK_TCK), of each named process: /proc/PID/stat of a
    process counts every thread it has or had (the kernel adds a thread's time to its process's
    when the thread exits), so a process's figure is the whole server, unlike the sum of
    /proc/PID/task/*/stat, which leaves out threads that have ended. NAME=PID:tree adds every
    process below PID (nginx's workers). Prints {"hz", "at", "procs": {NAME: {"pids", "ticks",
    "threads"}}}."""
    procs = {}
    for spec in args.procs:
        name, _, rest = spec.partition("=")
        pid, _, mode = rest.partition(":")
        pids = process_tree(int(pid)) if mode == "tree" else [int(pid)]
        ticks = threads = 0
        for p in pids:
            fields = proc_stat(p)
            ticks += int(fields[11]) + int(fields[12])  # utime (field 14), stime (field 15)
            threads += int(fields[17])  # num_threads (field 20)
        procs[name] = {"pids": pids, "ticks": ticks, "threads": threads}
    json.dump({"hz": os.sysconf("SC_CLK_TCK"), "at": time.monotonic(), "procs": procs}, sys.stdout)


# The issue that asked for this table measured these µs per request (nginx `return 204`, Sluice
# with an unknown key, Sluice's full decision, Redis per decision) and set the goals below.
ISSUE_US = {"nginx": 7.9, "unknown": 21.6, "decision": 43.8, "redis": 22.0}
GOAL_DECISION_OVER_NGINX = 2.5
GOAL_REDIS_LEG_OVER_NGINX = 1.0
GOAL_REDIS_SHARE = 0.6


def cmd_cpu_report(args):
    """The "CPU per request" table from cpu runs (one JSON line each: name, round, wrk's BENCH
    line, cpu-sample before and after, sluice_decisions_total and EVALSHA deltas, Redis's own
    INFO CPU delta): per target, the median over the rounds of its server's CPU µs a request."""
    runs = {}
    for line in open(args.results):
        r = json.loads(line)
        w = {k: float(v) for k, v in re.findall(r"(\w+)=(-?[\d.]+)", r["wrk"])}
        hz = r["after"]["hz"]
        def cpu_s(name, r=r, hz=hz):
            return (r["after"]["procs"][name]["ticks"] - r["before"]["procs"][name]["ticks"]) / hz
        r["requests"] = w.get("requests", 0)
        r["seconds"] = w.get("duration_us", 0) / 1e6
        r["w"] = w
        r["cpu_s"] = {name: cpu_s(name) for name in r["after"]["procs"]}
        r["same_pids"] = all(r["before"]["procs"][n]["pids"] == r["after"]["procs"][n]["pids"] for n in r["after"]["procs"])
        runs.setdefault(r["name"], []).append(r)

    def per_request(name, proc):
        return [r["cpu_s"][proc] * 1e6 / max(1, r["requests"]) for r in runs[name]]

    rows = {
        "nginx": per_request("nginx", "nginx"),
        "unknown": per_request("unknown", "sluice"),
        "decision": per_request("decision", "sluice"),
        "redis": per_request("decision", "redis"),
    }
    med = {k: statistics.median(v) for k, v in rows.items()}
    first = runs["decision"][0]["after"]["procs"]
    nginx_pids = runs["nginx"][0]["after"]["procs"]["nginx"]["pids"]
    def rps(name):
        return statistics.median(r["requests"] / max(1e-9, r["seconds"]) for r in runs[name])
    def busy(name, proc):
        return statistics.median(r["cpu_s"][proc] / max(1e-9, r["seconds"]) for r in runs[name])
    def rounds(values):
        return " / ".join(f"{v:.1f}" for v in values)

    n = len(runs["decision"])
    print()
    print(f"CPU per request: utime + stime of each server's whole process (every thread; nginx: its master and "
          f"{len(nginx_pids) - 1} workers) from /proc/PID/stat, in ticks of 1/{runs['decision'][0]['after']['hz']} s, "
          f"sampled right before and after a wrk -t{args.threads} -c{args.connections} -d{args.duration} run, "
          f"divided by the requests wrk counted; median of {n} rounds, each running nginx, Sluice with an unknown key and "
          f"Sluice deciding in turn. Decisions: {args.keys:,} API keys on a plan with a throttle and a monthly quota, "
          f"usage recorded (retention 90 days), none over its limits; Redis's CPU over those runs is divided by the same requests.")
    print()
    print("| target | processes (threads) | requests/s | cores busy | CPU µs / request | rounds | the issue's µs |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    print(f"| nginx `return 204` | master + {len(nginx_pids) - 1} workers ({first['nginx']['threads']}) | {rps('nginx'):,.0f} | "
          f"{busy('nginx', 'nginx'):.2f} | {med['nginx']:.1f} | {rounds(rows['nginx'])} | {ISSUE_US['nginx']} |")
    print(f"| Sluice `/v1/check`, unknown key (HTTP path only, no Redis) | 1 ({first['sluice']['threads']}) | {rps('unknown'):,.0f} | "
          f"{busy('unknown', 'sluice'):.2f} | {med['unknown']:.1f} | {rounds(rows['unknown'])} | {ISSUE_US['unknown']} |")
    print(f"| Sluice `/v1/check`, full decision | 1 ({first['sluice']['threads']}) | {rps('decision'):,.0f} | "
          f"{busy('decision', 'sluice'):.2f} | {med['decision']:.1f} | {rounds(rows['decision'])} | {ISSUE_US['decision']} |")
    print(f"| Redis, per decision (over the decision runs) | 1 ({first['redis']['threads']}) | – | "
          f"{busy('decision', 'redis'):.2f} | {med['redis']:.1f} | {rounds(rows['redis'])} | {ISSUE_US['redis']} |")
    print()
    ratio_decision = med["decision"] / med["nginx"]
    ratio_leg = (med["decision"] - med["unknown"]) / med["nginx"]
    redis_goal = GOAL_REDIS_SHARE * ISSUE_US["redis"]
    def met(ok):
        return "yes" if ok else "no"
    print("| goal (the issue's) | this run | the issue's figures | goal | met |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(f"| Sluice decision / nginx | {ratio_decision:.2f} | {ISSUE_US['decision'] / ISSUE_US['nginx']:.2f} | "
          f"≤ {GOAL_DECISION_OVER_NGINX} | {met(ratio_decision <= GOAL_DECISION_OVER_NGINX)} |")
    print(f"| Redis leg on Sluice's side: (decision − unknown key) / nginx | {ratio_leg:.2f} | "
          f"{(ISSUE_US['decision'] - ISSUE_US['unknown']) / ISSUE_US['nginx']:.2f} | ≤ {GOAL_REDIS_LEG_OVER_NGINX} | "
          f"{met(ratio_leg <= GOAL_REDIS_LEG_OVER_NGINX)} |")
    print(f"| Redis CPU µs / decision | {med['redis']:.1f} ({med['redis'] / ISSUE_US['redis']:.2f} × the issue's) | "
          f"{ISSUE_US['redis']} | ≤ {redis_goal:.1f} ({GOAL_REDIS_SHARE} × {ISSUE_US['redis']}) | {met(med['redis'] <= redis_goal)} |")
    print()

    # Cross-checks: what the servers counted themselves, and the CPU the idle ones spent meanwhile.
    dec = runs["decision"]
    unk = runs["unknown"]
    total = sum(r["requests"] for r in dec)
    counted = sum(r["decisions"] for r in dec)
    unk_total = sum(r["requests"] for r in unk)
    unk_counted = sum(r["decisions"] for r in unk)
    evalsha = sum(r["evalsha"] for r in dec)
    info_us = statistics.median(r["redis_info_cpu_s"] * 1e6 / max(1, r["requests"]) for r in dec)
    denied = sum(r["w"].get("denied", 0) for r in dec)
    non2xx = {name: sum(r["w"].get("non2xx", 0) for r in runs[name]) for name in runs}
    errors = {name: sum(r["w"].get("errors", 0) for r in runs[name]) for name in runs}
    idle_redis = statistics.median(r["cpu_s"]["redis"] * 1e6 / max(1, r["requests"]) for r in unk)
    idle_sluice = statistics.median(r["cpu_s"]["sluice"] * 1e6 / max(1, r["requests"]) for r in runs["nginx"])
    changed = [f"{r['name']} round {r['round']}" for rs in runs.values() for r in rs if not r["same_pids"]]
    print(f"Cross-checks: `sluice_decisions_total` rose by {counted:,} over the decision runs, for {total:,.0f} answers wrk counted "
          f"({counted - total:+,.0f}: requests in flight when wrk stopped), and by {unk_counted:,} over the unknown-key runs "
          f"for {unk_total:,.0f}; {evalsha / max(1, total):.3f} EVALSHA a decision, {denied:.0f} denied decisions; Redis's own "
          f"`INFO cpu` gives {info_us:.1f} µs a decision. Non-2xx answers (nginx / unknown key / decisions): {non2xx['nginx']:.0f} / "
          f"{non2xx['unknown']:.0f} / {non2xx['decision']:.0f}; socket errors: "
          f"{errors['nginx']:.0f} / {errors['unknown']:.0f} / {errors['decision']:.0f}. "
          f"Meanwhile the idle servers spent: Redis {idle_redis:.2f} µs a request over the unknown-key runs, "
          f"Sluice {idle_sluice:.2f} µs a request over nginx's."
          + (f" Processes changed during: {', '.join(changed)}." if changed else ""))


# ---- LLM reservations (scripts/bench-llm, scripts/lua-cost ledger) ---------------------------------

# The issue's LLM plan (docs/ARCHITECTURE.md, "Token limits, reservations and leases"), its
# limits scaled up so that no request of the benchmark is denied; and a classic plan, the
# throttle and quota of scripts/bench's decisions.
LLM_PLANS = """\
  classic:
    throttle: { rate: 1000, burst: 1000 }
    quota: { limit: 100000000, period: month }
  llm:
    throttle: { rate: 1000, burst: 1000 }
    quota: { limit: 100000000, period: month }
    limits:
      tpm:   { counts: total_tokens, rate: 1000000, burst: 60000000 }
      daily: { counts: total_tokens, quota: { limit: 2000000000000, period: day } }
      spend: { counts: cost, quota: { limit: 50000000000000, period: month } }
    concurrency: { limit: 4, lease_ttl_s: 30 }
    prices: { "*": { input: 1, output: 1 } }
"""


def cmd_llm_config(args):
    """The config scripts/bench-llm runs: the classic and LLM plans, --keys API keys on each
    (classic-key-00000..., llm-key-00000...)."""
    with open(args.path, "w") as f:
        f.write(f"redis: {{ url: redis://127.0.0.1:{args.redis_port}/0, timeout_ms: 100 }}\n")
        f.write("logging: { level: warning }\n")
        f.write("plans:\n" + LLM_PLANS)
        f.write("api_keys:\n")
        for i in range(args.keys):
            f.write(f"  - {{ key: classic-key-{i:05d}, plan: classic }}\n")
            f.write(f"  - {{ key: llm-key-{i:05d}, plan: llm }}\n")


def cmd_commandstats(args):
    """INFO commandstats (calls and µs per command, the commands scripts run included) and INFO
    cpu (seconds, sys + user) of one node, as JSON."""
    commands = {}
    for name, value in redis_info(args.port, "commandstats").items():
        fields = dict(kv.split("=", 1) for kv in value.split(","))
        commands[name.removeprefix("cmdstat_")] = {"calls": int(fields.get("calls", 0)), "usec": int(fields.get("usec", 0))}
    cpu = redis_info(args.port, "cpu")
    json.dump({"commands": commands, "cpu": float(cpu.get("used_cpu_sys", 0)) + float(cpu.get("used_cpu_user", 0))}, sys.stdout)


def cmd_machine_sample(args):
    """The machine's busy CPU (user + nice + system + irq + softirq of every CPU, from /proc/stat)
    and the CPU of PID's waited-for children (cutime + cstime: the shell that runs wrk), in
    clock ticks, as JSON: with cpu-sample's servers, what everything else on the machine spent."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    stat = proc_stat(args.shell)
    json.dump({"busy": busy, "children": int(stat[13]) + int(stat[14]), "at": time.monotonic()}, sys.stdout)


# What each run of scripts/bench-llm measures, in the tables' order.
LLM_RUNS = {
    "check-classic": "`/v1/check`, classic plan (throttle + quota)",
    "check-llm": "`/v1/check`, LLM plan, with tokens (5 limits)",
    "pair": "`/v1/reserve` + `/v1/settle` of its id (a pair)",
}
LLM_GOAL = 2.0


def cmd_llm_report(args):
    """The tables of scripts/bench-llm from its runs (one JSON line each: name, round, wrk's
    BENCH line, cpu-sample and commandstats before and after): per run kind, the median over the
    rounds of each figure, per operation (a check, or a reserve + settle pair)."""
    runs = {}
    for line in open(args.results):
        r = json.loads(line)
        w = {k: float(v) for k, v in re.findall(r"(\w+)=(-?[\d.]+)", r["wrk"])}
        hz = r["after"]["hz"]
        cpu = {n: (r["after"]["procs"][n]["ticks"] - r["before"]["procs"][n]["ticks"]) / hz for n in r["after"]["procs"]}
        b, a = r["stats_before"]["commands"], r["stats_after"]["commands"]
        delta = {c: {"calls": a[c]["calls"] - b.get(c, {}).get("calls", 0), "usec": a[c]["usec"] - b.get(c, {}).get("usec", 0)}
                 for c in a}
        delta = {c: d for c, d in delta.items() if d["calls"] > 0 and c not in ("info", "ping")}
        # Operations: a check is one request; a pair is two (a reserve and its settle).
        ops = w["requests"] / (2 if r["name"] == "pair" else 1)
        # Everything else on the machine: its busy CPU less the servers' and wrk's (the shell's
        # children), over the same span (a little wider: the samples themselves).
        client = (r["machine_after"]["children"] - r["machine_before"]["children"]) / hz
        other = (r["machine_after"]["busy"] - r["machine_before"]["busy"]) / hz - client - cpu["sluice"] - cpu["redis"]
        runs.setdefault(r["name"], []).append({
            "w": w, "ops": ops, "seconds": w["duration_us"] / 1e6, "cpu": cpu, "cmd": delta,
            "codes": [c for c in re.findall(r"codes=(\S+)", r["wrk"]) if c != "none"],
            "info_cpu": r["stats_after"]["cpu"] - r["stats_before"]["cpu"], "client": client, "other": other,
            # Cores busy: over the spans the samples cover, which are a little longer than wrk's.
            "span": r["after"]["at"] - r["before"]["at"],
            "machine_span": r["machine_after"]["at"] - r["machine_before"]["at"],
        })
    med = statistics.median

    def per_op(name, f):
        return [f(r) / max(1, r["ops"]) for r in runs[name]]

    # Commands Sluice sends outside the scripts (the registry's position check once a second,
    # the persistence check): fewer than one in twenty operations in every run.
    background = {c for rs in runs.values() for r in rs for c in r["cmd"]
                  if c != "evalsha" and all(med(per_op(n, lambda r: r["cmd"].get(c, {}).get("calls", 0))) < 0.05 for n in runs)}
    fig = {}
    for name, rs in runs.items():
        redis = per_op(name, lambda r: r["cpu"]["redis"] * 1e6)
        fig[name] = {
            "rounds": len(rs),
            "ops_s": med(r["ops"] / r["seconds"] for r in rs),
            "req_s": med(r["w"]["requests"] / r["seconds"] for r in rs),
            "redis": med(redis), "redis_rounds": redis,
            "info": med(per_op(name, lambda r: r["info_cpu"] * 1e6)),
            "evalsha": med(per_op(name, lambda r: r["cmd"].get("evalsha", {}).get("usec", 0))),
            "evalsha_calls": med(per_op(name, lambda r: r["cmd"].get("evalsha", {}).get("calls", 0))),
            "inner_calls": med(per_op(name, lambda r: sum(d["calls"] for c, d in r["cmd"].items() if c != "evalsha" and c not in background))),
            "inner_usec": med(per_op(name, lambda r: sum(d["usec"] for c, d in r["cmd"].items() if c != "evalsha" and c not in background))),
            "sluice": med(per_op(name, lambda r: r["cpu"]["sluice"] * 1e6)),
            "sluice_rounds": per_op(name, lambda r: r["cpu"]["sluice"] * 1e6),
            "busy_redis": med(r["cpu"]["redis"] / r["span"] for r in rs),
            "busy_sluice": med(r["cpu"]["sluice"] / r["span"] for r in rs),
            "busy_client": med(r["client"] / r["machine_span"] for r in rs),
            "wrk_p50": med(r["w"].get("wrk_p50_us", -1) for r in rs) / 1000,
            "wrk_p99": med(r["w"].get("wrk_p99_us", -1) for r in rs) / 1000,
            "busy_other": [r["other"] / r["machine_span"] for r in rs],
            "lat": {k: med(r["w"].get(k, -1) for r in rs) / 1000 for k in
                    ("check_p50_us", "check_p99_us", "reserve_p50_us", "reserve_p99_us", "settle_p50_us", "settle_p99_us")},
            "lat_rounds": {k: [r["w"].get(k, -1) / 1000 for r in rs] for k in ("check_p99_us", "reserve_p99_us", "settle_p99_us")},
            # Answers that were not a 200 (or a reserve's without an id), as the wrk script counted them.
            "bad": sum(r["w"].get("reserve_bad", 0) + r["w"].get("settle_bad", 0) + r["w"].get("check_bad", 0) for r in rs),
            "errors": sum(r["w"].get("errors", 0) for r in rs),
            "codes": sorted({c for r in rs for c in r["codes"]}),
            "denied": sum(r["w"].get("denied", 0) for r in rs),
            "requests": sum(r["w"]["requests"] for r in rs),
            "reserves": sum(r["w"].get("reserve_ok", 0) for r in rs),
            "settles": sum(r["w"].get("settle_ok", 0) for r in rs),
        }
    classic, llm, pair = fig["check-classic"], fig["check-llm"], fig["pair"]

    def rounds(values):
        return " / ".join(f"{v:.1f}" for v in values)

    print(f"wrk -t{args.connections} -c{args.connections} -d{args.duration} per run (one connection a thread, so that each "
          f"answer is timed by kind in the wrk script), {args.keys:,} API keys on each plan, a random key a request; each of "
          f"{classic['rounds']} rounds runs the three kinds in turn; every figure is the median over the rounds. CPU: utime + "
          f"stime of the whole process (every thread) from /proc/PID/stat around each run, over the operations wrk counted "
          f"(a pair: a reserve and the settle of its id, 2 requests). EVALSHA µs: INFO commandstats, time inside the script "
          f"calls only (no network, no parsing); the commands the scripts ran: their count and their own µs in the same stats. "
          f"Reserve estimate {args.input_tokens} input + {args.output_tokens} output tokens, settled with {args.input_tokens} + "
          f"{args.actual_output_tokens} (a refund on every token limit); the LLM check asks for the estimate's tokens.")
    print()
    print("| operation | ops/s | Redis CPU µs / op (rounds) | Redis EVALSHA µs / op (commandstats) | EVALSHA calls / op "
          "| Redis commands inside / op | Sluice CPU µs / op (rounds) | p50 ms | p99 ms (rounds) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("check-classic", "check-llm"):
        f = fig[name]
        print(f"| {LLM_RUNS[name]} | {f['ops_s']:,.0f} | {f['redis']:.1f} ({rounds(f['redis_rounds'])}) | {f['evalsha']:.1f} | "
              f"{f['evalsha_calls']:.3f} | {f['inner_calls']:.1f} | {f['sluice']:.1f} ({rounds(f['sluice_rounds'])}) | "
              f"{f['lat']['check_p50_us']:.2f} | {f['lat']['check_p99_us']:.2f} ({rounds(f['lat_rounds']['check_p99_us'])}) |")
    print(f"| {LLM_RUNS['pair']} | {pair['ops_s']:,.0f} | {pair['redis']:.1f} ({rounds(pair['redis_rounds'])}) | "
          f"{pair['evalsha']:.1f} | {pair['evalsha_calls']:.3f} | {pair['inner_calls']:.1f} | {pair['sluice']:.1f} "
          f"({rounds(pair['sluice_rounds'])}) | – | – |")
    print(f"| … its `/v1/reserve` | – | – | – | – | – | – | {pair['lat']['reserve_p50_us']:.2f} | "
          f"{pair['lat']['reserve_p99_us']:.2f} ({rounds(pair['lat_rounds']['reserve_p99_us'])}) |")
    print(f"| … its `/v1/settle` | – | – | – | – | – | – | {pair['lat']['settle_p50_us']:.2f} | "
          f"{pair['lat']['settle_p99_us']:.2f} ({rounds(pair['lat_rounds']['settle_p99_us'])}) |")
    print()
    if args.light:
        light = {}
        for line in open(args.light):
            r = json.loads(line)
            w = {k: float(v) for k, v in re.findall(r"(\w+)=(-?[\d.]+)", r["wrk"])}
            light.setdefault(r["name"], []).append(w)
        print(f"At light load: wrk -t{args.light_connections} -c{args.light_connections} -d{args.light_duration} (at most "
              f"{args.light_connections} requests in flight), the same keys and bodies, {len(light['pair'])} rounds after the "
              f"runs above; median over the rounds:")
        print()
        print("| operation | requests/s (a pair run's: reserves and settles) | p50 ms | p99 ms (rounds) | answers other than a 200 |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, name, kind in (("`/v1/check`, classic plan", "check-classic", "check"), ("`/v1/check`, LLM plan, with tokens", "check-llm", "check"),
                                  ("`/v1/reserve` (in pairs)", "pair", "reserve"), ("`/v1/settle` (in pairs)", "pair", "settle")):
            ws = light[name]
            p99s = [w[kind + "_p99_us"] / 1000 for w in ws]
            print(f"| {label} | {med(w['requests'] / (w['duration_us'] / 1e6) for w in ws):,.0f} | {med(w[kind + '_p50_us'] for w in ws) / 1000:.2f} | "
                  f"{med(p99s):.2f} ({' / '.join(f'{v:.2f}' for v in p99s)}) | {sum(w[kind + '_bad'] for w in ws):.0f} |")
        print()
    print("| ratio: reserve + settle pair over | Redis CPU (/proc) | Redis EVALSHA µs (commandstats) | Redis commands inside | "
          "Sluice CPU | goal (Redis CPU) | met |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in ("check-classic", "check-llm"):
        f = fig[name]
        ratio = pair["redis"] / f["redis"]
        print(f"| {LLM_RUNS[name]} | {ratio:.2f} | {pair['evalsha'] / f['evalsha']:.2f} | "
              f"{pair['inner_calls'] / f['inner_calls']:.2f} | {pair['sluice'] / f['sluice']:.2f} | ≤ {LLM_GOAL:g} | "
              f"{'yes' if ratio <= LLM_GOAL else f'no: {ratio / LLM_GOAL:.2f} × the goal'} |")
    print()

    # Where Redis's time goes: the commands the scripts ran, per operation, and what is left
    # of EVALSHA's time for the script itself (Lua, its arguments and reply, the call's setup).
    names = sorted({c for rs in runs.values() for r in rs for c in r["cmd"] if c != "evalsha" and c not in background},
                   key=lambda c: -sum(r["cmd"].get(c, {}).get("usec", 0) for r in runs["pair"]) / max(1, sum(r["ops"] for r in runs["pair"])))
    print("Where Redis's time goes (INFO commandstats over the runs: calls and µs per operation of each command the "
          "scripts ran; \"Lua and the call itself\" is EVALSHA's µs less theirs):")
    print()
    print("| command | classic check: calls, µs / op | LLM check: calls, µs / op | reserve + settle pair: calls, µs / op |")
    print("| --- | ---: | ---: | ---: |")

    def cell(name, cmd):
        calls = med(per_op(name, lambda r: r["cmd"].get(cmd, {}).get("calls", 0)))
        usec = med(per_op(name, lambda r: r["cmd"].get(cmd, {}).get("usec", 0)))
        return "–" if calls == 0 else f"{calls:.2f}, {usec:.2f}"
    for cmd in names:
        print(f"| {cmd.upper()} | " + " | ".join(cell(n, cmd) for n in LLM_RUNS) + " |")
    print("| all of them | " + " | ".join(f"{fig[n]['inner_calls']:.1f}, {fig[n]['inner_usec']:.2f}" for n in LLM_RUNS) + " |")
    print("| Lua and the call itself | " + " | ".join(f"{fig[n]['evalsha'] - fig[n]['inner_usec']:.2f}" for n in LLM_RUNS) + " |")
    print("| EVALSHA (commandstats) | " + " | ".join(f"{fig[n]['evalsha']:.2f}" for n in LLM_RUNS) + " |")
    print("| Redis process CPU (/proc): EVALSHA plus network, parsing, replies, expiry | "
          + " | ".join(f"{fig[n]['redis']:.2f}" for n in LLM_RUNS) + " |")
    print()
    print(f"Cross-checks: Redis's own `INFO cpu` gives {classic['info']:.1f} / {llm['info']:.1f} / {pair['info']:.1f} µs per operation "
          f"(classic check / LLM check / pair) against /proc's {classic['redis']:.1f} / {llm['redis']:.1f} / {pair['redis']:.1f}; "
          f"cores busy, Redis / Sluice: {classic['busy_redis']:.2f} / {classic['busy_sluice']:.2f}, "
          f"{llm['busy_redis']:.2f} / {llm['busy_sluice']:.2f}, {pair['busy_redis']:.2f} / {pair['busy_sluice']:.2f}; wrk "
          f"{classic['busy_client']:.2f} / {llm['busy_client']:.2f} / {pair['busy_client']:.2f}; everything else on the "
          f"machine meanwhile (its busy CPU less these): {' / '.join(', '.join(f'{v:.2f}' for v in fig[n]['busy_other']) for n in LLM_RUNS)} "
          f"cores (each run's rounds). wrk's own latency histogram (every request of a run; it reads higher than the script's "
          f"timing in the tail): p50 / p99 {classic['wrk_p50']:.2f} / {classic['wrk_p99']:.2f}, {llm['wrk_p50']:.2f} / {llm['wrk_p99']:.2f}, "
          f"{pair['wrk_p50']:.2f} / {pair['wrk_p99']:.2f} ms. "
          f"Pair runs: {pair['reserves']:,.0f} reservations made, {pair['settles']:,.0f} settled (the difference: reservations "
          f"open when a run stopped). Denied: {classic['denied']:.0f} / {llm['denied']:.0f} / {pair['denied']:.0f}; answers "
          f"other than a 200 (or a reserve's without an id): {classic['bad']:.0f} / {llm['bad']:.0f} / {pair['bad']:.0f}"
          + (f" (kind:status×count per run: {'; '.join(c for n in LLM_RUNS for c in fig[n]['codes'])})" if any(fig[n]['codes'] for n in LLM_RUNS) else "")
          + f"; socket errors: {classic['errors']:.0f} / {llm['errors']:.0f} / {pair['errors']:.0f}.")


# ---- the ledger script under callgrind (scripts/lua-cost ledger) -----------------------------------

class RespClient:
    """One connection, one command at a time: each call is a round trip, as a Sluice connection's
    (and redis-benchmark -c 1's) are, so the instructions counted per call include Redis's event
    loop, reading and replying."""

    def __init__(self, port):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def call(self, *parts):
        chunks = [b"*%d\r\n" % len(parts)]
        for p in parts:
            b = p if isinstance(p, bytes) else str(p).encode()
            chunks.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(chunks))
        return self.read()

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")


# The LLM plan's limits as Sluice sends them to the ledger script (kind, three parameters,
# dimension, name), in its order: throttle, quota, then the named limits by name. Taken from
# `redis-cli MONITOR` of scripts/bench-llm's config.
LEDGER_LIMITS = [
    ("t", ["b", "1000", "1000", "0", "r", "throttle"]),
    ("q", ["q", "100000000", "m", "0", "r", "quota"]),
    ("n:daily", ["q", "2000000000000", "d", "0", "t", "daily"]),
    ("n:spend", ["q", "50000000000000", "m", "0", "c", "spend"]),
    ("n:tpm", ["b", "1", "60000000", "0", "t", "tpm"]),
]


def ledger_keys(kid, token):
    p = f"sl:{{{kid}}}:"
    record = p + "v:" + token
    return [record, record, p + "vz", p + "lz", p + "u", p + "tu"] + [p + suffix for suffix, _ in LEDGER_LIMITS]


def ledger_take(sha, op, kid, token, tokens):
    """A check ('c') or reserve ('r') call, as LedgerScript.take makes it for the LLM plan."""
    keys = ledger_keys(kid, token)
    conc, lease = ("4", "30000") if op == "r" else ("0", "0")
    argv = [op, "0", "1", str(tokens[0]), str(tokens[1]), "0", "1000000", "1000000", "1000000", "90", "0", "300000",
            conc, lease, token, "600000"]
    for _, args in LEDGER_LIMITS:
        argv += args
    return ["EVALSHA", sha, str(len(keys))] + keys + argv


def ledger_settle(sha, kid, token, tokens):
    keys = ledger_keys(kid, token)[:6]
    return ["EVALSHA", sha, "6"] + keys + ["s", "0", str(tokens[0]), str(tokens[1]), "0", "90", "600000", token]


def decide_check(sha, kid):
    """The decision script's call for the classic plan (throttle + monthly quota + usage)."""
    p = f"sl:{{{kid}}}:"
    return ["EVALSHA", sha, "3", p + "t", p + "q", p + "u", "0", "1", "90", "b", "1000", "1000", "0", "q", "100000000", "m", "0"]


def callgrind_totals(path):
    """A callgrind dump's instruction count: its "totals:" line (a dump made by callgrind_control
    -d may say "summary: 0" before it), else its "summary:" line."""
    found = {}
    with open(path, errors="replace") as f:
        for line in f:
            for field in ("totals:", "summary:"):
                if line.startswith(field):
                    found[field] = int(line.split()[1])
    if not found:
        raise RuntimeError(f"no totals in {path}")
    return found.get("totals:", found.get("summary:"))


def cmd_ledger_cost(args):
    """Instructions per call, counted by callgrind in a redis-server it runs (--pid, started with
    --instr-atstart=no --callgrind-out-file=--out), for: a script returning 1, the decision
    script (classic plan), the ledger script's check (LLM plan, tokens), reserve, and settle of
    that reservation. Each kind's keys get a warm-up first (their state exists, as on a serving
    Redis); counting is on only around the measured calls, which are dumped in chunks of
    --chunk so that a reserve and its settle are never further apart than one chunk (leases
    last 30 s). Prints JSON: instructions per call of each kind."""
    import glob
    r = RespClient(args.port)
    prelude = open(args.prelude).read()
    shas = {
        "empty": r.call("SCRIPT", "LOAD", "return 1"),
        "decide": r.call("SCRIPT", "LOAD", prelude + "\n" + open(args.decide).read()),
        "ledger": r.call("SCRIPT", "LOAD", prelude + "\n" + open(args.ledger).read()),
    }
    estimate, actual = (1000, 500), (1000, 200)
    n = args.calls
    kids = [key_id("bench", f"cost-key-{i:06d}") for i in range(n)]
    dumps = []  # (kind, calls) in dump order

    def control(*flags):
        subprocess.run(["callgrind_control", *flags, str(args.pid)], check=True, capture_output=True, timeout=120)

    def measured(kind, commands):
        control("-i", "on")
        for c in commands:
            reply = r.call(*c)
            if kind in ("reserve", "settle") and (not isinstance(reply, list) or reply[0] not in (1, b"1")):
                raise RuntimeError(f"{kind} failed: {reply!r}")
        control("-i", "off")
        control("-d")
        dumps.append((kind, len(commands)))

    def check_reply(reply, what):
        if isinstance(reply, list) and reply and reply[0] == 1:
            return
        raise RuntimeError(f"{what}: {reply!r}")

    # Warm-up, uncounted: every key's state, usage records and (pairs) sorted sets exist.
    for i, kid in enumerate(kids):
        r.call(*decide_check(shas["decide"], kid))
        check_reply(r.call(*ledger_take(shas["ledger"], "c", kid, "", estimate)), "ledger check")
        token = f"w{i:021d}"
        check_reply(r.call(*ledger_take(shas["ledger"], "r", kid, token, estimate)), "reserve")
        check_reply(r.call(*ledger_settle(shas["ledger"], kid, token, actual)), "settle")
    measured("empty", [["EVALSHA", shas["empty"], "0"]] * n)
    measured("decide", [decide_check(shas["decide"], kid) for kid in kids])
    measured("check", [ledger_take(shas["ledger"], "c", kid, "", estimate) for kid in kids])
    for first in range(0, n, args.chunk):
        chunk = list(enumerate(kids))[first:first + args.chunk]
        measured("reserve", [ledger_take(shas["ledger"], "r", kid, f"m{i:021d}", estimate) for i, kid in chunk])
        measured("settle", [ledger_settle(shas["ledger"], kid, f"m{i:021d}", actual) for i, kid in chunk])
    files = sorted(glob.glob(args.out + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]) if p.rsplit(".", 1)[1].isdigit() else -1)
    files = [p for p in files if p.rsplit(".", 1)[1].isdigit()]
    if len(files) != len(dumps):
        raise RuntimeError(f"{len(files)} callgrind dumps for {len(dumps)} phases: {files}")
    totals, calls = {}, {}
    for (kind, count), path in zip(dumps, files):
        totals[kind] = totals.get(kind, 0) + callgrind_totals(path)
        calls[kind] = calls.get(kind, 0) + count
    json.dump({kind: totals[kind] // calls[kind] for kind in totals} | {"calls": n, "ledger_sha": shas["ledger"].decode()}, sys.stdout)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("path")
    c.add_argument("--redis", required=True)
    c.add_argument("--keys", type=int, default=10000)
    c.add_argument("--admin")
    c.add_argument("--plan", action="append", default=[])
    c.add_argument("--key", action="append", default=[])
    c.set_defaults(func=cmd_config)
    c = sub.add_parser("redis-stats")
    c.add_argument("ports", nargs="+", type=int)
    c.set_defaults(func=cmd_redis_stats)
    c = sub.add_parser("decisions")
    c.add_argument("url")
    c.add_argument("--result")
    c.set_defaults(func=cmd_decisions)
    c = sub.add_parser("metric")
    c.add_argument("url")
    c.add_argument("name")
    c.set_defaults(func=cmd_metric)
    c = sub.add_parser("key-owners")
    c.add_argument("--admin", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("keys", nargs="+")
    c.set_defaults(func=cmd_key_owners)
    c = sub.add_parser("failover-load")
    c.add_argument("--url", required=True)
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--kill-at", type=float, required=True)
    c.add_argument("--kill-pid", type=int, required=True)
    c.add_argument("--out", required=True)
    c.add_argument("keys", nargs="+", help="KEY:RATE")
    c.set_defaults(func=cmd_failover_load)
    c = sub.add_parser("failover-report")
    c.add_argument("records")
    c.add_argument("--role", action="append", default=[], help="KEY=ROLE")
    c.add_argument("--node-log", action="append", default=[], help="a cluster node's redis.log")
    c.add_argument("--replica-log", action="append", default=[], help="the killed master's replica's redis.log")
    c.set_defaults(func=cmd_failover_report)
    c = sub.add_parser("preload")
    c.add_argument("--url", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--plan", required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--workers", type=int, default=8)
    c.set_defaults(func=cmd_preload)
    c = sub.add_parser("registry-pipe")
    c.add_argument("--sha", required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--plan", required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--first", type=int, default=0)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--channel", default="sluice:registry:events:0")
    c.set_defaults(func=cmd_registry_pipe)
    c = sub.add_parser("key-id")
    c.add_argument("--secret", required=True)
    c.add_argument("api_key")
    c.set_defaults(func=cmd_key_id)
    c = sub.add_parser("churn")
    c.add_argument("--url", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--plan", required=True)
    c.add_argument("--move-plan", required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--round", default="0")
    c.add_argument("--rate", type=float, default=50)
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--mode", choices=["churn", "reset"], default="churn")
    c.add_argument("--secret", default="bench")
    c.add_argument("--reset-prefix", default="rt-")
    c.set_defaults(func=cmd_churn)
    c = sub.add_parser("wrk-check")
    c.add_argument("path")
    c.add_argument("--prefix", default="bench-key-")
    c.add_argument("--keys", type=int, default=10000)
    c.add_argument("--key", help="always this API key")
    c.set_defaults(func=cmd_wrk_check)
    c = sub.add_parser("cpu-sample")
    c.add_argument("procs", nargs="+", help="NAME=PID, or NAME=PID:tree for PID and every process below it")
    c.set_defaults(func=cmd_cpu_sample)
    c = sub.add_parser("cpu-report")
    c.add_argument("results")
    c.add_argument("--threads", required=True)
    c.add_argument("--connections", required=True)
    c.add_argument("--duration", required=True)
    c.add_argument("--keys", type=int, required=True)
    c.set_defaults(func=cmd_cpu_report)
    c = sub.add_parser("llm-config")
    c.add_argument("path")
    c.add_argument("--redis-port", required=True)
    c.add_argument("--keys", type=int, default=2000)
    c.set_defaults(func=cmd_llm_config)
    c = sub.add_parser("machine-sample")
    c.add_argument("--shell", type=int, required=True)
    c.set_defaults(func=cmd_machine_sample)
    c = sub.add_parser("commandstats")
    c.add_argument("port", type=int)
    c.set_defaults(func=cmd_commandstats)
    c = sub.add_parser("llm-report")
    c.add_argument("results")
    c.add_argument("--connections", required=True)
    c.add_argument("--duration", required=True)
    c.add_argument("--keys", type=int, required=True)
    c.add_argument("--input-tokens", type=int, required=True)
    c.add_argument("--output-tokens", type=int, required=True)
    c.add_argument("--actual-output-tokens", type=int, required=True)
    c.add_argument("--light", help="runs at light load (JSON lines: name, round, wrk's BENCH line)")
    c.add_argument("--light-connections")
    c.add_argument("--light-duration")
    c.set_defaults(func=cmd_llm_report)
    c = sub.add_parser("ledger-cost")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--pid", type=int, required=True)
    c.add_argument("--out", required=True, help="callgrind's --callgrind-out-file; its dumps are OUT.1, OUT.2...")
    c.add_argument("--prelude", required=True)
    c.add_argument("--decide", required=True)
    c.add_argument("--ledger", required=True)
    c.add_argument("--calls", type=int, default=1000)
    c.add_argument("--chunk", type=int, default=250)
    c.set_defaults(func=cmd_ledger_cost)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
