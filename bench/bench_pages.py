"""Chart pages in a real browser: time from navigation start to the plots drawn, cold and warm cache.

Sets up a data dir the way `make run` does (migrations, admin, the default base model from
HUB_MODEL_CACHE, the demo dataset), adds a finished run with a 500-step loss curve, runs `collectstatic`
and starts the `web` process of the Procfile (uvicorn on the ASGI app, whitenoise serving /static/,
DEBUG off, the project's default database or SQLite with --sqlite; the websocket and the cache use
in-memory backends so no Redis is needed). Then headless chromium (Debian's, through Playwright) opens
the run page and the dataset page:

- cold: a new browser context each time (empty HTTP cache, no compiled-code cache);
- warm: the same context, the page opened again.

"Ready" is the moment the last plotly SVG (`.main-svg`) was inserted, from navigation start
(`performance.now()` in the page, recorded by a MutationObserver installed before any page script).
Each page and mode is opened `--repeat` times; the median and the range are printed, with the bytes
the plotly bundle took on the wire and the Cache-Control it came with.

Two static-file configurations run in the same invocation, each in its own server:
- baseline: Django's plain StaticFilesStorage (unhashed names, uncompressed, whitenoise's 60 s max-age);
- hub: the project's settings (whitenoise CompressedManifestStaticFilesStorage: hashed names, gzip/brotli,
  far-future immutable caching).

    .venv/bin/python bench/bench_pages.py [--repeat 5] [--only hub|baseline] [--mbps 0]

`--mbps N` throttles the browser's network to N Mbit/s (Chrome DevTools emulation, 0 = loopback speed).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]

BENCH_SETTINGS = '''
from training_hub.settings import *  # noqa: F401,F403
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if __import__("os").environ.get("BENCH_STATIC") == "baseline":
    STORAGES = {**globals().get("STORAGES", {}),
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
'''

SEED_RUN = '''
import math
from apps.accounts.models import User
from apps.datasets.models import DatasetVersion
from apps.training.models import MetricPoint, TrainingRun
user = User.objects.get(username="admin")
user.set_password("bench-password-1")
user.save()
version = DatasetVersion.objects.filter(status="ready").order_by("pk").first()
run = TrainingRun.objects.create(owner=user, dataset_version=version, name="bench", status="succeeded",
                                 current_step=500, total_steps=500,
                                 summary={"loss": 0.61, "final_loss": 0.61, "eval_loss": 0.7})
pts = [MetricPoint(run=run, step=s, kind="train", values={"loss": 2.5 * math.exp(-s / 150) + 0.6,
                                                          "learning_rate": 2e-4})
       for s in range(1, 501)]
pts += [MetricPoint(run=run, step=s, kind="eval", values={"eval_loss": 2.6 * math.exp(-s / 150) + 0.7})
        for s in range(50, 501, 50)]
MetricPoint.objects.bulk_create(pts)
print(f"RUN={run.pk} DATASET={version.dataset_id} VERSION={version.pk}")
'''

# Installed before any page script: the time (ms since navigation start) the last plotly SVG appeared.
READY_PROBE = """
window.__plotReady = null;
window.__svgCharts = 0;
new MutationObserver((muts) => {
  for (const m of muts) for (const n of m.addedNodes) {
    if (n.nodeType !== 1) continue;
    if (n.classList.contains("main-svg") || (n.querySelector && n.querySelector(".main-svg")))
      window.__plotReady = performance.now();
    if (n.classList.contains("svg-chart")) window.__svgCharts += 1;  // the server-drawn chart, in the HTML
  }
}).observe(document, {childList: true, subtree: true});
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    out = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def prepare(data_dir: Path, static: str, sqlite: bool) -> tuple[dict, dict]:
    (data_dir / "benchsettings.py").write_text(BENCH_SETTINGS)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(HUB_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="benchsettings",
               PYTHONPATH=f"{data_dir}{os.pathsep}{ROOT}", BENCH_STATIC=static, DEBUG="0", PYTHONUNBUFFERED="1")
    if sqlite:
        env["DATABASE_URL"] = f"sqlite:///{data_dir / 'db.sqlite3'}"
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "ensure_admin")
    manage(env, "prepare_base_model")
    manage(env, "load_demo_data")
    ids = dict(kv.split("=") for kv in manage(env, "shell", "-c", SEED_RUN).split()[-3:])
    t0 = time.monotonic()
    manage(env, "collectstatic", "--noinput", "-v", "0")
    print(f"[{static}] collectstatic: {time.monotonic() - t0:.1f} s", flush=True)
    return env, ids


def start_web(env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([PY, "-m", "uvicorn", "training_hub.asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2) as r:
                if r.status == 200:
                    return proc
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the web process did not start:\n{log.read_text()[-3000:]}")


def open_page(ctx, url: str, mbps: float) -> dict:
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
    encodings: dict[str, str] = {}
    page.on("response", lambda r: encodings.__setitem__(r.url, r.headers.get("content-encoding") or "identity"))
    if mbps:
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                      "downloadThroughput": mbps * 125_000,
                                                      "uploadThroughput": mbps * 125_000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    resp = page.goto(url, wait_until="load")
    assert resp is not None and resp.status == 200, f"{url}: {resp and resp.status}"
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(200)
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    out = page.evaluate("""() => {
      const r = performance.getEntriesByType("resource").find(e => /plotly[^/]*\.js$/.test(e.name));
      const nav = performance.getEntriesByType("navigation")[0];
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      return {ready: window.__plotReady, svg_charts: window.__svgCharts, fcp: fcp ? fcp.startTime : null, plots: document.querySelectorAll(".js-plotly-plot .main-svg").length,
              plotly_bytes: r ? r.transferSize : null, plotly_body: r ? r.encodedBodySize : null,
              plotly_url: r ? r.name : null, ttfb: nav.responseStart, html: nav.responseEnd,
              plotly_loaded: r ? r.responseEnd : 0, dcl: nav.domContentLoadedEventStart};
    }""")
    # main-thread time spent running tasks (parsing, scripts, style, layout, paint) until now: the part of
    # "ready" that does not depend on the network, and that other load on the machine inflates least
    out["cpu"] = (metrics.get("TaskDuration", 0)) * 1000
    out["script_cpu"] = (metrics.get("ScriptDuration", 0)) * 1000
    if out["plotly_url"]:
        head = urllib.request.urlopen(urllib.request.Request(out["plotly_url"], method="HEAD"))
        out["cache_control"] = head.headers.get("Cache-Control")
        out["encoding"] = encodings.get(out["plotly_url"], "memory cache")
    out["errors"] = errors
    # "visible": the first paint that shows the charts. A page whose charts come drawn in its HTML (server SVG)
    # shows them with its first contentful paint; otherwise they appear when plotly has drawn them.
    out["visible"] = min(out["fcp"], out["ready"]) if out["svg_charts"] and out["fcp"] and out["ready"] else out["ready"]
    page.close()
    if out["ready"] is None or not out["plots"]:
        raise SystemExit(f"{url}: no plot was drawn (errors: {errors})")
    return out


def measure(base: str, pages: dict[str, str], repeat: int, mbps: float) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        login = browser.new_context(viewport={"width": 1440, "height": 900})
        p = login.new_page()
        p.goto(base + "/accounts/login/")
        p.fill("input[name=username]", "admin")
        p.fill("input[name=password]", "bench-password-1")
        p.click("button[type=submit]")
        p.wait_for_load_state("load")
        state = login.storage_state()
        login.close()
        for name, path in pages.items():
            cold, warm, vcold, vwarm, samples = [], [], [], [], []
            for _ in range(repeat):
                ctx = browser.new_context(storage_state=state, viewport={"width": 1440, "height": 900})
                ctx.add_init_script(READY_PROBE)
                first = open_page(ctx, base + path, mbps)
                cold.append(first["ready"])
                vcold.append(first["visible"])
                again = open_page(ctx, base + path, mbps)
                warm.append(again["ready"])
                vwarm.append(again["visible"])
                samples += [first, again]
                ctx.close()
            results[name] = {"cold": cold, "warm": warm, "visible_cold": vcold, "visible_warm": vwarm, "first": samples[0], "warm_sample": samples[1],
                             "phases": {mode: {k: statistics.median(s[k] for s in samples[i::2])
                                               for k in ("ttfb", "html", "plotly_loaded", "dcl", "ready", "cpu",
                                                         "script_cpu")}
                                        for i, mode in enumerate(("cold", "warm"))},
                             "errors": sorted({e for s in samples for e in s["errors"]})}
        browser.close()
    return results


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} ms  ({min(values):.0f}–{max(values):.0f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=["hub", "baseline"])
    ap.add_argument("--mbps", type=float, default=0.0, help="throttle the browser's network (Mbit/s); 0 = off")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    ap.add_argument("--sqlite", action="store_true",
                    help="SQLite instead of the project's default database (DATABASE_URL unset: the embedded one)")
    args = ap.parse_args()
    if not CHROMIUM:
        print("Debian's chromium is not installed (apt-get install chromium): nothing measured.")
        return 1
    configs = [args.only] if args.only else ["baseline", "hub"]
    summary = {}
    for static in configs:
        data_dir = Path(tempfile.mkdtemp(prefix=f"hub-bench-pages-{static}-"))
        try:
            env, ids = prepare(data_dir, static, args.sqlite)
            port = free_port()
            proc = start_web(env, port, data_dir / "web.log")
            try:
                pages = {"run page": f"/runs/{ids['RUN']}/",
                         "dataset page": f"/datasets/{ids['DATASET']}/?version={ids['VERSION']}"}
                summary[static] = measure(f"http://127.0.0.1:{port}", pages, args.repeat, args.mbps)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
        finally:
            if not args.keep:
                shutil.rmtree(data_dir, ignore_errors=True)
    net = f"{args.mbps:g} Mbit/s" if args.mbps else "loopback"
    print(f"\nCharts visible (navigation start -> the first paint showing every chart: the server-drawn SVG in the "
          f"HTML, else plotly's), median (min–max) of {args.repeat}, {net}:")
    for static, res in summary.items():
        for name, r in res.items():
            print(f"  {static:8s} {name:12s} cold {fmt(r['visible_cold'])}   warm {fmt(r['visible_warm'])}   "
                  f"server-drawn charts in the HTML: {r['first']['svg_charts']}")
    print(f"\nInteractive: time to plots drawn (navigation start -> last plotly SVG), median (min–max) of "
          f"{args.repeat}, {net}:")
    for static, res in summary.items():
        for name, r in res.items():
            f, w = r["first"], r["warm_sample"]
            print(f"  {static:8s} {name:12s} cold {fmt(r['cold'])}   warm {fmt(r['warm'])}   "
                  f"plots {f['plots']}  plotly on the wire: cold {f['plotly_bytes'] or 0:,} B "
                  f"(body {f['plotly_body'] or 0:,} B, {f.get('encoding')}), warm {w['plotly_bytes'] or 0:,} B; "
                  f"Cache-Control: {f.get('cache_control')}")
            for mode, ph in r["phases"].items():
                print(f"    {mode}: HTML first byte {ph['ttfb']:.0f} ms, HTML done {ph['html']:.0f} ms, "
                      f"plotly fetched {ph['plotly_loaded']:.0f} ms, scripts run (DOMContentLoaded) "
                      f"{ph['dcl']:.0f} ms, plots drawn {ph['ready']:.0f} ms; main-thread busy {ph['cpu']:.0f} ms "
                      f"(scripts {ph['script_cpu']:.0f} ms)")
            if r["errors"]:
                print(f"    console errors: {r['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
