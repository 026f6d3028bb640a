//! lifeboat: declarative backup and restore for Docker hosts.
//!
//! Data flows one way through the modules, each a stage of a run:
//!
//! ```text
//! spec/    HCL text → typed [`spec::Spec`] with source spans   (no Docker, no repository)
//! graph/   Spec → dependency DAG (petgraph) and its orderings  (pure)
//! plan/    (Spec, graph, observed state) → [`plan::Plan`]      (pure data, versioned)
//! engine/  Docker behind the [`engine::Engine`] trait           (knows no spec or plan)
//! repo/    the repository: backends, chunks, packs, index,     (knows no Docker)
//!          snapshots, encryption, locks, check
//! apply/   executes a Plan with engine + repo, emits events    (the only place both meet)
//! planning/ spec dir → plan: load, targets, engines, image     (one place for every command
//!          bases, observation (through apply), plan             that plans; never prints)
//! cli/     clap arguments, commands, human/JSON views          (the only place that prints
//!                                                                and decides exit codes)
//! ```
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
pub mod plan;
pub mod planning;
pub mod repo;
pub mod spec;

#[cfg(test)]
mod kinds_tests;
