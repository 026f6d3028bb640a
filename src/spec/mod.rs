//! spec: reads `*.hcl` files into the typed [`Spec`]. Knows no Docker and no repository.
pub mod model;
pub use model::*;
