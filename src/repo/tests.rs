//! Repository tests (memory and local backends, no Docker).
