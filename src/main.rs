fn main() {
    // The storage pipeline hands buffers between threads; with glibc's default
    // of one malloc arena per thread, freed buffers sit in the arena of the
    // thread that allocated them and peak RSS grows by a third
    // (docs/benchmarks.md). One arena keeps it within the memory targets at
    // no measurable cost in time.
    // SAFETY: called first, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    std::process::exit(lifeboat::cli::main());
}
