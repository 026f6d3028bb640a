//! `moved { from = volume.data  to = volume.app_data }`, as in Terraform:
//! a block renamed in the spec keeps its history. Snapshots recorded under
//! `from` count as snapshots of `to` for plans, restores and retention.
//! Reads the blocks and checks them against what the spec declares; knows
//! nothing of repositories.

use super::check::Declared;
use super::diagnostics::Diagnostic;
use super::load::Loader;
use super::model::{Address, MovedSpec};
use hcl_edit::Span as _;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};

impl Loader<'_> {
    /// The `moved` blocks, checked: both ends are resource addresses of one
    /// kind, `to` is declared, `from` is not (any more), no `from` is moved
    /// twice, and chains (`a → b`, `b → c`) end where they should.
    pub(super) fn moved_blocks(
        &mut self,
        bodies: &[(usize, Body)],
        declared: &Declared,
    ) -> Vec<MovedSpec> {
        let mut moves: Vec<MovedSpec> = Vec::new();
        for (file, body) in bodies {
            for block in body.iter().filter_map(Structure::as_block) {
                if block.ident.value().as_str() != "moved" {
                    continue;
                }
                let span = self.span(*file, block.span());
                if !block.labels.is_empty() {
                    self.error(
                        Diagnostic::error("labels", "a moved block takes no name", Some(span))
                            .with_help("write moved { from = volume.old  to = volume.new }"),
                    );
                    continue;
                }
                let mut ends: [Option<Address>; 2] = [None, None];
                for structure in block.body.iter() {
                    let (key, value, key_span) = match structure {
                        Structure::Attribute(a) => (
                            a.key.value().as_str(),
                            &a.value,
                            self.span(*file, a.key.span()),
                        ),
                        Structure::Block(b) => {
                            let s = self.span(*file, b.ident.span());
                            self.error(Diagnostic::error(
                                "unknown_block",
                                "a moved block holds only `from` and `to`",
                                Some(s),
                            ));
                            continue;
                        }
                    };
                    let slot = match key {
                        "from" => 0,
                        "to" => 1,
                        other => {
                            self.error(
                                Diagnostic::error(
                                    "unknown_attribute",
                                    format!("unknown attribute {other:?} in a moved block"),
                                    Some(key_span),
                                )
                                .with_help("a moved block holds `from` and `to`"),
                            );
                            continue;
                        }
                    };
                    let value_span = self.span(*file, value.span());
                    match address_of(value) {
                        Some(address) => ends[slot] = Some(address),
                        None => self.error(
                            Diagnostic::error(
                                "moved_address",
                                format!("`{key}` must name a resource, like volume.data"),
                                Some(value_span),
                            )
                            .with_help("write the address itself, without quotes"),
                        ),
                    }
                }
                let [Some(from), Some(to)] = ends else {
                    if ends.iter().all(Option::is_some) {
                        continue;
                    }
                    self.error(
                        Diagnostic::error(
                            "missing_attribute",
                            "a moved block needs both `from` and `to`",
                            Some(span),
                        )
                        .with_help("write moved { from = volume.old  to = volume.new }"),
                    );
                    continue;
                };
                let problem = if from.kind != to.kind {
                    Some(format!(
                        "{from} and {to} are different kinds of resource: snapshots of one \
                         cannot be restored as the other"
                    ))
                } else if from == to {
                    Some(format!("moves {from} to itself"))
                } else if declared
                    .contains_key(&(from.kind.keyword().to_string(), from.name.clone()))
                {
                    Some(format!(
                        "the spec still declares {from}: a moved block is for a block renamed; \
                         remove the old block, or this moved block"
                    ))
                } else if !declared.contains_key(&(to.kind.keyword().to_string(), to.name.clone()))
                {
                    Some(format!("{to} is not declared: declare it, or fix `to`"))
                } else {
                    moves.iter().find(|m| m.from == from).map(|first| {
                        format!("{from} is already moved to {} ({})", first.to, first.span)
                    })
                };
                match problem {
                    Some(message) => {
                        self.error(Diagnostic::error("moved", message, Some(span)));
                    }
                    None => moves.push(MovedSpec { from, to, span }),
                }
            }
        }
        moves
    }
}

/// `volume.data` written as a traversal, as an address.
fn address_of(expression: &Expression) -> Option<Address> {
    let text = expression.to_string();
    let address = Address::parse(text.trim())?;
    address.kind.is_resource().then_some(address)
}
