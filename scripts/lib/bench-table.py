#!/usr/bin/env python3
"""Prints scripts/bench.sh's tables: bench-table.py WORK SHAPE...

Reads WORK/SHAPE-peers.json (peers.sh and rustic) and WORK/SHAPE-ours.json
(lifeboat), and judges each lifeboat figure against the best peer of its
row, measured in the same run. The s3 shape has one file, WORK/s3-ours.json,
with lifeboat's and restic's figures into the same Garage.
"""
import json
import sys

PEERS = ["restic", "borg", "rustic"]

# Each row's floor, printed beside it: what the disk allows at best for that
# work (every file read; every entry lstat'ed; the tree written by tar -x).
FLOORS = {"first": "floor_read", "rerun": "floor_stat", "restore": "floor_write"}

# (row, lifeboat figure, peer figure suffix, target ratio against the best peer)
DEFAULT_ROWS = [
    ("first backup", "lifeboat_first", "first", 0.35),
    ("unchanged re-run (forced)", "lifeboat_rerun", "rerun", 0.5),
    ("restore into an empty volume", "lifeboat_restore", "restore", 0.75),
]
# What the disk allows at best (no target: context for the rows above):
# reading every file's content with 4 readers, and lstat'ing every entry.
FLOOR_ROWS = [
    ("floor: read every file (cat, 4 at a time)", "floor_read", "first", None),
    ("floor: lstat every entry (find)", "floor_stat", "rerun", None),
    ("floor: write the tree (tar -x)", "floor_write", "restore", None),
]
# The reference shape's per-mode rows, judged against the same best peer
# (the API ones have no target: the engine's archive stream bounds them).
MODE_ROWS = [
    ("first backup, direct", "lifeboat_first_direct", "first", None),
    ("first backup, Docker API", "lifeboat_first_api", "first", None),
    ("unchanged re-run, direct", "lifeboat_rerun_direct", "rerun", None),
    ("unchanged re-run, Docker API", "lifeboat_rerun_api", "rerun", None),
    ("restore, direct", "lifeboat_restore_direct", "restore", None),
    ("restore, Docker API", "lifeboat_restore_api", "restore", None),
]


def load(path):
    try:
        with open(path) as f:
            return {k: float(v) for k, v in json.load(f).items()}
    except FileNotFoundError:
        return {}


def best(peers, suffix):
    """The best (lowest, successful) peer figure for a row, and whose it is."""
    found = [(peers[f"{p}_{suffix}"], p) for p in PEERS if peers.get(f"{p}_{suffix}", -1) > 0]
    return min(found) if found else (None, None)


def beside_floor(value, floor):
    """The floor columns: the floor's time and the row's time over it."""
    if value is None or not floor:
        return " | |"
    return f" {floor:.2f} s | {value / floor:.2f} |"


def row(label, value, peer_value, peer, target, unit="s"):
    fmt = (lambda x: f"{x:,.0f} B") if unit == "B" else (lambda x: f"{x:.2f} s")
    if value is None:
        return f"| {label} | (not measured) | | | | | |"
    if peer_value is None:
        return f"| {label} | {fmt(value)} | (no peer) | | | | |"
    ratio = value / peer_value
    met = "" if target is None else ("yes" if ratio <= target else "no")
    goal = "" if target is None else f"≤ {target}"
    return f"| {label} | {fmt(value)} | {peer} | {fmt(peer_value)} | {ratio:.2f} | {goal} | {met} |"


# Into Garage, against restic into the same Garage (issue 23's figures):
# (row, lifeboat figure, restic figure, target ratio).
S3_ROWS = [
    ("backup into Garage", "lifeboat_s3_first", "restic_s3_first", 0.5),
    ("unchanged re-run (forced) into Garage", "lifeboat_s3_rerun", "restic_s3_rerun", 0.5),
    ("restore from Garage", "lifeboat_s3_restore", "restic_s3_restore", 0.75),
    ("copy of a snapshot, local → Garage", "lifeboat_s3_copy", "restic_s3_copy", 0.5),
]


def restic_table(title, figures, rows):
    """A table of lifeboat's figures against restic's, row by row."""
    print()
    print(f"### {title}")
    print()
    print("| case | lifeboat | peer | peer value | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for label, mine, theirs, target in rows:
        print(row(label, figures.get(mine), figures.get(theirs), "restic", target))


def s3_table(work):
    figures = load(f"{work}/s3-ours.json")
    restic_table("s3: the reference volume into Garage, restic into the same Garage", figures, S3_ROWS)
    sent = figures.get("s3_second_copy_sent_bytes")
    if sent is not None:
        print(f"| second copy of an unchanged snapshot sends | {sent:,.0f} B | | | | < 1 MB | "
              f"{'yes' if sent < 1e6 else 'no'} |")
    rss = sorted((v, k[len("lifeboat_"):-len("_rss_kb")]) for k, v in figures.items()
                 if k.startswith("lifeboat_s3_") and k.endswith("_rss_kb"))
    if rss:
        peak, case = rss[-1]
        restic_rss = max((v for k, v in figures.items()
                          if k.startswith("restic_s3_") and k.endswith("_rss_kb")), default=0)
        print(f"| peak RSS (highest: {case}) | {peak / 1024:.0f} MB | restic | {restic_rss / 1024:.0f} MB | | "
              f"≤ 150 MB | {'yes' if peak <= 150 * 1024 else 'no'} |")


# Browsing 30 snapshots of the reference volume, against restic on the
# same snapshots (issue 26's figures): (row, lifeboat figure, restic
# figure, target ratio of times; reading at ≥ 0.8 × restic's speed is a
# time ≤ 1.25 × restic's).
BROWSE_ROWS = [
    ("find over 30 snapshots", "lifeboat_find", "restic_find", 0.5),
    ("dump of one 100 MB file", "lifeboat_dump", "restic_dump", 0.5),
    ("reading that file through mount", "lifeboat_mount_read", "restic_mount_read", 1.25),
]


def browse_table(work):
    restic_table("browse: 30 snapshots of the reference volume (plus a 100 MB file), restic on the same",
                 load(f"{work}/browse-ours.json"), BROWSE_ROWS)


def growth_table(work):
    """First backups of 1 to 10 GB × scale: time per GB shows linearity."""
    figures = load(f"{work}/growth-ours.json")
    print()
    print("### growth: first backups of 10 KB files, 1 to 10 GB × scale")
    print()
    print("| size | files | first backup | per GB | peak RSS | floor: read every file | × floor |")
    print("|---|---|---|---|---|---|---|")
    for gb in ("1", "2.5", "5", "10"):
        size, seconds = figures.get(f"growth_{gb}_bytes"), figures.get(f"lifeboat_first_{gb}")
        if not size or seconds is None:
            print(f"| {gb} GB × scale | (not measured) | | | | | |")
            continue
        rss = figures.get(f"lifeboat_first_{gb}_rss_kb", 0) / 1024
        floor = figures.get(f"floor_read_{gb}")
        print(f"| {size:,.0f} B | {figures.get(f'growth_{gb}_files', 0):,.0f} | {seconds:.2f} s | "
              f"{seconds / (size / 1e9):.2f} s/GB | {rss:.0f} MB |" + beside_floor(seconds, floor))


def main():
    work, shapes = sys.argv[1], sys.argv[2:]
    for shape in shapes:
        if shape == "growth":
            growth_table(work)
            continue
        if shape == "s3":
            s3_table(work)
            continue
        if shape == "browse":
            browse_table(work)
            continue
        peers = load(f"{work}/{shape}-peers.json")
        ours = load(f"{work}/{shape}-ours.json")
        # rustic's figures were measured by bench.sh itself, into ours.
        for key in list(ours):
            if key.startswith("rustic_"):
                peers[key] = ours.pop(key)
        print()
        files = peers.get("volume_files", 0)
        print(f"### {shape}: {peers.get('volume_bytes', 0):,.0f} B in {files:,.0f} files")
        print()
        print("Peers: " + "; ".join(
            f"{p} first {peers.get(p + '_first', -1):.2f} s, re-run {peers.get(p + '_rerun', -1):.2f} s, "
            f"restore {peers.get(p + '_restore', -1):.2f} s, repository {peers.get(p + '_repo_bytes', 0):,.0f} B"
            for p in PEERS) + f"; Docker archive stream {peers.get('docker_archive_api', -1):.2f} s.")
        print()
        print("| case | lifeboat | best peer | peer value | ratio | target | met | floor | × floor |")
        print("|---|---|---|---|---|---|---|---|---|")
        rows = DEFAULT_ROWS + FLOOR_ROWS + (MODE_ROWS if shape == "reference" else [])
        for label, mine, suffix, target in rows:
            value, peer = best(peers, suffix)
            floor = None if mine.startswith("floor_") else ours.get(FLOORS[suffix])
            print(row(label, ours.get(mine), value, peer and f"{peer} {suffix}", target)
                  + beside_floor(ours.get(mine), floor))
        repo, restic_repo = ours.get("repo_bytes"), peers.get("restic_repo_bytes")
        print(row("repository size", repo, restic_repo, "restic", 1.02, "B"))
        if "mutate_added_bytes" in ours:
            print(row("data added by the 1% mutation", ours["mutate_added_bytes"],
                      peers.get("restic_mutate_added_bytes"), "restic", 1.0, "B"))
            print(row("after the 1% mutation", ours.get("lifeboat_after_mutate"),
                      peers.get("restic_after_mutate"), "restic", 1.0))
        written = ours.get("rerun_written_bytes", 0)
        print(f"| unchanged re-run writes | {written:,.0f} B | | | | < 1 MB | {'yes' if written < 1e6 else 'no'} |")
        rss = sorted((v, k[len("lifeboat_"):-len("_rss_kb")]) for k, v in ours.items()
                     if k.startswith("lifeboat_") and k.endswith("_rss_kb"))
        if rss:
            peak, case = rss[-1]
            peer_rss = [f"{p} {peers[p + '_first_rss_kb'] / 1024:.0f} MB" for p in PEERS
                        if peers.get(p + "_first_rss_kb")]
            print(f"| peak RSS (highest: {case}) | {peak / 1024:.0f} MB | {', '.join(peer_rss)} | | | "
                  f"≤ 100 MB | {'yes' if peak <= 100 * 1024 else 'no'} |")


if __name__ == "__main__":
    main()
