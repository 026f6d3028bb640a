//! The order plans follow, and the graph `lifeboat graph` draws from the
//! same steps: image bases observed from layers, then one ordering function
//! for both, so the drawing is a rendering of what the plans do.

use super::{EngineSource, Loaded, image_addresses, order_images, reach_engines};
use crate::apply::{self, OpenSettings};
use crate::graph::Graph;
use crate::plan::Warning;
use crate::spec::Address;

/// Which plan an order is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    Backup,
    Restore,
}

/// The order a plan of `kind` follows: the whole graph's; with `targets`,
/// a backup's takes the targets alone (each snapshot stands on its own: a
/// derived image's holds every layer, a dump needs its service running,
/// not backed up), a restore's the targets and what they need first.
pub(super) fn plan_order(graph: &Graph, kind: OrderKind, targets: &[Address]) -> Vec<Address> {
    match (kind, targets.is_empty()) {
        (OrderKind::Backup, true) => graph.backup_order(),
        (OrderKind::Restore, true) => graph.restore_order(),
        (OrderKind::Backup, false) => graph.only(targets),
        (OrderKind::Restore, false) => graph.with_dependencies(targets),
    }
}

/// The graph as a plan of `kind` uses it, ready to draw (the edges are the
/// loaded graph's, image bases from layers included).
#[derive(Debug)]
pub struct DrawnGraph {
    pub kind: OrderKind,
    /// Every resource, in the plan's order.
    pub order: Vec<Address>,
    /// `base =` settings the layers contradict, as plans warn of them.
    pub warnings: Vec<Warning>,
    /// What the drawing lacks and why (no engine reachable, repositories
    /// unreadable): it is then drawn from what could be read.
    pub notes: Vec<String>,
}

/// Adds to `loaded`'s graph the image bases the layers tell (from the
/// engines, else the repositories' image snapshots, read only), as `plan`
/// and `restore` do, and orders it as a plan of `kind` would. Nothing
/// unreachable is an error: without an engine the graph is the spec's
/// alone, and the notes say so.
pub async fn draw_graph(
    loaded: &mut Loaded,
    kind: OrderKind,
    settings: &OpenSettings,
    source: EngineSource<'_>,
) -> DrawnGraph {
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    // Only images' layers add edges: a spec without images needs no engine.
    if !loaded.spec.images.is_empty() {
        let engines = reach_engines(loaded, &image_addresses(&loaded.spec), source).await;
        if let Some(error) = engines.all_unreachable() {
            notes.push(format!(
                "no engine could be reached ({error}): the graph is drawn from the spec alone, \
                 without the image bases the images' layers tell"
            ));
        } else {
            // The repositories are read only for images the engines lack
            // (a restore after the images were removed), as plans do.
            let on_engines = apply::image_layers(&engines, &loaded.spec, &[])
                .await
                .unwrap_or_default();
            let repositories = if on_engines.len() == loaded.spec.images.len() {
                Vec::new()
            } else {
                apply::open_repositories(&loaded.spec, settings).unwrap_or_else(|error| {
                    notes.push(format!(
                        "the repositories could not be read ({error}): image bases come from \
                         the images on the engines only"
                    ));
                    Vec::new()
                })
            };
            warnings = match order_images(loaded, &engines, &repositories).await {
                Ok(warnings) => warnings,
                Err(error) => {
                    notes.push(format!(
                        "the repositories' image snapshots could not be read ({error}): image \
                         bases come from the images on the engines only"
                    ));
                    order_images(loaded, &engines, &[])
                        .await
                        .unwrap_or_default()
                }
            };
        }
    }
    let notes = notes.iter().map(|n| loaded.spec.redact(n)).collect();
    DrawnGraph {
        kind,
        order: plan_order(&loaded.graph, kind, &[]),
        warnings,
        notes,
    }
}
