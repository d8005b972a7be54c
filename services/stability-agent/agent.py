"""stability-agent: per-node watchdog for the homelab.

Every CHECK_INTERVAL_S seconds it checks containers, disk usage, Tailscale and (when MQTT_HOST
is set) the MQTT broker, and appends an event for every change of state to
/opt/homelab/events/YYYY-MM-DD/<node>/events.jsonl. It only observes: restarts, deploys and
config changes are actions that an operator approves.
"""
import datetime as dt
import http.client
import json
import os
import shutil
import socket
import time
import uuid

NODE = os.environ.get("NODE_NAME") or socket.gethostname().upper()
INTERVAL = int(os.environ.get("CHECK_INTERVAL_S", "60"))
DISK_WARN_PCT = float(os.environ.get("DISK_WARN_PCT", "85"))
DISK_PATHS = [p for p in os.environ.get("DISK_PATHS", "/").split(",") if p]
MQTT_HOST = os.environ.get("MQTT_HOST", "")
MQTT_PORT = int(os.environ.get("MQTT_PORT", "1883"))
TS_SOCKET = os.environ.get("TAILSCALE_SOCKET", "/var/run/tailscale/tailscaled.sock")
EVENTS_DIR = os.environ.get("EVENTS_DIR", "/opt/homelab/events")
STATE_DIR = os.environ.get("STATE_DIR", "/opt/homelab/state/agents")
SOURCE = "stability-agent"


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (Docker Engine API, Tailscale local API)."""

    def __init__(self, path, timeout=5.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def get_json(sock_path, url, host="localhost"):
    conn = UnixHTTPConnection(sock_path)
    try:
        conn.request("GET", url, headers={"Host": host})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {url}: HTTP {resp.status}")
        return json.loads(body)
    finally:
        conn.close()


def emit_event(etype, severity, service, data, cid=None):
    now = dt.datetime.now(dt.timezone.utc)
    folder = os.path.join(EVENTS_DIR, now.strftime("%Y-%m-%d"), NODE)
    os.makedirs(folder, exist_ok=True)
    event = {
        "ts": now.isoformat(timespec="seconds"),
        "node": NODE,
        "type": etype,
        "severity": severity,
        "source": SOURCE,
        "service": service,
        "correlation_id": cid or uuid.uuid4().hex[:12],
        "data": data,
    }
    with open(os.path.join(folder, "events.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(event, sort_keys=True) + "\n")


def check_containers():
    """name -> (ok, detail) for every container on the host."""
    result = {}
    for c in get_json("/var/run/docker.sock", "/containers/json?all=1"):
        name = c["Names"][0].lstrip("/")
        status = c.get("Status", "")
        ok = c.get("State") == "running" and "(unhealthy)" not in status
        result[name] = (ok, status)
    return result


def check_disks():
    result = {}
    for path in DISK_PATHS:
        if not os.path.exists(path):
            continue
        usage = shutil.disk_usage(path)
        pct = round(100.0 * usage.used / usage.total, 1)
        result[f"disk:{path.removeprefix('/rootfs') or '/'}"] = (pct < DISK_WARN_PCT, f"{pct}% used")
    return result


def check_tailscale():
    if not os.path.exists(TS_SOCKET):
        return {"tailscale": (False, "tailscaled socket missing")}
    try:
        st = get_json(TS_SOCKET, "/localapi/v0/status", host="local-tailscaled.sock")
    except (OSError, RuntimeError, ValueError) as exc:
        return {"tailscale": (False, str(exc))}
    state = st.get("BackendState", "unknown")
    return {"tailscale": (state == "Running", state)}


def check_mqtt():
    if not MQTT_HOST:
        return {}
    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=5):
            return {"mqtt": (True, f"{MQTT_HOST}:{MQTT_PORT} reachable")}
    except OSError as exc:
        return {"mqtt": (False, f"{MQTT_HOST}:{MQTT_PORT}: {exc}")}


def load_state(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def main():
    os.makedirs(STATE_DIR, exist_ok=True)
    state_file = os.path.join(STATE_DIR, "stability-agent.state.json")
    heartbeat = os.path.join(STATE_DIR, "stability-agent.heartbeat")
    last = load_state(state_file)
    emit_event("node_online", "info", SOURCE, {"interval_s": INTERVAL})
    while True:
        checks = {}
        for check in (check_containers, check_disks, check_tailscale, check_mqtt):
            try:
                checks.update(check())
            except Exception as exc:  # a broken check must not stop the others
                checks[f"check:{check.__name__}"] = (False, repr(exc))
        for key, (ok, detail) in checks.items():
            was_ok = last.get(key, True)
            if ok == was_ok:
                continue
            container = not key.startswith(("disk:", "tailscale", "mqtt", "check:"))
            if container:
                etype = "service_recovered" if ok else "service_unhealthy"
            else:
                etype = "healthcheck_recovered" if ok else "healthcheck_failed"
            emit_event(etype, "info" if ok else "error", key if container else SOURCE,
                       {"check": key, "detail": detail})
        last = {key: ok for key, (ok, _) in checks.items()}
        with open(state_file + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(last, fh)
        os.replace(state_file + ".tmp", state_file)
        with open(heartbeat, "w", encoding="utf-8") as fh:
            fh.write(str(int(time.time())))
        time.sleep(INTERVAL)


if __name__ == "__main__":
    main()
