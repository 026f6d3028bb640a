//! Reference resolution: every `kind.name` a block writes must name a
//! declared block of that kind, else a located diagnostic with the closest
//! declared name. Reads [`Checked`] blocks; changes none.

use super::check::{Checked, Declared, Written};
use super::diagnostics::Diagnostic;
use super::load::Loader;
use super::model::Span;
use super::suggest::did_you_mean;

impl Loader<'_> {
    pub(super) fn resolve(&mut self, declared: &Declared, checked: &[(String, Checked)]) {
        for (_, block) in checked {
            for field in block.fields.values() {
                let refs: Vec<(String, String, Span)> = match &field.written {
                    Written::Ref(kind, name) => {
                        vec![(kind.clone(), name.clone(), field.span.clone())]
                    }
                    Written::Refs(refs) => refs.clone(),
                    Written::Value(_) => continue,
                };
                for (kind, name, span) in refs {
                    if !declared.contains_key(&(kind.clone(), name.clone())) {
                        let candidates: Vec<&str> = declared
                            .keys()
                            .filter(|(k, _)| *k == kind)
                            .map(|(_, n)| n.as_str())
                            .collect();
                        let mut d = Diagnostic::error(
                            "undeclared_reference",
                            format!("{kind}.{name} is not declared"),
                            Some(span),
                        );
                        d = match did_you_mean(&name, candidates.iter().copied()) {
                            Some(s) => d.with_help(format!("did you mean {kind}.{s}?")),
                            None if candidates.is_empty() => {
                                d.with_help(format!("declare it: {kind} \"{name}\" {{ … }}"))
                            }
                            None => d.with_help(format!(
                                "declared {kind} blocks: {}",
                                candidates.join(", ")
                            )),
                        };
                        self.error(d);
                    }
                }
            }
        }
    }
}
