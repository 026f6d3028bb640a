//! graph: the dependency DAG of a spec's resources (petgraph), built by small
//! steps, and the orders apply and restore follow. Pure: no I/O.
//!
//! An edge `a → b` means "a comes before b": base image → derived image,
//! image → service running it, volume/bind → service using it, service →
//! services that depend on it, service → its dumps.

use crate::spec::{Address, Diagnostic, Diagnostics, ResourceKind, Span, Spec};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub struct Graph {
    graph: DiGraph<Address, &'static str>,
    nodes: HashMap<Address, NodeIndex>,
    spans: HashMap<Address, Span>,
}

/// Restore order by kind: images, then data, then services, then dumps.
fn rank(kind: ResourceKind) -> u8 {
    match kind {
        ResourceKind::Image => 0,
        ResourceKind::Volume | ResourceKind::Bind => 1,
        ResourceKind::Service => 2,
        ResourceKind::Dump => 3,
        ResourceKind::Policy | ResourceKind::Repository => 4,
    }
}

impl Graph {
    pub fn build(spec: &Spec) -> Result<Graph, Diagnostics> {
        let mut graph = Graph {
            graph: DiGraph::new(),
            nodes: HashMap::new(),
            spans: HashMap::new(),
        };
        graph.add_resources(spec);
        graph.add_image_bases(spec);
        graph.add_data_users(spec);
        graph.add_service_dependencies(spec);
        graph.add_dumps(spec);
        match graph.find_cycle() {
            None => Ok(graph),
            Some(cycle) => Err(graph.cycle_diagnostic(spec, &cycle)),
        }
    }

    fn add_resources(&mut self, spec: &Spec) {
        let resources = spec
            .images
            .iter()
            .map(|r| (ResourceKind::Image, &r.name, &r.span))
            .chain(
                spec.volumes
                    .iter()
                    .map(|r| (ResourceKind::Volume, &r.name, &r.span)),
            )
            .chain(
                spec.binds
                    .iter()
                    .map(|r| (ResourceKind::Bind, &r.name, &r.span)),
            )
            .chain(
                spec.services
                    .iter()
                    .map(|r| (ResourceKind::Service, &r.name, &r.span)),
            )
            .chain(
                spec.dumps
                    .iter()
                    .map(|r| (ResourceKind::Dump, &r.name, &r.span)),
            );
        for (kind, name, span) in resources {
            let address = Address::new(kind, name.clone());
            let index = self.graph.add_node(address.clone());
            self.nodes.insert(address.clone(), index);
            self.spans.insert(address, span.clone());
        }
    }

    fn edge(&mut self, before: Address, after: Address, why: &'static str) {
        if let (Some(a), Some(b)) = (self.nodes.get(&before), self.nodes.get(&after))
            && !self.graph.contains_edge(*a, *b)
        {
            self.graph.add_edge(*a, *b, why);
        }
    }

    /// Records that `derived` is built on `base` (from `base =` or, once
    /// apply has read the images, from their layers).
    pub fn add_image_base(&mut self, derived: &str, base: &str) {
        self.edge(
            Address::new(ResourceKind::Image, base),
            Address::new(ResourceKind::Image, derived),
            "base image",
        );
    }

    /// Orders each image after the one it was built from, as their layers
    /// tell (`layers`: image name → DiffIDs, bottom first, where known): the
    /// base is the image whose whole list the other's starts with, the
    /// longest such. An image with `base =` keeps that base; the returned
    /// pairs `(image, base)` are those whose layers contradict it.
    pub fn add_observed_image_bases(
        &mut self,
        spec: &Spec,
        layers: &BTreeMap<String, Vec<String>>,
    ) -> Vec<(Address, Address)> {
        let starts_with = |derived: &[String], base: &[String]| {
            !base.is_empty() && derived.len() > base.len() && derived.starts_with(base)
        };
        let mut mismatches = Vec::new();
        for image in &spec.images {
            let Some(own) = layers.get(&image.name) else {
                continue;
            };
            if let Some(base) = &image.base {
                if let Some(base_layers) = layers.get(base)
                    && !own.starts_with(base_layers)
                {
                    mismatches.push((
                        Address::new(ResourceKind::Image, image.name.clone()),
                        Address::new(ResourceKind::Image, base.clone()),
                    ));
                }
                continue;
            }
            let found = spec
                .images
                .iter()
                .filter(|other| other.name != image.name)
                .filter_map(|other| Some((other, layers.get(&other.name)?)))
                .filter(|(_, other_layers)| starts_with(own, other_layers))
                .max_by_key(|(other, other_layers)| (other_layers.len(), &other.name));
            if let Some((base, _)) = found {
                let before = Address::new(ResourceKind::Image, base.name.clone());
                let after = Address::new(ResourceKind::Image, image.name.clone());
                // An edge that would close a cycle (with a `base =` that
                // says otherwise) is left out: the mismatch is reported.
                let closes_cycle = match (self.nodes.get(&before), self.nodes.get(&after)) {
                    (Some(b), Some(a)) => {
                        petgraph::algo::has_path_connecting(&self.graph, *a, *b, None)
                    }
                    _ => true,
                };
                if !closes_cycle {
                    self.add_image_base(&image.name, &base.name);
                }
            }
        }
        mismatches
    }

    fn add_image_bases(&mut self, spec: &Spec) {
        for image in &spec.images {
            if let Some(base) = &image.base {
                self.add_image_base(&image.name, base);
            }
        }
    }

    fn add_data_users(&mut self, spec: &Spec) {
        for service in &spec.services {
            let user = Address::new(ResourceKind::Service, service.name.clone());
            for volume in &service.volumes {
                self.edge(
                    Address::new(ResourceKind::Volume, volume.clone()),
                    user.clone(),
                    "used by",
                );
            }
            for bind in &service.binds {
                self.edge(
                    Address::new(ResourceKind::Bind, bind.clone()),
                    user.clone(),
                    "used by",
                );
            }
            if let Some(image) = &service.image {
                self.edge(
                    Address::new(ResourceKind::Image, image.clone()),
                    user.clone(),
                    "runs",
                );
            }
        }
        for volume in &spec.volumes {
            if let Some(service) = &volume.service {
                self.edge(
                    Address::new(ResourceKind::Volume, volume.name.clone()),
                    Address::new(ResourceKind::Service, service.clone()),
                    "used by",
                );
            }
        }
        for bind in &spec.binds {
            if let Some(service) = &bind.service {
                self.edge(
                    Address::new(ResourceKind::Bind, bind.name.clone()),
                    Address::new(ResourceKind::Service, service.clone()),
                    "used by",
                );
            }
        }
    }

    fn add_service_dependencies(&mut self, spec: &Spec) {
        for service in &spec.services {
            for dependency in &service.depends_on {
                self.edge(
                    Address::new(ResourceKind::Service, dependency.clone()),
                    Address::new(ResourceKind::Service, service.name.clone()),
                    "depends_on",
                );
            }
        }
    }

    fn add_dumps(&mut self, spec: &Spec) {
        for dump in &spec.dumps {
            self.edge(
                Address::new(ResourceKind::Service, dump.service.clone()),
                Address::new(ResourceKind::Dump, dump.name.clone()),
                "dumped from",
            );
        }
    }

    /// A cycle as a list of addresses (first repeated at the end), if any.
    fn find_cycle(&self) -> Option<Vec<Address>> {
        let mut components = petgraph::algo::tarjan_scc(&self.graph);
        components.sort_by_key(|c| c.iter().map(|n| self.graph[*n].clone()).min());
        for component in components {
            let self_loop =
                component.len() == 1 && self.graph.contains_edge(component[0], component[0]);
            if component.len() < 2 && !self_loop {
                continue;
            }
            // Walk inside the component until a node repeats.
            let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
            let start = *component
                .iter()
                .min_by_key(|n| self.graph[**n].clone())
                .expect("non-empty");
            let mut path = vec![start];
            let mut current = start;
            loop {
                let mut next: Vec<NodeIndex> = self
                    .graph
                    .neighbors_directed(current, Direction::Outgoing)
                    .filter(|n| members.contains(n))
                    .collect();
                next.sort_by_key(|n| self.graph[*n].clone());
                current = next[0];
                if let Some(at) = path.iter().position(|n| *n == current) {
                    let mut cycle: Vec<Address> =
                        path[at..].iter().map(|n| self.graph[*n].clone()).collect();
                    cycle.push(self.graph[current].clone());
                    return Some(cycle);
                }
                path.push(current);
            }
        }
        None
    }

    fn cycle_diagnostic(&self, spec: &Spec, cycle: &[Address]) -> Diagnostics {
        let path = cycle
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" → ");
        let mut diagnostic = Diagnostic::error(
            "cycle",
            format!("dependency cycle: {path}"),
            self.spans.get(&cycle[0]).cloned(),
        )
        .with_help("break the cycle: a resource cannot (indirectly) come before itself");
        for address in &cycle[1..cycle.len() - 1] {
            if let Some(span) = self.spans.get(address) {
                diagnostic =
                    diagnostic.with_related(span.clone(), format!("{address} is declared here"));
            }
        }
        Diagnostics {
            items: vec![diagnostic],
            files: spec.files.clone(),
        }
    }

    /// Topological order; among resources ready at the same time, images
    /// first, then volumes and binds, services, dumps, then by name.
    fn ordered(&self, include: impl Fn(&Address) -> bool) -> Vec<Address> {
        let mut waiting: HashMap<NodeIndex, usize> = HashMap::new();
        let mut ready: BTreeMap<(u8, Address), NodeIndex> = BTreeMap::new();
        for index in self.graph.node_indices() {
            let incoming = self
                .graph
                .neighbors_directed(index, Direction::Incoming)
                .count();
            if incoming == 0 {
                let address = self.graph[index].clone();
                ready.insert((rank(address.kind), address), index);
            } else {
                waiting.insert(index, incoming);
            }
        }
        let mut order = Vec::new();
        while let Some(((_, address), index)) = ready.pop_first() {
            if include(&address) {
                order.push(address);
            }
            for next in self.graph.neighbors_directed(index, Direction::Outgoing) {
                let count = waiting.get_mut(&next).expect("waits for its predecessors");
                *count -= 1;
                if *count == 0 {
                    waiting.remove(&next);
                    let address = self.graph[next].clone();
                    ready.insert((rank(address.kind), address), next);
                }
            }
        }
        order
    }

    /// The order backups run in.
    pub fn backup_order(&self) -> Vec<Address> {
        self.ordered(|_| true)
    }

    /// The order restores run in: images (bases first) → volumes and binds →
    /// services in depends_on order → dumps.
    pub fn restore_order(&self) -> Vec<Address> {
        self.ordered(|_| true)
    }

    /// What `address` needs before it (direct predecessors).
    pub fn dependencies(&self, address: &Address) -> Vec<Address> {
        let Some(index) = self.nodes.get(address) else {
            return Vec::new();
        };
        let mut out: Vec<Address> = self
            .graph
            .neighbors_directed(*index, Direction::Incoming)
            .map(|n| self.graph[n].clone())
            .collect();
        out.sort();
        out
    }

    /// The targets alone, in order (what a backup of them copies: a backup
    /// needs nothing else to be backed up with it).
    pub fn only(&self, targets: &[Address]) -> Vec<Address> {
        self.ordered(|a| targets.contains(a))
    }

    /// The targets and everything they (transitively) need, in order.
    pub fn with_dependencies(&self, targets: &[Address]) -> Vec<Address> {
        let mut keep: BTreeSet<Address> = BTreeSet::new();
        let mut stack: Vec<Address> = targets.to_vec();
        while let Some(address) = stack.pop() {
            if keep.insert(address.clone()) {
                stack.extend(self.dependencies(&address));
            }
        }
        self.ordered(|a| keep.contains(a))
    }

    /// Graphviz DOT of the graph: the nodes numbered in `order` (a plan's
    /// order, computed from this graph), every edge with why it is there,
    /// and `notes` (what the drawing lacks) as comments.
    pub fn to_dot(&self, title: &str, order: &[Address], notes: &[String]) -> String {
        let mut out = String::new();
        for note in notes {
            let _ = writeln!(out, "// Note: {}", note.replace(['\n', '\r'], " "));
        }
        let _ = writeln!(
            out,
            "digraph lifeboat {{\n  label = \"{title}\";\n  rankdir = LR;\n  node [shape = box];"
        );
        for (position, address) in order.iter().enumerate() {
            let _ = writeln!(
                out,
                "  \"{address}\" [label = \"{}. {address}\"];",
                position + 1
            );
        }
        let mut edges: Vec<(String, String, &str)> = self
            .graph
            .edge_indices()
            .filter_map(|e| {
                let (a, b) = self.graph.edge_endpoints(e)?;
                Some((
                    self.graph[a].to_string(),
                    self.graph[b].to_string(),
                    self.graph[e],
                ))
            })
            .collect();
        edges.sort();
        for (a, b, why) in edges {
            let _ = writeln!(out, "  \"{a}\" -> \"{b}\" [label = \"{why}\"];");
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ImageSpec;

    fn image(name: &str, base: Option<&str>) -> ImageSpec {
        ImageSpec {
            name: name.into(),
            reference: format!("{name}:1"),
            engine: None,
            policy: None,
            base: base.map(String::from),
            span: Span::default(),
        }
    }

    #[test]
    fn images_are_ordered_after_the_longest_layer_prefix_and_bases_are_checked() {
        let spec = Spec {
            images: vec![
                image("a_deep", None),
                image("b_app", None),
                image("c_base", None),
                image("d_said", Some("b_app")),
            ],
            ..Spec::default()
        };
        let layers: BTreeMap<String, Vec<String>> = [
            ("c_base", vec!["1"]),
            ("b_app", vec!["1", "2"]),
            ("a_deep", vec!["1", "2", "3"]),
            ("d_said", vec!["1", "9"]),
        ]
        .into_iter()
        .map(|(n, l)| (n.to_string(), l.into_iter().map(String::from).collect()))
        .collect();
        let mut graph = Graph::build(&spec).unwrap();
        let mismatches = graph.add_observed_image_bases(&spec, &layers);
        let order: Vec<String> = graph
            .restore_order()
            .iter()
            .map(Address::to_string)
            .collect();
        let at = |name: &str| order.iter().position(|a| a == name).unwrap();
        assert!(at("image.c_base") < at("image.b_app"), "{order:?}");
        assert!(at("image.b_app") < at("image.a_deep"), "{order:?}");
        // a_deep's base is b_app (the longest prefix), not c_base directly.
        let deep = Address::new(ResourceKind::Image, "a_deep");
        assert_eq!(
            graph.dependencies(&deep),
            vec![Address::new(ResourceKind::Image, "b_app")]
        );
        assert_eq!(
            mismatches,
            vec![(
                Address::new(ResourceKind::Image, "d_said"),
                Address::new(ResourceKind::Image, "b_app")
            )]
        );
    }
}
