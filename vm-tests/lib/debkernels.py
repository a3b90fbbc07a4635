"""Fetch Debian kernels into a cache folder without installing them.

apt runs with a private configuration (APT_CONFIG): its own sources.list, lists, cache
and an empty dpkg status, so the machine's own apt state is never touched. The sources
reuse the mirror already configured on this machine, with other suites. `apt-get
download` fetches the .debs; `dpkg -x` unpacks them under cache/kernels/ID/root.

Only the standard library is used: the script runs on a fresh Debian 12 as root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Kernel id -> the suites (archive, suite) that carry it. The newest candidate of
# `linux-image-amd64` in those suites is taken.
KERNELS: dict[str, list[tuple[str, str]]] = {
    "5.10": [("debian", "bullseye"), ("debian-security", "bullseye-security")],
    "6.1": [("debian", "bookworm"), ("debian-security", "bookworm-security")],
    "6.12": [("debian", "trixie"), ("debian-security", "trixie-security")],
    # trixie-backports only: its linux-image-amd64 is the newest 7.x
    "7.x": [("debian", "trixie-backports")],
}
ORDER = ["5.10", "6.1", "6.12", "7.x"]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def log(msg: str) -> None:
    print(f"[kernels] {msg}", file=sys.stderr, flush=True)


def machine_mirrors() -> dict[str, str]:
    """The Debian mirror URIs this machine already uses ('debian', 'debian-security').

    QTAP_DEBIAN_MIRROR / QTAP_DEBIAN_SECURITY_MIRROR override them."""
    uris: list[str] = []
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("#"):
                continue
            m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
            if m:
                uris.append(m.group(1))
            m = re.match(r"^URIs:\s*(.+)$", line)
            if m:
                uris += m.group(1).split()
    main = next((u for u in uris if re.search(r"/debian/?$", u)), "http://deb.debian.org/debian")
    sec = next(
        (u for u in uris if re.search(r"/debian-security/?$", u)),
        re.sub(r"/debian/?$", "/debian-security", main),
    )
    return {
        "debian": os.environ.get("QTAP_DEBIAN_MIRROR", main.rstrip("/")),
        "debian-security": os.environ.get("QTAP_DEBIAN_SECURITY_MIRROR", sec.rstrip("/")),
    }


class Apt:
    """apt with a private configuration under DIR (lists, archives, empty status)."""

    def __init__(self, root: Path, suites: list[tuple[str, str]], mirrors: dict[str, str]):
        self.root = root
        for sub in ("lists/partial", "archives/partial", "cache"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "empty.d").mkdir(exist_ok=True)
        lines = [
            f"deb [signed-by={KEYRING}] {mirrors[archive]} {suite} main"
            for archive, suite in suites
        ]
        (root / "sources.list").write_text("\n".join(lines) + "\n")
        (root / "status").write_text("")
        (root / "apt.conf").write_text(
            "\n".join(
                [
                    f'Dir::Etc::SourceList "{root}/sources.list";',
                    f'Dir::Etc::SourceParts "{root}/empty.d";',
                    f'Dir::Etc::Preferences "{root}/empty.d/none";',
                    f'Dir::Etc::PreferencesParts "{root}/empty.d";',
                    f'Dir::State::Lists "{root}/lists";',
                    f'Dir::State::status "{root}/status";',
                    f'Dir::Cache "{root}/cache";',
                    f'Dir::Cache::Archives "{root}/archives";',
                    'APT::Architecture "amd64";',
                    'APT::Architectures { "amd64"; };',
                    'Acquire::Languages "none";',
                    'Acquire::Retries "3";',
                    'Debug::NoLocking "true";',
                    "",
                ]
            )
        )
        self.env = dict(os.environ, APT_CONFIG=str(root / "apt.conf"), LC_ALL="C")

    def run(self, *args: str, cwd: Path | None = None) -> str:
        p = subprocess.run(
            list(args), env=self.env, cwd=cwd, text=True, capture_output=True
        )
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr.strip()}")
        return p.stdout

    def depends(self, pkg: str) -> list[str]:
        out = self.run("apt-cache", "show", "--no-all-versions", pkg)
        m = re.search(r"^Depends: (.*)$", out, re.M)
        if not m:
            return []
        names = []
        for alt in m.group(1).split(","):
            first = alt.split("|")[0].strip()
            names.append(first.split(" ")[0])
        return names

    def version(self, pkg: str) -> str:
        out = self.run("apt-cache", "show", "--no-all-versions", pkg)
        m = re.search(r"^Version: (.*)$", out, re.M)
        return m.group(1) if m else "?"


def find_vmlinuz(root: Path) -> Path | None:
    cands = sorted(root.glob("boot/vmlinuz-*")) + sorted(root.glob("usr/lib/modules/*/vmlinuz"))
    return cands[-1] if cands else None


def fetch(kid: str, cache: Path, refresh: bool = False) -> dict:
    """Make sure kernel KID is unpacked in CACHE/kernels/KID; return its description."""
    kdir = cache / "kernels" / kid
    meta_file = kdir / "kernel.json"
    if meta_file.exists() and not refresh:
        meta = json.loads(meta_file.read_text())
        if Path(meta["vmlinuz"]).exists():
            return meta
    if kid not in KERNELS:
        raise SystemExit(f"unknown kernel '{kid}': choose from {', '.join(ORDER)}")
    apt = Apt(cache / "apt" / kid, KERNELS[kid], machine_mirrors())
    log(f"{kid}: apt-get update ({', '.join(s for _, s in KERNELS[kid])})")
    apt.run("apt-get", "update", "-qq")
    image = next(
        (d for d in apt.depends("linux-image-amd64") if d.startswith("linux-image-")), None
    )
    if not image:
        raise RuntimeError(f"{kid}: linux-image-amd64 names no linux-image-* package")
    # From 7.x the image package is a stub depending on linux-binary-* and linux-modules-*.
    pkgs = [image] + [
        d for d in apt.depends(image) if re.match(r"^linux-(binary|modules)-", d)
    ]
    version = apt.version(image)
    debs = cache / "debs" / kid
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    log(f"{kid}: downloading {' '.join(pkgs)} ({version})")
    apt.run("apt-get", "download", "-qq", *pkgs, cwd=debs)
    tmp = kdir.with_name(kid + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "root").mkdir(parents=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
    shutil.rmtree(debs, ignore_errors=True)  # the unpacked tree is the cache
    shutil.rmtree(kdir, ignore_errors=True)
    tmp.rename(kdir)
    vmlinuz = find_vmlinuz(kdir / "root")
    if vmlinuz is None:
        raise RuntimeError(f"{kid}: no vmlinuz in {' '.join(pkgs)}")
    release = vmlinuz.name[len("vmlinuz-"):] if vmlinuz.name != "vmlinuz" else vmlinuz.parent.name
    meta = {
        "id": kid,
        "package": image,
        "version": version,
        "release": release,
        "vmlinuz": str(vmlinuz),
    }
    meta_file.write_text(json.dumps(meta, indent=1) + "\n")
    log(f"{kid}: {release} ready")
    return meta


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="fetch Debian kernels into a cache folder")
    ap.add_argument("--cache", default=str(Path(__file__).resolve().parent.parent / "cache"))
    ap.add_argument("--refresh", action="store_true")
    ap.add_argument("kernels", nargs="*", default=ORDER)
    a = ap.parse_args()
    for k in a.kernels:
        print(json.dumps(fetch(k, Path(a.cache), a.refresh)))
