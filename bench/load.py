"""Load benchmark: N concurrent Twilio callers against ``voiceagent serve``, cloud-shaped providers.

    .venv/bin/python bench/load.py --calls 20 --duration 40
    .venv/bin/python bench/load.py --calls 1,5,10,20,40 --duration 40 --json curve.json
    .venv/bin/python bench/load.py --calls 20 --duration 40 --profile-s 20
    .venv/bin/python bench/load.py --calls 40 --duration 40 --line office:jitter_ms=30

Three processes besides this one, as in production: the providers (``bench/fakes/providers.py``:
a Deepgram-protocol host for live STT and streaming TTS, and an OpenAI-compatible SSE LLM, all
on loopback), the server (``python -m voiceagent.cli serve``: the bundled receptionist with
Deepgram STT/TTS and the OpenAI LLM pointed at the providers, fallbacks off, calls recorded
into a temporary folder) and the callers (``bench/load_callers.py``: ``CallerEmulator``
callers, each looping a three-turn call, on a clean line or ``--line``'s phone-line condition:
noise, echo, level, lost and late media). For each level of ``--calls`` it prints caller end of
speech → first agent audio (p50/p90), turns answered, playback underruns per agent media
message, calls closed by the server (by close code), the server's CPU (cores and % of a core
per call, psutil) and RSS (idle, under load, per call, its trend), and whether the callers'
process was itself the bottleneck (its CPU, late media messages, its loop lag).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from bench.load_report import print_level, print_table, server_figures  # noqa: E402
from voiceagent.emulator.conditions import parse_condition  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LOAD_SCRIPT = (
    "Hi, I'd like to book a teeth cleaning, please.",
    "Do you have anything open next Tuesday afternoon?",
    "What time do you close on Fridays?",
)
DEEPGRAM_KEY = "bench-deepgram-key"


def prepare_audio(folder: Path) -> Path:
    """Piper-speak the load script once (cached) into ``folder``: lines.json + <n>.pcm.

    Each line's voiced seconds are measured with the scripted STT's own detector, as
    ``bench.fakes.deepgram_live`` asks.
    """
    from bench.fakes.caller_lines import BenchLine, prepare_lines
    from bench.fakes.deepgram_live.speech import SileroModel, voiced_seconds
    from voiceagent.settings import Settings

    lines = prepare_lines(Settings(), [("load", [BenchLine(text) for text in LOAD_SCRIPT])])[0][1]
    folder.mkdir(parents=True, exist_ok=True)
    for n, line in enumerate(lines):
        (folder / f"{n}.pcm").write_bytes(line.pcm8k)
    model = SileroModel()
    items = [{"text": line.text, "voiced_s": voiced_seconds(line.pcm8k, model)} for line in lines]
    (folder / "lines.json").write_text(json.dumps(items))
    return folder / "lines.json"


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_file(path: Path, timeout: float, proc: subprocess.Popen) -> dict[str, Any]:
    """Wait for a JSON file a child writes once ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{path} did not appear within {timeout} s")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET (errors as their status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the server answers ``/healthz``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} (see its log)")
        try:
            status, _ = http_get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
            if status in (200, 503):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {timeout} s")


def server_env(providers: dict[str, Any], run: Path, args: argparse.Namespace) -> dict[str, str]:
    """The environment of a cloud-shaped ``voiceagent serve``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAGENT_")}
    env.update(
        {
            "DEEPGRAM_API_KEY": DEEPGRAM_KEY,
            "VOICEAGENT_CLOUD__DEEPGRAM_URL": providers["deepgram"],
            "OPENAI_API_KEY": "bench-openai-key",
            "OPENAI_BASE_URL": providers["llm"],
            "VOICEAGENT_CLOUD__OPENAI_MODEL": "fake-cloud",
            "VOICEAGENT_FALLBACK__STT": "",
            "VOICEAGENT_FALLBACK__LLM": "",
            "VOICEAGENT_FALLBACK__TTS": "",
            "VOICEAGENT_STORAGE__DIR": str(run / "storage"),
            "VOICEAGENT_STORAGE__ENABLED": "0" if args.no_storage else "1",
            "VOICEAGENT_SERVER__SHUTDOWN_GRACE_S": "2",
            "OMP_WAIT_POLICY": "PASSIVE",
        }
    )
    if args.max_calls is not None:
        env["VOICEAGENT_SERVER__MAX_CALLS"] = str(args.max_calls)
    if args.no_admission:  # measure raw capacity: no busy answers
        env["VOICEAGENT_SERVER__MAX_CALLS"] = "100000"
        env["VOICEAGENT_SERVER__MAX_LOOP_LAG_MS"] = "1e9"
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


class Sampler:
    """CPU and RSS of a process tree, sampled by psutil."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, float, float]] = []  # (t, cpu seconds, rss MB)

    def sample(self) -> tuple[float, float, float]:
        cpu = rss = 0.0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss / 1e6
            except psutil.Error:
                continue
        point = (time.monotonic(), cpu, rss)
        self.samples.append(point)
        return point


def busy_elsewhere(mine: set[int]) -> list[str]:
    """Other processes using CPU now (what else runs on the machine)."""
    procs = [p for p in psutil.process_iter(["pid", "name"]) if p.info["pid"] not in mine]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(1.0)
    busy = []
    for p in procs:
        try:
            share = p.cpu_percent(None)
        except psutil.Error:
            continue
        if share >= 10.0:
            busy.append(f"{p.info['name']}({p.info['pid']}) {share:.0f} %")
    return busy


def spawn(cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen:
    """Start ``cmd`` with its stderr (and stdout unless given) in ``log``."""
    with open(log, "w") as out:
        kwargs.setdefault("stdout", out)
        return subprocess.Popen(cmd, stderr=out, **kwargs)


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """Start py-spy on the server for ``seconds`` (collapsed stacks into ``out``)."""
    spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(spy), "record", "-p", str(pid), "-d", str(int(seconds)), "-f", "raw"]
    cmd += ["--nolineno", "-s", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def run_level(calls: int, args: argparse.Namespace, lines: Path, run: Path) -> dict[str, Any]:
    """One load level: fresh providers, server and callers; returns every figure."""
    level = run / f"calls-{calls}"
    level.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []
    py = sys.executable
    try:
        fakes = spawn(
            [py, str(ROOT / "bench/fakes/providers.py"), "--lines", str(lines)]
            + ["--ready", str(level / "providers.json"), "--stats", str(level / "fakes.json")],
            level / "providers.log",
        )
        started.append(fakes)
        providers = wait_file(level / "providers.json", 30, fakes)
        port = free_port()
        cmd = [py, "-m", "voiceagent.cli", *["-v"] * args.server_verbose, "serve"]
        cmd += ["--port", str(port)]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        env, cwd = server_env(providers, level, args), ROOT
        if args.server_src:  # A/B runs: the server from another checkout (e.g. main's)
            cwd = Path(args.server_src).resolve()
            env["PYTHONPATH"] = str(cwd)
        server = spawn(cmd, level / "server.log", env=env, cwd=cwd)
        started.append(server)
        wait_healthy(port, server)
        time.sleep(1.0)  # workers up, idle
        sampler = Sampler(server.pid)
        fakes_proc = psutil.Process(fakes.pid)
        ours = {os.getpid(), server.pid, fakes.pid} | {
            p.pid for p in sampler.root.children(recursive=True)
        }
        elsewhere = busy_elsewhere(ours)
        load_before = os.getloadavg()
        idle = sampler.sample()
        driver = spawn(
            [py, str(ROOT / "bench/load_callers.py"), "--url", f"ws://127.0.0.1:{port}/media"]
            + ["--lines", str(lines.parent), "--calls", str(calls)]
            + ["--duration", str(args.duration), "--ramp-s", str(args.ramp_s)]
            + (["--line", args.line] if args.line else [])
            + ["--out", str(level / "callers.json")],
            level / "callers.log",
        )
        started.append(driver)
        driver_proc = psutil.Process(driver.pid)
        spy = None
        steady_from = time.monotonic() + args.ramp_s + 3.0
        steady_to = time.monotonic() + args.duration
        while driver.poll() is None:
            sampler.sample()
            now = time.monotonic()
            if args.profile_s and spy is None and now >= steady_from:
                seconds = min(args.profile_s, max(5.0, steady_to - now))
                spy = profile(server.pid, seconds, level / "profile.txt")
            time.sleep(1.0)
            if now > steady_to + 240:
                driver.kill()
        end = sampler.sample()
        load_after = os.getloadavg()
        _, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        _, health = http_get(f"http://127.0.0.1:{port}/healthz")
        if spy is not None:
            spy.wait(timeout=120)
        try:
            fakes_cpu = sum(fakes_proc.cpu_times()[:2])
        except psutil.Error:
            fakes_cpu = float("nan")
        result = json.loads((level / "callers.json").read_text())
        del driver_proc
        figures = server_figures(sampler.samples, idle, end, steady_from, steady_to, calls)
        return {
            "calls": calls,
            "duration_s": args.duration,
            "callers": result,
            "server": figures,
            "metrics": metrics,
            "healthz": health,
            "fakes_cpu_s": fakes_cpu,
            "stt_instrument": providers.get("instrument", ""),
            "line": parse_condition(args.line).describe() if args.line else "clean line",
            "load_before": load_before,
            "load_after": load_after,
            "elsewhere": elsewhere,
            "profile": str(level / "profile.txt") if spy is not None else None,
        }
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(started):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    """Parse arguments, run each level, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="10", help="concurrent callers; a list runs a curve")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of calling (40)")
    parser.add_argument("--ramp-s", type=float, default=5.0, help="spread of the callers' starts")
    parser.add_argument("--workers", type=int, default=None, help="voiceagent serve --workers")
    parser.add_argument(
        "--line", help="the callers' phone-line condition: office, lossy, street:jitter_ms=30, …"
    )
    parser.add_argument("--max-calls", type=int, default=None, help="server admission limit")
    parser.add_argument("--no-admission", action="store_true", help="no busy answers at all")
    parser.add_argument("--no-storage", action="store_true", help="do not record calls")
    parser.add_argument("--profile-s", type=float, default=0.0, help="py-spy the server (s)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument("--server-src", help="run the server from this source tree (A/B runs)")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("-v", "--server-verbose", action="count", default=0, help="server logs")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs)")
    args = parser.parse_args()
    levels = [int(x) for x in args.calls.split(",") if x.strip()]
    if not levels or min(levels) < 1:
        parser.error("--calls needs positive integers")
    if args.line:
        try:
            line = parse_condition(args.line)
        except ValueError as e:
            parser.error(f"--line: {e}")
        if line.echo_delay_ms is not None or line.noise == "babble":
            print(
                "note: the SCRIPTED STT gives out the script's lines in order, one per stretch of"
                " speech its VAD hears: it takes the agent's echo or background voices for the"
                " caller's next line, so turns answered and latency on this line measure the"
                " instrument. For turn-taking there use `voiceagent eval --condition`.",
                flush=True,
            )
    run = Path(tempfile.mkdtemp(prefix="voiceagent-load-"))
    print(f"preparing the caller lines (Piper, cached) in {run}", flush=True)
    lines = prepare_audio(run / "lines")
    results = []
    for calls in levels:
        print(f"\n=== {calls} concurrent callers, {args.duration:.0f} s ===", flush=True)
        result = run_level(calls, args, lines, run)
        print_level(result)
        results.append(result)
    if len(results) > 1:
        print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nlogs and raw results: {run}" if args.keep else "")
    if not args.keep:
        import shutil

        shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
