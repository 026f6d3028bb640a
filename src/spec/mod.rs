//! spec: reads the `*.hcl` files of a directory into the typed [`Spec`]
//! (see `model`), with every problem reported as a located [`Diagnostic`].
//! Knows no Docker and no repository; does no I/O beyond reading the files.
//!
//! Loading runs in stages, one module each: `source` (files and parsing),
//! `eval` (variables, locals, expressions), `check` (blocks against the
//! table in `schema`), `resolve` (references), `build` (the typed model);
//! `load` runs them in order.

mod build;
mod check;
mod diagnostics;
mod eval;
pub mod fmt;
mod functions;
mod load;
pub mod model;
mod moved;
mod names;
mod references;
mod resolve;
mod schema;
mod source;
mod suggest;

pub use diagnostics::{Diagnostic, Diagnostics, Severity, line_column};
pub use load::{load_dir, load_sources};
pub use model::*;
pub use names::is_system_directory;
pub use source::read_source;
pub use suggest::did_you_mean;

#[cfg(test)]
mod tests;
