//! Spec loading and evaluation on arbitrary bytes: up to two `.hcl` files
//! (split at a `#--file--` line) and variable inputs (after a `#--vars--`
//! line: `NAME=VALUE` lines become `--var`, `LIFEBOAT_VAR_NAME=VALUE` lines
//! the environment). Loads, builds the graph of what loads, and formats
//! every file that parses: none of it may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::spec::{self, VarInputs};
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    let (files, vars) = split(data, b"\n#--vars--\n");
    let mut inputs = VarInputs::default();
    for line in vars.unwrap_or_default().split(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.starts_with("LIFEBOAT_VAR_") {
            inputs.env.insert(name.to_string(), value.to_string());
        } else {
            inputs.cli_vars.push((name.to_string(), value.to_string()));
        }
    }
    let (first, second) = split(files, b"\n#--file--\n");
    let mut sources = vec![(PathBuf::from("a.hcl"), first.to_vec())];
    if let Some(second) = second {
        sources.push((PathBuf::from("b.hcl"), second.to_vec()));
    }
    for (path, bytes) in &sources {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = spec::fmt::format_source(path, text);
        }
    }
    if let Ok(loaded) = spec::load_sources(Path::new("."), sources, &inputs) {
        let _ = lifeboat::graph::Graph::build(&loaded);
    }
});

fn split<'a>(data: &'a [u8], marker: &[u8]) -> (&'a [u8], Option<&'a [u8]>) {
    match data.windows(marker.len()).position(|w| w == marker) {
        Some(at) => (&data[..at], Some(&data[at + marker.len()..])),
        None => (data, None),
    }
}
