//! lifeboat: declarative backup and restore for Docker hosts.
//!
//! Data flows one way through the modules, each a stage of a run:
//!
//! ```text
//! spec/      HCL text → typed [`spec::Spec`] with source spans  (no Docker, no repository)
//! graph/     Spec → dependency DAG (petgraph) and its orders    (pure)
//! plan/      (Spec, order, observed state) → [`plan::Plan`]     (pure data, versioned)
//! planning/  spec directory → plan: load, targets, engines,     (once for every command
//!            image bases from layers, observation, plan          that plans; never prints)
//! engine/    Docker behind the [`engine::Engine`] traits         (knows no spec or plan)
//! repo/      the repository: backends, chunks, packs, index,     (knows no Docker)
//!            snapshots, encryption, locks, check, prune, copies,
//!            run records
//! apply/     executes a Plan with engine + repo, emits events;   (the only place both meet)
//!            run.rs is the loop, kinds/ one handler per kind
//! mount/     snapshots as a read-only FUSE file system          (reads repositories only;
//!                                                                  never prints)
//! failure    the class of every failure                          (pure)
//! status     resources against their RPO, from the repositories  (no Docker; never prints)
//! notify     webhooks and healthchecks pings for runs and lateness (HTTP only; never prints)
//! cli/       clap arguments, commands, human/JSON views          (the only place that prints
//!                                                                  and decides exit codes)
//! ```
//!
//! docs/architecture.md says where each step lives and the checklist for
//! adding a resource kind (its files, plus one line per registry, held by
//! the compiler and `kinds_tests`).
//!
//! Core code never prints: it returns values and reports progress through
//! events that `cli` renders.

pub mod apply;
pub mod cli;
pub mod engine;
pub mod failure;
pub mod graph;
pub mod host;
pub mod init;
pub mod mount;
pub mod notify;
pub mod plan;
pub mod planning;
pub mod repo;
pub mod spec;
pub mod status;

#[cfg(test)]
mod kinds_tests;
