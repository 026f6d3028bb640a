//! spec: reads the `*.hcl` files of a directory into the typed [`Spec`]
//! (see `model`), with every problem reported as a located [`Diagnostic`].
//! Knows no Docker and no repository; does no I/O beyond reading the files.

mod diagnostics;
pub mod fmt;
mod functions;
mod load;
pub mod model;

pub use diagnostics::{Diagnostic, Diagnostics, Severity, line_column};
pub use load::{did_you_mean, load_dir};
pub use model::*;

#[cfg(test)]
mod tests;
