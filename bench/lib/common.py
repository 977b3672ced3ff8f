"""What every part of bench/run uses: the suite's paths, the run's log, running a command
(logged with its output), and the tools a run needs (wrk, pgbench, psql, oha, the release binary)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/
ROOT = BENCH.parent                              # the repository
SCENARIO_DIR = BENCH / "scenarios"               # the wrk scripts

LOG = None  # the run's log file: every command and its output (open_log)


def open_log(path: Path) -> None:
    global LOG
    LOG = open(path, "w")


def log_output(text: str) -> None:
    """Appends a command's output to the run's log (when one is open)."""
    if LOG:
        LOG.write(text)


def log(msg: str, echo: bool = True) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    line = f"[{stamp}] {msg}"
    if echo:
        print(line, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def die(msg: str) -> None:
    log(f"error: {msg}")
    sys.exit(2)


def run(cmd, *, env=None, cwd=None, check=True, capture=True, timeout=None, input=None):
    """Runs a command, logging it and its output."""
    log("$ " + " ".join(shlex.quote(str(c)) for c in cmd), echo=False)
    p = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, text=True, input=input,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None, timeout=timeout)
    if capture and LOG:
        LOG.write(p.stdout or "")
        LOG.flush()
    if check and p.returncode != 0:
        tail = (p.stdout or "")[-2000:] if capture else ""
        die(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return p


def ms(us) -> str:
    """Microseconds as milliseconds with two decimals, the unit of every latency shown."""
    return f"{us / 1000:.2f}"


def first_line(s: str | None) -> str:
    return (s or "").strip().splitlines()[0] if (s or "").strip() else ""


# ---------------------------------------------------------------------------------------------
# Tools


def apt_install(packages: list[str]) -> bool:
    if not shutil.which("apt-get"):
        return False
    sudo = [] if os.geteuid() == 0 else (["sudo"] if shutil.which("sudo") else None)
    if sudo is None:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"installing {' '.join(packages)} with apt-get")
    if not getattr(apt_install, "updated", False):
        run(sudo + ["apt-get", "update", "-qq"], env=env, check=False)
        apt_install.updated = True
    return run(sudo + ["apt-get", "install", "-y", "-qq"] + packages, env=env, check=False).returncode == 0


def works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def find_oha() -> str | None:
    for c in (shutil.which("oha"), str(Path.home() / ".cargo/bin/oha")):
        if c and works([c, "--version"]):
            return c
    return None


def ensure_tools(smoke: bool) -> dict:
    if not shutil.which("wrk"):
        apt_install(["wrk"])
    if not shutil.which("wrk"):
        die("wrk is missing and could not be installed: apt-get install -y wrk")
    # Debian 12 ships pgbench with the server package; newer ones with the client.
    if not works(["pgbench", "--version"]) or not shutil.which("psql"):
        apt_install(["postgresql-client"])
    if not works(["pgbench", "--version"]):
        apt_install(["postgresql-contrib"])
    if not works(["pgbench", "--version"]) or not shutil.which("psql"):
        die("pgbench/psql are missing: apt-get install -y postgresql-client (or postgresql-contrib)")
    oha = find_oha()
    if not oha:
        if smoke:
            log("note: oha is not installed, so the fixed-rate runs are skipped "
                "(install it with `cargo install oha --locked`)")
        else:
            die("the full run needs oha for the fixed-rate runs: cargo install oha --locked "
                "(a few minutes to compile), then run bench/run again")
    versions = {
        "wrk": first_line(run(["wrk", "--version"], check=False).stdout),
        "pgbench": first_line(run(["pgbench", "--version"]).stdout),
        "oha": first_line(run([oha, "--version"]).stdout) if oha else None,
    }
    return {"oha": oha, "versions": versions}


def first_line(s: str | None) -> str:
    return (s or "").strip().splitlines()[0] if (s or "").strip() else ""


def build() -> Path:
    log("building the release binary (cargo build --release)")
    run(["cargo", "build", "--release"], cwd=ROOT, capture=False)
    binary = release_binary()
    if not binary.exists():
        die(f"{binary} not found after cargo build --release")
    return binary


def release_binary() -> Path:
    """Where cargo puts the release binary (its target directory may be anywhere)."""
    meta = json.loads(run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT).stdout)
    return Path(meta["target_directory"]) / "release" / "reviews-api"
