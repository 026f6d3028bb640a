#!/usr/bin/env python3
"""Benchmark data shapes besides ../shared/bench's reference mix.

  shapes.py small-files DIR [--scale S]   200,000 files of 0-4 KiB in deep directories
  shapes.py db-files DIR [--scale S]      a few large database-like files (about 1.5 GB)
  shapes.py growth DIR --gb G             G GB of files averaging 10 KB (about 100,000 per GB)
                                          in directories of 100; run again with a larger G
                                          to add files up to that size (the first ones stay)

Deterministic for a given scale, so every tool in a run reads the same bytes.
"""
import argparse
import os
import random


def small_files(root, scale):
    rng = random.Random(7)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    count = int(200_000 * scale)
    made = set()
    for i in range(count):
        # Directories 3 to 6 levels deep, 4 subdirectories per level: about
        # 5,000 directories of about 40 files each, as a source tree or a
        # mail store has them.
        depth = rng.randint(3, 6)
        parts = [f"d{rng.randint(0, 3)}" for _ in range(depth)]
        directory = os.path.join(root, *parts)
        if directory not in made:
            os.makedirs(directory, exist_ok=True)
            made.add(directory)
        size = rng.randint(0, 4096)
        if rng.random() < 0.7:
            text = b" ".join(rng.choice(words) for _ in range(size // 5 + 1))[:size]
            data = text
        else:
            data = rng.randbytes(size)
        with open(os.path.join(directory, f"f{i}.dat"), "wb") as f:
            f.write(data)


def db_files(root, scale):
    rng = random.Random(11)
    page = 8192
    # Pages drawn from a pool of row patterns, each stamped with its own page
    # number (so no two pages are identical), some zero pages (free space),
    # some incompressible ones (indexes, compressed blobs): a database's mix.
    pool = []
    for _ in range(512):
        row = bytes(rng.choice(b"abcdefghij0123456789 ,") for _ in range(rng.randint(40, 200)))
        pool.append((row * (page // len(row) + 1))[:page - 16])
    sizes = [int(s * scale) for s in (768 << 20, 384 << 20, 256 << 20, 128 << 20)]
    for n, size in enumerate(sizes):
        with open(os.path.join(root, f"table{n}.db"), "wb") as f:
            for number in range(size // page):
                kind = rng.random()
                if kind < 0.15:
                    f.write(bytes(page))
                elif kind < 0.35:
                    f.write(rng.randbytes(page))
                else:
                    f.write(number.to_bytes(8, "little") + rng.randbytes(8) + rng.choice(pool))
    with open(os.path.join(root, "wal.log"), "wb") as f:
        f.write(rng.randbytes(int((16 << 20) * scale)))


def growth(root, gb):
    """Files 0, 1, 2, ... until `gb` GB: each one's size and bytes depend on
    its number alone, so a larger size adds files and keeps the others."""
    total = int(gb * 1e9)
    words = [bytes(random.Random(w).choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(2 + w % 8))
             for w in range(2000)]
    written, number = 0, 0
    while written < total:
        rng = random.Random(number)
        # 1-19 KB, 10 KB on average: a home directory's or a source tree's mix.
        size = rng.randint(1_000, 19_000)
        directory = os.path.join(root, f"d{number // 100_000}", f"d{number // 100 % 1000}")
        path = os.path.join(directory, f"f{number}.dat")
        if not os.path.exists(path):
            os.makedirs(directory, exist_ok=True)
            if rng.random() < 0.6:
                data = b" ".join(rng.choice(words) for _ in range(size // 5 + 1))[:size]
            else:
                data = rng.randbytes(size)
            with open(path, "wb") as f:
                f.write(data)
        written += size
        number += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=["small-files", "db-files", "growth"])
    parser.add_argument("dir")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--gb", type=float, default=1.0, help="growth: the size to reach")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    if args.shape == "growth":
        growth(args.dir, args.gb)
    else:
        {"small-files": small_files, "db-files": db_files}[args.shape](args.dir, args.scale)


if __name__ == "__main__":
    main()
