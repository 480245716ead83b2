"""Online scoring: our BentoML service against ``mlflow models serve``, under the same closed-loop load.

    python bench/serving.py [--seconds 10] [--warmup 2] [--clients 1,16,64] [--out FILE]
                            [--servers reference,mlflow,service-sqlite,service-redis]

Needs an existing project state with a champion (``make demo``; data in ``$PIPELINE_DATA_DIR``).
Replays the transactions of the latest day D of ``features.transaction_features`` on localhost, against:

* **mlflow**: ``mlflow models serve`` of ``models:/<model>@champion`` (``--env-manager local``), given
  the day's *precomputed* features, one transaction per ``POST /invocations``;
* **service-sqlite**: our service (``python -m serving``), given the *raw* transaction (keys, time,
  amount), one per ``POST /score``; it reads the online store, updates it and logs the prediction.
  The embedded store (SQLite) is materialized through D-1 before the run, and through D after it
  (removing the replayed transactions again);
* **service-redis**: the same with the online store in a throw-away ``redis-server`` (skipped if
  ``redis-server`` is not on PATH);
* **reference**: a trivial asyncio HTTP server answering ``200 {}``: the ceiling of the load
  generator and the loopback on this machine, so that it is visibly not what limits the others.

The load generator is one separate process (asyncio streams, HTTP/1.1 keep-alive, uvloop when
installed): N closed-loop clients (each sends its next request when the previous answer arrives),
``--warmup`` seconds not counted, then ``--seconds`` measured. Requests/s counts 2xx answers completed
in the measured window, the percentiles are their latencies (connection set-up included); any other
status or a failed request is an error (printed). The CPU used by the generator and by the server's
process tree during the window is printed too (100% = one core).

Target (the issue): at 16 clients, our service (embedded store) serves >= 5x the requests/s of
``mlflow models serve`` with p99 <= 50 ms.

Side effects on the data dir: the service appends its predictions of the replayed transactions to
``$PIPELINE_DATA_DIR/serving/prediction_log``; the embedded online store is re-materialized after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("reference", "mlflow", "service-sqlite", "service-redis")
TARGET_CLIENTS, TARGET_RATIO, TARGET_P99_MS = 16, 5.0, 50.0
REQUEST_TIMEOUT_S = 30.0


def log(msg: str) -> None:
    print(f"[bench serving] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Load generator (runs in its own process: ``bench/serving.py --loadgen SPEC``)


async def _read_response(reader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = None, False, lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        key, value = key.strip().lower(), value.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value
        elif key == b"connection":
            close = value == b"close"
    if chunked:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b""):  # trailers
                    pass
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body, close = await reader.read(), True
    return status, body, close


async def _run_load(spec: dict) -> dict:
    import asyncio

    host, port, clients = spec["host"], spec["port"], spec["clients"]
    heads = [h.encode() for h, _ in spec["bodies"]]
    tails = [t.encode() for _, t in spec["bodies"]]
    n, tag_cycles = len(heads), spec["tag_cycles"]
    prefix = (
        f"POST {spec['path']} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json\r\nContent-Length: "
    ).encode()
    state = {"next": spec["offset"]}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    samples: dict[str, str] = {}  # the first of each kind
    warmup_errors = [0]

    def request(k: int) -> bytes:
        cycle, i = divmod(k, n)
        body = heads[i] + (f"-r{cycle + 1}".encode() if tag_cycles and cycle else b"") + tails[i]
        return prefix + str(len(body)).encode() + b"\r\n\r\n" + body

    def error(kind: str, detail: str, measured: bool) -> None:
        if not measured:
            warmup_errors[0] += 1
            kind = f"{kind} (warm-up)"
        errors[kind] = errors.get(kind, 0) + 1
        if kind not in samples and len(samples) < 10:
            samples[kind] = " ".join(detail.split())[:300]

    start = time.perf_counter()
    window_start, window_end = start + spec["warmup"], start + spec["warmup"] + spec["seconds"]

    async def client() -> None:
        reader = writer = None
        while time.perf_counter() < window_end:
            k = state["next"]
            state["next"] += 1
            data = request(k)
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(data)
                status, body, close = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT_S)
            except Exception as e:  # any failure of a request is an error to count
                t1 = time.perf_counter()
                if t1 < window_end:
                    error(type(e).__name__, repr(e), t1 >= window_start)
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.05)
                continue
            t1 = time.perf_counter()
            if window_start <= t1 < window_end:
                if 200 <= status < 300:
                    latencies.append(t1 - t0)
                else:
                    error(f"HTTP {status}", body.decode("utf-8", "replace"), True)
            elif t1 < window_start and not 200 <= status < 300:
                error(f"HTTP {status}", body.decode("utf-8", "replace"), False)
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
    cpu0 = time.process_time()
    print("window-start", flush=True)
    await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
    cpu1 = time.process_time()
    print("window-end", flush=True)
    _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
    for t in pending:
        t.cancel()
    lat_ms = sorted(x * 1000.0 for x in latencies)
    return {
        "ok": len(lat_ms),
        "requests_per_s": len(lat_ms) / spec["seconds"],
        "p50_ms": _quantile(lat_ms, 0.50),
        "p90_ms": _quantile(lat_ms, 0.90),
        "p99_ms": _quantile(lat_ms, 0.99),
        "max_ms": lat_ms[-1] if lat_ms else None,
        "errors": sum(errors.values()) - warmup_errors[0],
        "warmup_errors": warmup_errors[0],
        "error_kinds": errors,
        "error_samples": [f"{kind}: {detail}" for kind, detail in samples.items()],
        "loadgen_cpu_pct": 100.0 * (cpu1 - cpu0) / spec["seconds"],
        "next_offset": state["next"],
    }


def _quantile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated quantile of an already sorted list (None if empty)."""
    if not sorted_values:
        return None
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def loadgen_main(spec_path: str) -> int:
    import asyncio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's: it stops this process
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop

        result = uvloop.run(_run_load(spec))
    except ImportError:
        result = asyncio.run(_run_load(spec))
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------------
# Reference server (``bench/serving.py --trivial-server PORT``): 200 {} to any request, keep-alive


def trivial_server_main(port: int) -> int:
    import asyncio

    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                length = 0
                for line in self.buffer[:end].split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value)
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                self.transport.write(response)

    async def serve():
        server = await asyncio.get_running_loop().create_server(Protocol, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


# --------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path):
        self.name, self.cmd = name, cmd
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def tail(self, lines: int = 25) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, check, timeout: float) -> float:
        """Poll ``check()`` until it returns True; the seconds it took. Raises if the process exits or time runs out."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{self.tail()}")
            if check():
                return time.perf_counter() - t0
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the process and its descendants so far (None without psutil)."""
        try:
            import psutil
        except ImportError:
            return None
        total = 0.0
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        """SIGINT, then SIGTERM, then SIGKILL to the whole process group."""
        pgid = self.proc.pid
        for sig, grace in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()
                try:
                    os.killpg(pgid, 0)  # anything left in the group (workers outlive their parent)?
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                continue
            break
        self.proc.poll()
        self._log.close()


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def redis_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def run_level(server: Server, spec: dict, work: Path) -> dict:
    """One load level against a running server, the generator in its own process."""
    spec_path, result_path = work / "spec.json", work / "result.json"
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({**spec, "result": str(result_path)}))
    gen = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--loadgen", str(spec_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    cpu = {}
    try:
        for line in gen.stdout:
            if line.startswith("window-"):
                cpu[line.strip()] = server.cpu_seconds()
        gen.wait(timeout=REQUEST_TIMEOUT_S + 30)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
    if gen.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"load generator failed (exit {gen.returncode})")
    result = json.loads(result_path.read_text())
    c0, c1 = cpu.get("window-start"), cpu.get("window-end")
    result["server_cpu_pct"] = None if c0 is None or c1 is None else max(0.0, 100.0 * (c1 - c0) / spec["seconds"])
    return result


# --------------------------------------------------------------------------------------------------
# Data


def load_day(settings, columns: list[str]) -> tuple[date, list[dict]]:
    """The latest day of ``features.transaction_features``: (day, rows sorted by time). Exits 2 if absent."""
    from deltalake import DeltaTable

    from jobs.platform import delta

    name = "features.transaction_features"
    if not delta.exists(settings, name):
        sys.exit(f"no {name} table under {settings.storage.lakehouse_dir}: run `make demo` first")
    table = DeltaTable(str(delta.path(settings, name)))
    days = sorted({p["batch_date"] for p in table.partitions()})
    if not days:
        sys.exit(f"{name} is empty: run `make demo` first")
    day = date.fromisoformat(days[-1])
    keys = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]
    missing = [c for c in [*columns, "tx_amount"] if c not in table.schema().to_arrow().names]
    if missing:
        sys.exit(f"{name} lacks the model's columns {missing}: rebuild the features (`make demo`) first")
    data = table.to_pyarrow_table(
        columns=list(dict.fromkeys([*keys, "tx_amount", *columns])), filters=[("batch_date", "=", day)]
    )
    rows = sorted(data.to_pylist(), key=lambda r: (r["tx_datetime"], r["transaction_id"]))
    if not rows:
        sys.exit(f"{name} has no rows for {day}: run `make demo` first")
    return day, rows


def champion_columns(settings) -> tuple[str, list[str]]:
    """The champion's model URI and input columns (its signature; the registry's names without one)."""
    from jobs.features.registry import FEATURE_NAMES

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        sys.exit(f"no MLflow database at {uri}: run `make demo` first")
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)
    name = settings.mlflow.model_name
    try:
        mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException:
        sys.exit(f"no champion for model {name!r} in {uri}: run `make demo` first")
    model_uri = f"models:/{name}@champion"
    signature = mlflow.models.get_model_info(model_uri).signature
    columns = list(signature.inputs.input_names()) if signature is not None else list(FEATURE_NAMES)
    if columns != list(FEATURE_NAMES):
        log(
            f"the champion's signature has {len(columns)} inputs, not the registry's {len(FEATURE_NAMES)}: using its own"
        )
    return model_uri, columns


def _number(v) -> float | None:
    return None if v is None or v != v else float(v)


def mlflow_bodies(rows: list[dict], columns: list[str]) -> list[list[str]]:
    return [
        [json.dumps({"dataframe_split": {"columns": columns, "data": [[_number(r[c]) for c in columns]]}}), ""]
        for r in rows
    ]


def service_bodies(rows: list[dict]) -> list[list[str]]:
    """Raw transactions, split after the id so the generator can make it fresh on later cycles."""
    out = []
    for r in rows:
        rest = json.dumps(
            {
                "tx_datetime": r["tx_datetime"].strftime("%Y-%m-%d %H:%M:%S"),
                "customer_id": str(r["customer_id"]),
                "terminal_id": str(r["terminal_id"]),
                "tx_amount": float(r["tx_amount"]),
            }
        )
        out.append(['{"transaction_id": ' + json.dumps(str(r["transaction_id"]))[:-1], '", ' + rest[1:]])
    return out


def materialize(day: date, env: dict, label: str) -> None:
    log(f"{label}: materializing the online store through {day}")
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jobs.features.store", "materialize", "--date", day.isoformat(), "--force"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"materialize --date {day} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    log(f"{label}: materialized in {time.perf_counter() - t:.1f} s")


# --------------------------------------------------------------------------------------------------
# The benchmark


def bench_server(name: str, start, ready, path: str, bodies, tag_cycles: bool, args, work: Path) -> list[dict]:
    """Start a server, drive it at each client level, stop it; one result row per level."""
    rows: list[dict] = []
    server = None
    try:
        server, port = start()
        log(f"{name}: started (pid {server.proc.pid}, port {port}), waiting for readiness")
        took = server.wait_ready(lambda: ready(port), args.ready_timeout)
        log(f"{name}: ready in {took:.1f} s")
        offset = 0
        for clients in args.clients:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {server.proc.returncode}:\n{server.tail()}")
            log(f"{name}: {clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s")
            spec = {
                "host": "127.0.0.1",
                "port": port,
                "path": path,
                "clients": clients,
                "warmup": args.warmup,
                "seconds": args.seconds,
                "bodies": bodies,
                "tag_cycles": tag_cycles,
                "offset": offset,
            }
            result = run_level(server, spec, work)
            offset = result.pop("next_offset")
            rows.append({"server": name, "clients": clients, **result})
            log(
                f"{name}: {clients} clients: {result['requests_per_s']:.0f} req/s, "
                f"p50 {_fmt(result['p50_ms'])} ms, p99 {_fmt(result['p99_ms'])} ms, {result['errors']} errors"
            )
            for sample in result["error_samples"]:
                log(f"{name}:   error: {sample}")
    finally:
        if server is not None:
            server.stop()
            log(f"{name}: stopped")
    return rows


def _fmt(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_table(results: list[dict]) -> None:
    header = ("server", "clients", "requests/s", "p50 ms", "p99 ms", "errors", "loadgen CPU %", "server CPU %")
    lines = [
        (
            r["server"],
            str(r["clients"]),
            f"{r['requests_per_s']:.0f}",
            _fmt(r["p50_ms"]),
            _fmt(r["p99_ms"]),
            str(r["errors"]),
            _fmt(r["loadgen_cpu_pct"], 0),
            _fmt(r.get("server_cpu_pct"), 0),
        )
        for r in results
    ]
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=True)]
    for i, line in enumerate([header, *lines]):
        print(
            "  ".join(x.ljust(w) if j == 0 else x.rjust(w) for j, (x, w) in enumerate(zip(line, widths, strict=True)))
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def compare(results: list[dict], clients: list[int]) -> tuple[dict, dict]:
    """Our service's throughput over mlflow's at each level, and whether the target holds."""
    by = {(r["server"], r["clients"]): r for r in results}
    ratios: dict = {}
    for ours in ("service-sqlite", "service-redis"):
        for c in clients:
            a, b = by.get((ours, c)), by.get(("mlflow", c))
            if a and b and b["requests_per_s"] > 0:
                ratios.setdefault(ours, {})[c] = a["requests_per_s"] / b["requests_per_s"]
    ours, base = by.get(("service-sqlite", TARGET_CLIENTS)), by.get(("mlflow", TARGET_CLIENTS))
    if ours is None or base is None or base["requests_per_s"] <= 0:
        target = {"holds": None, "reason": f"service-sqlite and mlflow not both measured at {TARGET_CLIENTS} clients"}
    else:
        ratio = ours["requests_per_s"] / base["requests_per_s"]
        p99 = ours["p99_ms"]
        holds = ratio >= TARGET_RATIO and p99 is not None and p99 <= TARGET_P99_MS and ours["errors"] == 0
        target = {"holds": holds, "ratio": ratio, "p99_ms": p99, "errors": ours["errors"]}
    return ratios, target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per client level")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    parser.add_argument("--clients", default="1,16,64", help="client levels, comma-separated")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"which of {', '.join(SERVERS)}")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds a server may take to be ready")
    parser.add_argument("--data-dir", type=Path, help="PIPELINE_DATA_DIR to use (default: the environment's)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--trivial-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        return loadgen_main(args.loadgen)
    if args.trivial_server:
        return trivial_server_main(args.trivial_server)
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown servers {unknown}; choose from {', '.join(SERVERS)}")

    if args.data_dir:
        os.environ["PIPELINE_DATA_DIR"] = str(args.data_dir.resolve())
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    sys.path.insert(0, str(ROOT))
    from jobs.config import get_settings

    settings = get_settings()
    tracking_uri = settings.mlflow_tracking_uri
    try:
        model_uri, columns = champion_columns(settings)
        day, rows = load_day(settings, columns)
    except SystemExit as e:
        print(e.code, flush=True)
        return 2
    log(f"replaying {len(rows):,} transactions of {day} ({len(columns)} features) from {settings.storage.data_dir}")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background (SIGINT ignored there)
        signal.signal(sig, on_signal)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    log(f"server logs in {work}")
    base_env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    results: list[dict] = []
    failures: list[str] = []
    notes: list[str] = []

    def start_reference():
        port = free_port()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--trivial-server", str(port)]
        return Server("reference", cmd, base_env, work), port

    def start_mlflow():
        port = free_port()
        cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        return Server("mlflow", cmd, base_env, work), port

    def start_service(name: str, env: dict):
        def start():
            port = free_port()
            return Server(name, [sys.executable, "-m", "serving", "--port", str(port)], env, work), port

        return start

    def ready_url(path: str):
        return lambda port: http_ok(f"http://127.0.0.1:{port}{path}")

    mlflow_payload = mlflow_bodies(rows, columns)
    service_payload = service_bodies(rows)

    def run_service(name: str, env: dict) -> list[dict]:
        """The store materialized through D-1, then our service under the load levels."""
        materialize(day - timedelta(days=1), env, name)
        return bench_server(
            name, start_service(name, env), ready_url("/readyz"), "/score", service_payload, True, args, work
        )

    try:
        for name in SERVERS:
            if name not in servers:
                continue
            try:
                if name == "reference":
                    results += bench_server(name, start_reference, ready_url("/"), "/", [["{}", ""]], False, args, work)
                elif name == "mlflow":
                    results += bench_server(
                        name, start_mlflow, ready_url("/ping"), "/invocations", mlflow_payload, False, args, work
                    )
                elif name == "service-sqlite":
                    env = {k: v for k, v in base_env.items() if k != "PIPELINE_ONLINE_STORE_URL"}
                    try:
                        results += run_service(name, env)
                    finally:
                        # the replayed transactions leave the store: back to the state of the latest features day
                        materialize(day, env, name)
                elif name == "service-redis":
                    if shutil.which("redis-server") is None:
                        notes.append("service-redis skipped: redis-server is not on PATH")
                        log(notes[-1])
                        continue
                    redis_port = free_port()
                    redis = Server(
                        "redis-server",
                        [
                            "redis-server",
                            "--port",
                            str(redis_port),
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                        ],
                        base_env,
                        work,
                    )
                    try:
                        redis.wait_ready(lambda port=redis_port: redis_ok(port), 30)
                        env = {**base_env, "PIPELINE_ONLINE_STORE_URL": f"redis://127.0.0.1:{redis_port}/0"}
                        results += run_service(name, env)
                    finally:
                        redis.stop()
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                failures.append(f"{name}: {e}")
                log(f"{name} FAILED: {e}")
    except KeyboardInterrupt:
        log("interrupted: servers stopped")
        return 130

    print()
    print(f"Online scoring on localhost, {os.cpu_count()} cores: {len(rows):,} transactions of {day} replayed,")
    print(f"closed-loop clients, {args.warmup:g} s warm-up + {args.seconds:g} s measured per level (2xx only)")
    print()
    if results:
        print_table(results)
    ratios, target = compare(results, args.clients)
    print()
    for ours, levels in ratios.items():
        print(f"{ours} / mlflow throughput: " + ", ".join(f"{c} clients {r:.1f}x" for c, r in levels.items()))
    if target["holds"] is None:
        print(
            f"target (>= {TARGET_RATIO:g}x mlflow, p99 <= {TARGET_P99_MS:g} ms at {TARGET_CLIENTS} clients): not evaluated, {target['reason']}"
        )
    else:
        print(
            f"target at {TARGET_CLIENTS} clients (>= {TARGET_RATIO:g}x mlflow's requests/s, p99 <= {TARGET_P99_MS:g} ms, "
            f"no errors): {'HOLDS' if target['holds'] else 'DOES NOT HOLD'} "
            f"({target['ratio']:.1f}x, p99 {_fmt(target['p99_ms'])} ms, {target['errors']} errors)"
        )
    for line in notes + failures:
        print(f"note: {' | '.join(x.strip() for x in line.splitlines() if x.strip())[:600]}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "cores": os.cpu_count(),
                    "day": day.isoformat(),
                    "transactions": len(rows),
                    "features": len(columns),
                    "warmup_s": args.warmup,
                    "seconds": args.seconds,
                    "results": results,
                    "ratios": ratios,
                    "target": target,
                    "notes": notes,
                    "failures": failures,
                },
                indent=2,
            )
        )
        log(f"results written to {args.out}")
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
