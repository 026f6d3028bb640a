//! Checking blocks against the schema: top-level block types and their one
//! label, unique names, known attributes and nested blocks, required
//! attributes, and the kind of each value (evaluated with variables and
//! locals, or read as a `kind.name` reference). The result is [`Checked`]
//! blocks that `resolve` and `build` read; nothing here builds the model.

use super::diagnostics::Diagnostic;
use super::load::Loader;
use super::model::{Consistency, Hooks, Span};
use super::names;
use super::schema::{
    Attribute, BlockSchema, Kind, TOP_LEVEL, UNLABELED, check_value, help_for, parse_duration,
    schema,
};
use super::suggest::did_you_mean;
use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::{Block, Body, Structure};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Every declared `(block type, name)`, with the span of its label.
pub(super) type Declared = BTreeMap<(String, String), Span>;

/// One value as written: evaluated, or a reference.
#[derive(Debug, Clone)]
pub(super) enum Written {
    Value(hcl::Value),
    Ref(String, String),
    Refs(Vec<(String, String, Span)>),
}

pub(super) struct Field {
    pub written: Written,
    pub span: Span,
}

/// An attribute-checked block, ready for conversion.
pub(super) struct Checked {
    pub label: String,
    pub span: Span,
    pub fields: HashMap<String, Field>,
    pub blocks: HashMap<String, Checked>,
}

impl Loader<'_> {
    /// Checks every top-level block of every file; `variable` and `locals`
    /// are `eval`'s.
    pub(super) fn check_blocks(
        &mut self,
        bodies: &[(usize, Body)],
    ) -> (Declared, Vec<(String, Checked)>) {
        let mut declared: Declared = BTreeMap::new();
        let mut checked: Vec<(String, Checked)> = Vec::new();
        // Where each unlabeled block was first declared (one per spec).
        let mut unlabeled: BTreeMap<String, Span> = BTreeMap::new();
        for (file, body) in bodies {
            for structure in body.iter() {
                let block = match structure {
                    Structure::Block(block) => block,
                    Structure::Attribute(attribute) => {
                        let span = self.span(*file, attribute.key.span());
                        self.error(
                        Diagnostic::error(
                            "top_level_attribute",
                            format!(
                                "attribute {:?} outside any block",
                                attribute.key.value().as_str()
                            ),
                            Some(span),
                        )
                        .with_help(
                            "attributes belong inside a block, e.g. volume \"data\" { name = \"…\" }",
                        ),
                    );
                        continue;
                    }
                };
                let name = block.ident.value().as_str();
                if name == "variable" || name == "locals" || name == "moved" {
                    continue;
                }
                let ident_span = self.span(*file, block.ident.span());
                if !TOP_LEVEL.contains(&name) {
                    let mut d = Diagnostic::error(
                        "unknown_block",
                        format!("unknown block type {name:?}"),
                        Some(ident_span),
                    );
                    d = match did_you_mean(name, TOP_LEVEL.iter().copied()) {
                        Some(s) => d.with_help(format!("did you mean {s:?}?")),
                        None => d.with_help(format!("blocks are: {}", TOP_LEVEL.join(", "))),
                    };
                    self.error(d);
                    continue;
                }
                if UNLABELED.contains(&name) {
                    if let Some(result) = self.check_unlabeled(*file, block, name, &mut unlabeled) {
                        checked.push((name.to_string(), result));
                    }
                    continue;
                }
                if block.labels.len() != 1 {
                    self.error(
                        Diagnostic::error(
                            "labels",
                            format!("a {name} block takes exactly one name"),
                            Some(ident_span),
                        )
                        .with_help(format!("write {name} \"NAME\" {{ … }}")),
                    );
                    continue;
                }
                let label = block.labels[0].as_str().to_string();
                let label_span = self.span(*file, block.labels[0].span());
                if !self.label_is_a_name(&label, &label_span) {
                    continue;
                }
                if let Some(first) = declared.get(&(name.to_string(), label.clone())) {
                    let first = first.clone();
                    self.error(
                        Diagnostic::error(
                            "duplicate",
                            format!("{name}.{label} is declared twice"),
                            Some(label_span),
                        )
                        .with_related(first, "first declared here")
                        .with_help("names must be unique per block type across all files"),
                    );
                    continue;
                }
                declared.insert((name.to_string(), label.clone()), label_span);
                let Some(schema) = schema(name) else {
                    continue;
                };
                let result = self.check_block(*file, block, schema, label);
                checked.push((name.to_string(), result));
            }
        }
        (declared, checked)
    }

    /// A block of which a spec has at most one, without a name
    /// (`schedule { … }`): no resource, so nothing can refer to it.
    fn check_unlabeled(
        &mut self,
        file: usize,
        block: &Block,
        name: &str,
        seen: &mut BTreeMap<String, Span>,
    ) -> Option<Checked> {
        let ident_span = self.span(file, block.ident.span());
        if !block.labels.is_empty() {
            self.error(
                Diagnostic::error(
                    "labels",
                    format!("a {name} block takes no name"),
                    Some(ident_span),
                )
                .with_help(format!("write {name} {{ … }}")),
            );
            return None;
        }
        if let Some(first) = seen.get(name) {
            let first = first.clone();
            self.error(
                Diagnostic::error(
                    "duplicate",
                    format!("{name} is declared twice"),
                    Some(ident_span),
                )
                .with_related(first, "first declared here")
                .with_help(format!("a spec has one {name} block, in any of its files")),
            );
            return None;
        }
        seen.insert(name.to_string(), ident_span);
        let schema = schema(name)?;
        Some(self.check_block(file, block, schema, String::new()))
    }

    /// Reports a block label that cannot be an address's name.
    pub(super) fn label_is_a_name(&mut self, label: &str, span: &Span) -> bool {
        let Some(problem) = names::label_problem(label) else {
            return true;
        };
        self.error(
            Diagnostic::error("bad_name", format!("block name: {problem}"), Some(span.clone()))
                .with_help("blocks are named like volume \"app_data\" { … }: the name is used as volume.app_data"),
        );
        false
    }

    /// Reads `kind.name` references (not evaluated: they name resources).
    fn reference(
        &mut self,
        file: usize,
        expression: &Expression,
        want: &str,
    ) -> Option<(String, String, Span)> {
        let span = self.span(file, expression.span());
        if let Expression::Traversal(traversal) = expression
            && let Expression::Variable(root) = &traversal.expr
            && traversal.operators.len() == 1
            && let TraversalOperator::GetAttr(name) = traversal.operators[0].value()
        {
            let kind = root.value().as_str().to_string();
            if kind == want {
                return Some((kind, name.value().as_str().to_string(), span));
            }
            self.error(
                Diagnostic::error(
                    "wrong_reference",
                    format!(
                        "expected a reference to a {want}, found {kind}.{}",
                        name.value().as_str()
                    ),
                    Some(span),
                )
                .with_help(format!("write {want}.NAME")),
            );
            return None;
        }
        self.error(
            Diagnostic::error(
                "expected_reference",
                format!("expected a reference like {want}.NAME"),
                Some(span),
            )
            .with_help(format!(
                "references are written without quotes: {want}.default"
            )),
        );
        None
    }

    fn check_block(
        &mut self,
        file: usize,
        block: &Block,
        schema: &BlockSchema,
        label: String,
    ) -> Checked {
        let name = schema.name;
        let span = self.span(file, block.span());
        let mut checked = Checked {
            label,
            span: span.clone(),
            fields: HashMap::new(),
            blocks: HashMap::new(),
        };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attribute) => {
                    let key = attribute.key.value().as_str();
                    let key_span = self.span(file, attribute.key.span());
                    let Some(&Attribute { kind, .. }) = schema.attribute(key) else {
                        let mut d = Diagnostic::error(
                            "unknown_attribute",
                            format!("unknown attribute {key:?} in a {name} block"),
                            Some(key_span),
                        );
                        d = match did_you_mean(key, schema.attribute_names()) {
                            Some(s) => d.with_help(format!("did you mean {s:?}?")),
                            None => d.with_help(format!(
                                "a {name} block takes: {}",
                                schema.attribute_names().collect::<Vec<_>>().join(", ")
                            )),
                        };
                        self.error(d);
                        continue;
                    };
                    if let Some(previous) = checked.fields.get(key) {
                        let previous = previous.span.clone();
                        self.error(
                            Diagnostic::error(
                                "duplicate_attribute",
                                format!("attribute {key:?} is set twice"),
                                Some(key_span),
                            )
                            .with_related(previous, "first set here"),
                        );
                        continue;
                    }
                    let value_span = self.span(file, attribute.value.span());
                    let written = match kind {
                        Kind::Ref(want) => self
                            .reference(file, &attribute.value, want)
                            .map(|(k, n, _)| Written::Ref(k, n)),
                        Kind::Refs(want) => match &attribute.value {
                            Expression::Array(array) => {
                                let refs: Vec<_> = array
                                    .iter()
                                    .filter_map(|e| self.reference(file, e, want))
                                    .collect();
                                Some(Written::Refs(refs))
                            }
                            _ => {
                                self.error(
                                    Diagnostic::error(
                                        "wrong_type",
                                        format!("{key} must be a list of references"),
                                        Some(value_span.clone()),
                                    )
                                    .with_help(format!("write [{want}.a, {want}.b]")),
                                );
                                None
                            }
                        },
                        _ => self.evaluate(file, &attribute.value).map(Written::Value),
                    };
                    if let Some(written) = written {
                        if let Written::Value(value) = &written
                            && let Err(message) = check_value(kind, value)
                        {
                            self.error(
                                Diagnostic::error(
                                    if matches!(kind, Kind::Duration) {
                                        "bad_duration"
                                    } else {
                                        "wrong_type"
                                    },
                                    format!("{key}: {message}"),
                                    Some(value_span.clone()),
                                )
                                .with_help(help_for(kind)),
                            );
                            continue;
                        }
                        checked.fields.insert(
                            key.to_string(),
                            Field {
                                written,
                                span: value_span,
                            },
                        );
                    }
                }
                Structure::Block(inner) => {
                    let inner_name = inner.ident.value().as_str();
                    let inner_span = self.span(file, inner.ident.span());
                    let inner_schema = schema
                        .blocks
                        .contains(&inner_name)
                        .then(|| super::schema::schema(inner_name))
                        .flatten();
                    let Some(inner_schema) = inner_schema else {
                        let mut d = Diagnostic::error(
                            "unknown_block",
                            format!("unknown block {inner_name:?} in a {name} block"),
                            Some(inner_span),
                        );
                        if let Some(s) = did_you_mean(inner_name, schema.blocks.iter().copied()) {
                            d = d.with_help(format!("did you mean {s:?}?"));
                        }
                        self.error(d);
                        continue;
                    };
                    let nested = self.check_block(file, inner, inner_schema, String::new());
                    checked.blocks.insert(inner_name.to_string(), nested);
                }
            }
        }
        for required in schema.attributes.iter().filter(|a| a.required) {
            let required = required.name;
            if !checked.fields.contains_key(required) {
                self.error(Diagnostic::error(
                    "missing_attribute",
                    format!(
                        "{name} {:?} needs the attribute {required:?}",
                        checked.label
                    ),
                    Some(span.clone()),
                ));
            }
        }
        checked
    }
}

impl Checked {
    pub fn string(&self, key: &str) -> Option<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::String(s))) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn duration(&self, key: &str) -> Option<Duration> {
        self.string(key).and_then(|s| parse_duration(&s).ok())
    }
    pub fn count(&self, key: &str) -> Option<u32> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::Number(n))) => n.as_u64().map(|n| n as u32),
            _ => None,
        }
    }
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::Bool(b))) => Some(*b),
            _ => None,
        }
    }
    pub fn strings(&self, key: &str) -> Vec<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::Array(items))) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
    pub fn reference(&self, key: &str) -> Option<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Ref(_, name)) => Some(name.clone()),
            _ => None,
        }
    }
    pub fn references(&self, key: &str) -> Vec<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Refs(refs)) => refs.iter().map(|(_, n, _)| n.clone()).collect(),
            _ => Vec::new(),
        }
    }
    pub fn hooks(&self) -> Hooks {
        Hooks {
            pre: self.strings("pre"),
            post: self.strings("post"),
            timeout: self.duration("hook_timeout"),
        }
    }
    pub fn consistency(&self) -> Consistency {
        match self.string("consistency").as_deref() {
            Some("stop") => Consistency::Stop,
            Some("pause") => Consistency::Pause,
            _ => Consistency::None,
        }
    }
}
