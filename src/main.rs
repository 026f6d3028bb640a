fn main() {
    // The storage pipeline hands buffers between threads; with glibc's default
    // of one malloc arena per thread, freed buffers sit in the arena of the
    // thread that allocated them and peak RSS grows by a third
    // (docs/benchmarks.md). One arena keeps it within the memory targets at
    // no measurable cost in time.
    // Buffers of 1 MiB and more (packs, chunk buffers, large chunks) are
    // mapped on their own and returned when freed. glibc's default threshold
    // rises to the largest buffer freed (17 MiB packs), and its heap then
    // keeps up to twice that unreturned: a first backup of a real tree
    // peaked at 131 MB instead of 98 MB (issue 27).
    // SAFETY: called first, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    std::process::exit(lifeboat::cli::main());
}
