#!/usr/bin/env python3
"""Helpers of benches/run.sh (stdlib only).

    bench.py inputs STATE_JSON REPO OUT_LIST       # every input file of every node, absolute, NUL-separated
    bench.py ninja STATE_JSON REPO BUILD_DIR       # build.ninja: one edge per hl node, same inputs
    bench.py pairs HL REPO KIND WARMUP RUNS OUT    # one-change plans interleaved with no-op plans
    bench.py report RESULTS_DIR                    # the markdown table (stdout)

The ninja file is the peer the issue names: "the fastest incremental build there is", given
exactly hl's graph. Each node recorded in `.hl/state.json` (after `hl state adopt`) becomes one
edge whose inputs are the node's input files and the stamps of its input dependencies, and
whose output is a stamp file in BUILD_DIR (outside the repo, so `git status` is not disturbed).
A no-op `ninja` then stats the same files hl stats and decides that nothing is to do.
"""

import json
import math
import os
import re
import statistics
import subprocess
import sys
import time


def load_state(path):
    with open(path) as f:
        return json.load(f)["nodes"]


def cmd_inputs(state_json, repo, out):
    repo = os.path.abspath(repo)
    files = sorted({os.path.join(repo, f) for n in load_state(state_json).values() for f in n.get("files", {})})
    with open(out, "w") as f:
        f.write("\0".join(files))
    print(len(files))


def esc(path):
    return path.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def cmd_ninja(state_json, repo, build_dir):
    nodes = load_state(state_json)
    repo = os.path.abspath(repo)
    stamp = {a: f"stamps/{i:06d}.stamp" for i, a in enumerate(sorted(nodes))}
    os.makedirs(os.path.join(build_dir, "stamps"), exist_ok=True)
    out = ["# One edge per hl node (benches/bench.py ninja): same inputs as hl's plan.",
           "rule stamp", "  command = touch $out", "  description = $addr", ""]
    edges = 0
    for a in sorted(nodes):
        n = nodes[a]
        ins = [esc(os.path.join(repo, f)) for f in sorted(n.get("files", {}))]
        deps = [stamp[d] for d in sorted(n.get("inputs", {})) if d in stamp]
        line = f"build {stamp[a]}: stamp " + " ".join(ins)
        if deps:
            line += " | " + " ".join(deps)
        out += [line, f"  addr = {a}"]
        edges += 1
    with open(os.path.join(build_dir, "build.ninja"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(edges)


def cmd_pairs(hl, repo, kind, warmup, runs, out):
    """`hl plan` after one KIND edit (`gen.py edit`), interleaved run by run with a no-op plan
    (nothing moved since the plan before it) after a prepare step of the same kind
    (`python3 -c pass`): the ratio of the two is taken
    from runs made side by side, so a machine whose speed drifts over a minute (shared hosts
    do, by 10-20%) does not tilt it as separate blocks of runs would. Each plan runs under
    `/usr/bin/time -v` (peak RSS); the times go to OUT/hl_KIND.json and OUT/hl_noop_KIND.json
    in hyperfine's export format."""
    gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen.py")
    keys = {"edit": f"hl_{kind}", "noop": f"hl_noop_{kind}"}
    for key in keys.values():
        if os.path.exists(os.path.join(out, f"{key}.rss")):
            os.remove(os.path.join(out, f"{key}.rss"))
    prepare = {"edit": [sys.executable, gen, "edit", repo, kind], "noop": [sys.executable, "-c", "pass"]}
    timed = {"edit": [], "noop": []}
    for i in range(int(warmup) + int(runs)):
        # Which goes first alternates too (ABBA): neither always follows the other.
        order = ("noop", "edit") if i % 2 == 0 else ("edit", "noop")
        for which in order:
            subprocess.run(prepare[which], check=True, stdout=subprocess.DEVNULL)
            rss = os.path.join(out, f"{keys[which]}.rss")
            cmd = ["/usr/bin/time", "-v", "-a", "-o", rss, hl, "-C", repo, "plan"]
            start = time.perf_counter()
            rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            took = time.perf_counter() - start
            # A no-op after an edit still shows that edit's update (nothing moved since the
            # plan before it: the plan is recalled whole), so it exits 2 as well.
            if rc not in ((2,) if which == "edit" else (0, 2)):
                sys.exit(f"bench.py pairs: {kind}: {which} plan exited {rc}")
            if i >= int(warmup):
                timed[which].append(took)
    for which, key in keys.items():
        t = timed[which]
        with open(os.path.join(out, f"{key}.json"), "w") as f:
            json.dump({"results": [{"command": key, "times": t, "mean": statistics.mean(t),
                                    "median": statistics.median(t), "min": min(t), "max": max(t)}]}, f)
        print(f"{key}: median {statistics.median(t) * 1000:.1f} ms over {len(t)} runs", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# report

ROWS = [
    # (key, label, what it measures)
    ("hl_cold", "hl plan, cold", "no .hl/, empty cache: stat, read and hash every input, parse, realize every node, write the caches"),
    ("hl_noop", "hl plan, no-op", "after `hl state adopt` and a warm plan: nothing changed"),
    ("hl_service", "hl plan, one service file changed", "a bind-mounted config file of one compose service"),
    ("hl_noop_service", "hl plan, no-op, interleaved with those", "each run after `python3 -c pass`, as each edit run after `gen.py edit`"),
    ("hl_manifest", "hl plan, one manifest changed", "`replicas` of one app's Deployment"),
    ("hl_noop_manifest", "hl plan, no-op, interleaved with those", "as above"),
    ("hl_talos", "hl plan, one Talos patch changed", "one node's patch"),
    ("hl_noop_talos", "hl plan, no-op, interleaved with those", "as above"),
    ("hl_against", "hl plan --against HEAD~1", "CI: one service file changed in the last commit; no state, git objects"),
    ("git_status", "git status", "floor: no-op scan of the committed tree"),
    ("b3sum_par", "b3sum, every input file", "floor: cold hashing, `xargs -P nproc` batches"),
    ("b3sum_seq", "b3sum, every input file, one process", "for reference: `xargs b3sum`"),
    ("ninja_noop", "ninja no-op", "floor: one edge per hl node, same inputs, nothing to do"),
    ("ninja_dry", "ninja -n no-op", "the same, dry run"),
]

PAIRS = [
    # (hl row, floor row, target ratio or None)
    ("hl_noop", "git_status", 1.5),
    ("hl_noop", "ninja_noop", 1.0),
    ("hl_cold", "b3sum_par", 2.0),
    # One change against the no-op runs made side by side with it (see `cmd_pairs`).
    ("hl_service", "hl_noop_service", 1.1),
    ("hl_manifest", "hl_noop_manifest", 1.1),
    ("hl_talos", "hl_noop_talos", 1.1),
    ("hl_service", "hl_noop", None),
    ("hl_manifest", "hl_noop", None),
    ("hl_talos", "hl_noop", None),
    ("hl_against", "hl_noop", None),
    ("hl_noop", "ninja_dry", None),
    ("hl_cold", "b3sum_seq", None),
    ("git_status", "ninja_noop", None),
]


def times(path):
    with open(path) as f:
        r = json.load(f)["results"][0]
    return r["times"]


def rss_kib(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(m) for m in re.findall(r"Maximum resident set size \(kbytes\): (\d+)", f.read())]


def verdict_of(value, target):
    """`met`, or by how much it is missed: a percentage when close, a factor when far."""
    if value <= target:
        return "met"
    over = value / target
    return f"missed by {(over - 1) * 100:.1f}%" if over < 1.5 else f"missed by {over:.1f}x"


def fmt_s(t):
    return f"{t * 1000:.0f} ms" if t < 10 else f"{t:.1f} s"


def cmd_report(results):
    sizes = [s for s in ("small", "large") if os.path.isdir(os.path.join(results, s))]
    meta = {}
    data = {}
    for s in sizes:
        d = os.path.join(results, s)
        with open(os.path.join(d, "meta.json")) as f:
            meta[s] = json.load(f)
        data[s] = {}
        for key, _, _ in ROWS:
            p = os.path.join(d, f"{key}.json")
            if os.path.exists(p):
                t = times(p)
                data[s][key] = dict(median=statistics.median(t), lo=min(t), hi=max(t), n=len(t),
                                    rss=rss_kib(os.path.join(d, f"{key}.rss")))
    out = []
    with open(os.path.join(results, "machine.txt")) as f:
        out.append(f"Machine: {f.read().strip()}")
    out.append("")
    for s in sizes:
        m = meta[s]
        out.append(f"### {s}: {m['files']} files, {m['bytes'] / 1e6:.1f} MB; {m['inputs']} input files, "
                   f"{m['nodes']} nodes ({m['edges']} ninja edges)")
        out.append("")
        out.append("| what | median | range | runs | peak RSS | work (hl --stats) |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- |")
        for key, label, _ in ROWS:
            r = data[s].get(key)
            if not r:
                continue
            rss = f"{max(r['rss']) / 1024:.0f} MiB" if r["rss"] else ""
            work = m.get("stats", {}).get(key, "")
            out.append(f"| {label} | {fmt_s(r['median'])} | {fmt_s(r['lo'])} .. {fmt_s(r['hi'])} | {r['n']} | {rss} | {work} |")
        out.append("")
        out.append("| ratio | of medians | of minima | target | verdict (medians) |")
        out.append("| --- | ---: | ---: | ---: | --- |")
        for a, b, target in PAIRS:
            if a in data[s] and b in data[s]:
                ratio = data[s][a]["median"] / data[s][b]["median"]
                low = data[s][a]["lo"] / data[s][b]["lo"]
                verdict = "" if target is None else verdict_of(ratio, target)
                tgt = "" if target is None else f"<= {target}x"
                la = dict((k, l) for k, l, _ in ROWS)
                out.append(f"| {la[a]} / {la[b]} | {ratio:.2f}x | {low:.2f}x | {tgt} | {verdict} |")
        rss = [max(r["rss"]) for k, r in data[s].items() if k.startswith("hl_") and r["rss"]]
        if rss:
            peak = max(rss) / 1024
            verdict = verdict_of(peak, 300)
            out.append(f"| peak RSS of any hl plan | {peak:.0f} MiB | | <= 300 MiB | {verdict} |")
        out.append("")
    if "small" in data and "large" in data:
        fs, fl = meta["small"]["files"], meta["large"]["files"]
        out.append(f"### growth from small to large ({fs} -> {fl} files, x{fl / fs:.0f})")
        out.append("")
        out.append("exponent k in t ~ files^k: log(t_large / t_small) / log(files_large / files_small); "
                   "k <= 1 is linear or better.")
        out.append("")
        out.append("| what | small | large | k (medians) | k (minima) | verdict (medians) |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- |")
        for key, label, _ in ROWS:
            if key in data["small"] and key in data["large"]:
                ts, tl = data["small"][key]["median"], data["large"][key]["median"]
                k = math.log(tl / ts) / math.log(fl / fs)
                kmin = math.log(data["large"][key]["lo"] / data["small"][key]["lo"]) / math.log(fl / fs)
                verdict = ("met" if k <= 1.0 else f"missed ({k:.2f} > 1)") if key.startswith("hl_") else ""
                out.append(f"| {label} | {fmt_s(ts)} | {fmt_s(tl)} | {k:.2f} | {kmin:.2f} | {verdict} |")
        out.append("")
    print("\n".join(out))


def main():
    cmd, *args = sys.argv[1:] or ["-h"]
    if cmd == "inputs":
        cmd_inputs(*args)
    elif cmd == "ninja":
        cmd_ninja(*args)
    elif cmd == "pairs":
        cmd_pairs(*args)
    elif cmd == "report":
        cmd_report(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
