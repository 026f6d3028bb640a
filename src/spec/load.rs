//! Reading a directory of `*.hcl` files into the typed [`Spec`]: parse with
//! hcl-edit (which keeps byte spans), check every block and attribute against
//! the schema below, evaluate expressions with hcl-rs (variables, locals,
//! interpolation, functions), resolve references, and collect every problem.

use super::diagnostics::{Diagnostic, Diagnostics, line_column};
use super::functions;
use super::model::*;
use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::{Block, Body, Structure};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What an attribute holds, for checking and conversion.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    String,
    Duration,
    Count,
    Bool,
    Strings,
    Ref(&'static str),
    Refs(&'static str),
    OneOf(&'static [&'static str]),
}

struct BlockSchema {
    attributes: &'static [(&'static str, Kind)],
    required: &'static [&'static str],
    blocks: &'static [&'static str],
}

fn schema(block: &str) -> Option<BlockSchema> {
    use Kind::*;
    const CONSISTENCY: &[&str] = &["none", "stop", "pause"];
    Some(match block {
        "repository" => BlockSchema {
            attributes: &[("path", String)],
            required: &[],
            blocks: &["s3", "encryption"],
        },
        "s3" => BlockSchema {
            attributes: &[
                ("endpoint", String),
                ("bucket", String),
                ("region", String),
                ("prefix", String),
                ("access_key_env", String),
                ("secret_key_env", String),
            ],
            required: &["endpoint", "bucket"],
            blocks: &[],
        },
        "encryption" => BlockSchema {
            attributes: &[("passphrase_env", String), ("none", Bool)],
            required: &[],
            blocks: &[],
        },
        "policy" => BlockSchema {
            attributes: &[
                ("rpo", Duration),
                ("rto", Duration),
                ("copies", Refs("repository")),
            ],
            required: &[],
            blocks: &["retention"],
        },
        "retention" => BlockSchema {
            attributes: &[
                ("keep_last", Count),
                ("keep_hourly", Count),
                ("keep_daily", Count),
                ("keep_weekly", Count),
                ("keep_monthly", Count),
                ("keep_yearly", Count),
                ("keep_within", Duration),
            ],
            required: &[],
            blocks: &[],
        },
        "volume" => BlockSchema {
            attributes: &[
                ("name", String),
                ("policy", Ref("policy")),
                ("consistency", OneOf(CONSISTENCY)),
                ("service", Ref("service")),
                ("engine", Ref("engine")),
            ],
            required: &["name"],
            blocks: &[],
        },
        "bind" => BlockSchema {
            attributes: &[
                ("path", String),
                ("policy", Ref("policy")),
                ("consistency", OneOf(CONSISTENCY)),
                ("service", Ref("service")),
            ],
            required: &["path"],
            blocks: &[],
        },
        "image" => BlockSchema {
            attributes: &[
                ("ref", String),
                ("policy", Ref("policy")),
                ("engine", Ref("engine")),
                ("base", Ref("image")),
            ],
            required: &["ref"],
            blocks: &[],
        },
        "dump" => BlockSchema {
            attributes: &[
                ("service", Ref("service")),
                ("command", Strings),
                ("restore_command", Strings),
                ("policy", Ref("policy")),
            ],
            required: &["service", "command"],
            blocks: &[],
        },
        "service" => BlockSchema {
            attributes: &[
                ("container", String),
                ("image", Ref("image")),
                ("volumes", Refs("volume")),
                ("binds", Refs("bind")),
                ("depends_on", Refs("service")),
                ("verify", Strings),
                ("engine", Ref("engine")),
            ],
            required: &["container"],
            blocks: &[],
        },
        "engine" => BlockSchema {
            attributes: &[("host", String)],
            required: &[],
            blocks: &[],
        },
        _ => return None,
    })
}

const TOP_LEVEL: &[&str] = &[
    "repository",
    "policy",
    "volume",
    "bind",
    "image",
    "dump",
    "service",
    "engine",
    "variable",
    "locals",
];

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            previous = current;
        }
    }
    row[b.len()]
}

pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// One value as written: evaluated, or a reference.
#[derive(Debug, Clone)]
enum Written {
    Value(hcl::Value),
    Ref(String, String),
    Refs(Vec<(String, String, Span)>),
}

struct Field {
    written: Written,
    span: Span,
}

/// An attribute-checked block, ready for conversion.
struct Checked {
    label: String,
    span: Span,
    fields: HashMap<String, Field>,
    blocks: HashMap<String, Checked>,
}

struct Loader<'v> {
    files: Vec<SourceFile>,
    diagnostics: Vec<Diagnostic>,
    context: hcl::eval::Context<'static>,
    vars: &'v VarInputs,
    /// String values of sensitive variables (and of their list elements).
    sensitive: Vec<String>,
}

impl Loader<'_> {
    fn span(&self, file: usize, range: Option<std::ops::Range<usize>>) -> Span {
        let range = range.unwrap_or(0..0);
        let text = &self.files[file].text;
        let (line, column) = line_column(text, range.start);
        Span {
            file: self.files[file].path.clone(),
            start: range.start,
            end: range.end,
            line,
            column,
        }
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn evaluate(&mut self, file: usize, expression: &Expression) -> Option<hcl::Value> {
        use hcl::eval::Evaluate;
        let converted: hcl::Expression = expression.clone().into();
        match converted.evaluate(&self.context) {
            Ok(value) => Some(value),
            Err(errors) => {
                let span = self.span(file, expression.span());
                let message = errors.to_string();
                self.error(
                    Diagnostic::error(
                        "expression",
                        format!("cannot evaluate: {message}"),
                        Some(span),
                    )
                    .with_help("variables are var.NAME, locals are local.NAME"),
                );
                None
            }
        }
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

    fn check_block(&mut self, file: usize, block: &Block, name: &str, label: String) -> Checked {
        let span = self.span(file, block.span());
        let schema = schema(name).expect("caller checks the block type");
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
                    let Some((_, kind)) = schema.attributes.iter().find(|(a, _)| *a == key) else {
                        let mut d = Diagnostic::error(
                            "unknown_attribute",
                            format!("unknown attribute {key:?} in a {name} block"),
                            Some(key_span),
                        );
                        let names = schema.attributes.iter().map(|(a, _)| *a);
                        d = match did_you_mean(key, names) {
                            Some(s) => d.with_help(format!("did you mean {s:?}?")),
                            None => d.with_help(format!(
                                "a {name} block takes: {}",
                                schema
                                    .attributes
                                    .iter()
                                    .map(|(a, _)| *a)
                                    .collect::<Vec<_>>()
                                    .join(", ")
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
                            && let Err(message) = check_value(*kind, value)
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
                                .with_help(help_for(*kind)),
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
                    if !schema.blocks.contains(&inner_name) {
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
                    }
                    let nested = self.check_block(file, inner, inner_name, String::new());
                    checked.blocks.insert(inner_name.to_string(), nested);
                }
            }
        }
        for required in schema.required {
            if !checked.fields.contains_key(*required) {
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

fn help_for(kind: Kind) -> String {
    match kind {
        Kind::Duration => "write a duration like \"30m\", \"24h\" or \"7d\"".into(),
        Kind::Count => "write a whole number, e.g. 7".into(),
        Kind::Bool => "write true or false".into(),
        Kind::Strings => {
            "write a list of strings, e.g. [\"pg_isready\", \"-U\", \"postgres\"]".into()
        }
        Kind::OneOf(options) => format!("one of: {}", options.join(", ")),
        _ => "write a string in double quotes".into(),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration ({e})"))
}

fn check_value(kind: Kind, value: &hcl::Value) -> Result<(), String> {
    match (kind, value) {
        (Kind::String, hcl::Value::String(_)) => Ok(()),
        (Kind::Duration, hcl::Value::String(text)) => {
            let d = parse_duration(text)?;
            if d.is_zero() {
                Err("a duration of zero means nothing".into())
            } else {
                Ok(())
            }
        }
        (Kind::Count, hcl::Value::Number(n))
            if n.as_u64().is_some_and(|n| n <= u32::MAX as u64) =>
        {
            Ok(())
        }
        (Kind::Bool, hcl::Value::Bool(_)) => Ok(()),
        (Kind::Strings, hcl::Value::Array(items))
            if items.iter().all(|i| matches!(i, hcl::Value::String(_))) =>
        {
            Ok(())
        }
        (Kind::OneOf(options), hcl::Value::String(s)) if options.contains(&s.as_str()) => Ok(()),
        (Kind::OneOf(options), other) => {
            Err(format!("{other} is not one of {}", options.join(", ")))
        }
        (kind, other) => Err(format!("expected {}, found {}", describe(kind), other)),
    }
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::String => "a string",
        Kind::Duration => "a duration string",
        Kind::Count => "a whole number",
        Kind::Bool => "true or false",
        Kind::Strings => "a list of strings",
        Kind::OneOf(_) => "one of the listed words",
        Kind::Ref(_) | Kind::Refs(_) => "a reference",
    }
}

impl Checked {
    fn string(&self, key: &str) -> Option<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::String(s))) => Some(s.clone()),
            _ => None,
        }
    }
    fn duration(&self, key: &str) -> Option<Duration> {
        self.string(key).and_then(|s| parse_duration(&s).ok())
    }
    fn count(&self, key: &str) -> Option<u32> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::Number(n))) => n.as_u64().map(|n| n as u32),
            _ => None,
        }
    }
    fn bool(&self, key: &str) -> Option<bool> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::Bool(b))) => Some(*b),
            _ => None,
        }
    }
    fn strings(&self, key: &str) -> Vec<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Value(hcl::Value::Array(items))) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
    fn reference(&self, key: &str) -> Option<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Ref(_, name)) => Some(name.clone()),
            _ => None,
        }
    }
    fn references(&self, key: &str) -> Vec<String> {
        match self.fields.get(key).map(|f| &f.written) {
            Some(Written::Refs(refs)) => refs.iter().map(|(_, n, _)| n.clone()).collect(),
            _ => Vec::new(),
        }
    }
    fn consistency(&self) -> Consistency {
        match self.string("consistency").as_deref() {
            Some("stop") => Consistency::Stop,
            Some("pause") => Consistency::Pause,
            _ => Consistency::None,
        }
    }
}

/// A `variable` block as declared.
struct Variable {
    name: String,
    type_expr: Option<String>,
    default: Option<hcl::Value>,
    sensitive: bool,
    validations: Vec<(Expression, String, usize, Span)>,
    span: Span,
}

fn read_files(dir: &Path) -> Result<Vec<SourceFile>, Diagnostics> {
    let fail = |message: String| Diagnostics {
        items: vec![Diagnostic::error("read", message, None)],
        files: Vec::new(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        fail(format!(
            "cannot read the spec directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(fail(format!(
            "no *.hcl files in {}: write a spec there (see examples/) or pass --chdir DIR",
            dir.display()
        )));
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            let shown = path.strip_prefix(".").unwrap_or(&path).to_path_buf();
            Ok(SourceFile { path: shown, text })
        })
        .collect()
}

/// Reads the directory's spec.
pub fn load_dir(dir: &Path, vars: &VarInputs) -> Result<Spec, Diagnostics> {
    let files = read_files(dir)?;
    let mut loader = Loader {
        files,
        diagnostics: Vec::new(),
        context: functions::context(),
        vars,
        sensitive: Vec::new(),
    };
    // 1. Parse every file.
    let mut bodies: Vec<(usize, Body)> = Vec::new();
    for i in 0..loader.files.len() {
        match hcl_edit::parser::parse_body(&loader.files[i].text) {
            Ok(body) => bodies.push((i, body)),
            Err(error) => {
                let location = error.location();
                let text = &loader.files[i].text;
                let offset = location_offset(text, location.line(), location.column());
                let span = Span {
                    file: loader.files[i].path.clone(),
                    start: offset,
                    end: offset + 1,
                    line: location.line(),
                    column: location.column(),
                };
                loader.error(
                    Diagnostic::error(
                        "syntax",
                        format!("syntax error: {}", error.message()),
                        Some(span),
                    )
                    .with_help("check the line for a missing quote, brace or `=`"),
                );
            }
        }
    }
    if !loader.diagnostics.is_empty() {
        return Err(Diagnostics {
            items: loader.diagnostics,
            files: loader.files,
        });
    }
    // 2. Variables and locals first: everything else may use them.
    let variables = loader.variables(&bodies);
    loader.locals(&bodies);
    // 3. Resources.
    let mut declared: BTreeMap<(String, String), Span> = BTreeMap::new();
    let mut checked: Vec<(String, Checked)> = Vec::new();
    for (file, body) in &bodies {
        for structure in body.iter() {
            let Structure::Block(block) = structure else {
                let attribute = structure.as_attribute().expect("not a block");
                let span = loader.span(*file, attribute.key.span());
                loader.error(
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
            };
            let name = block.ident.value().as_str();
            if name == "variable" || name == "locals" {
                continue;
            }
            let ident_span = loader.span(*file, block.ident.span());
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
                loader.error(d);
                continue;
            }
            if block.labels.len() != 1 {
                loader.error(
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
            let label_span = loader.span(*file, block.labels[0].span());
            if let Some(first) = declared.get(&(name.to_string(), label.clone())) {
                let first = first.clone();
                loader.error(
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
            let result = loader.check_block(*file, block, name, label);
            checked.push((name.to_string(), result));
        }
    }
    // 4. References must point at declared resources.
    for (_, block) in &checked {
        for field in block.fields.values() {
            let refs: Vec<(String, String, Span)> = match &field.written {
                Written::Ref(kind, name) => vec![(kind.clone(), name.clone(), field.span.clone())],
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
                    loader.error(d);
                }
            }
        }
    }
    let spec = loader.build(dir, checked, variables);
    if loader.diagnostics.is_empty() {
        Ok(Spec {
            files: loader.files,
            ..spec
        })
    } else {
        Err(Diagnostics {
            items: loader.diagnostics,
            files: loader.files,
        })
    }
}

fn location_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset
                + l.char_indices()
                    .nth(column.saturating_sub(1))
                    .map(|(b, _)| b)
                    .unwrap_or(l.len());
        }
        offset += l.len();
    }
    text.len()
}

impl Loader<'_> {
    fn variables(&mut self, bodies: &[(usize, Body)]) -> Vec<VariableValue> {
        let mut declared: Vec<Variable> = Vec::new();
        for (file, body) in bodies {
            for block in body.iter().filter_map(Structure::as_block) {
                if block.ident.value().as_str() != "variable" {
                    continue;
                }
                let span = self.span(*file, block.span());
                let Some(label) = block.labels.first() else {
                    self.error(Diagnostic::error(
                        "labels",
                        "a variable block takes a name",
                        Some(span),
                    ));
                    continue;
                };
                let name = label.as_str().to_string();
                if let Some(first) = declared.iter().find(|v| v.name == name) {
                    let first = first.span.clone();
                    self.error(
                        Diagnostic::error(
                            "duplicate",
                            format!("variable {name:?} is declared twice"),
                            Some(span),
                        )
                        .with_related(first, "first declared here"),
                    );
                    continue;
                }
                let mut variable = Variable {
                    name,
                    type_expr: None,
                    default: None,
                    sensitive: false,
                    validations: Vec::new(),
                    span,
                };
                for structure in block.body.iter() {
                    match structure {
                        Structure::Attribute(a) => match a.key.value().as_str() {
                            "type" => {
                                variable.type_expr = Some(a.value.to_string().trim().to_string())
                            }
                            "default" => variable.default = self.evaluate(*file, &a.value),
                            "description" => {}
                            "sensitive" => {
                                variable.sensitive = matches!(
                                    self.evaluate(*file, &a.value),
                                    Some(hcl::Value::Bool(true))
                                )
                            }
                            other => {
                                let key_span = self.span(*file, a.key.span());
                                let mut d = Diagnostic::error(
                                    "unknown_attribute",
                                    format!("unknown attribute {other:?} in a variable block"),
                                    Some(key_span),
                                );
                                if let Some(s) = did_you_mean(
                                    other,
                                    ["type", "default", "description", "sensitive"],
                                ) {
                                    d = d.with_help(format!("did you mean {s:?}?"));
                                }
                                self.error(d);
                            }
                        },
                        Structure::Block(v) if v.ident.value().as_str() == "validation" => {
                            let condition = v
                                .body
                                .iter()
                                .filter_map(Structure::as_attribute)
                                .find(|a| a.key.value().as_str() == "condition");
                            let message = v
                                .body
                                .iter()
                                .filter_map(Structure::as_attribute)
                                .find(|a| a.key.value().as_str() == "error_message")
                                .and_then(|a| self.evaluate(*file, &a.value))
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_else(|| "the value is not valid".to_string());
                            let vspan = self.span(*file, v.span());
                            match condition {
                                Some(c) => variable.validations.push((
                                    c.value.clone(),
                                    message,
                                    *file,
                                    vspan,
                                )),
                                None => self.error(Diagnostic::error(
                                    "missing_attribute",
                                    "a validation block needs a condition",
                                    Some(vspan),
                                )),
                            }
                        }
                        Structure::Block(other) => {
                            let s = self.span(*file, other.ident.span());
                            self.error(
                                Diagnostic::error(
                                    "unknown_block",
                                    format!(
                                        "unknown block {:?} in a variable block",
                                        other.ident.value().as_str()
                                    ),
                                    Some(s),
                                )
                                .with_help("variables take validation blocks"),
                            );
                        }
                    }
                }
                declared.push(variable);
            }
        }
        // Values by precedence: default < LIFEBOAT_VAR_x < --var-file < --var.
        let mut given: HashMap<String, (hcl::Value, String)> = HashMap::new();
        for (key, value) in &self.vars.env {
            if let Some(name) = key.strip_prefix("LIFEBOAT_VAR_") {
                given.insert(
                    name.to_string(),
                    (
                        hcl::Value::String(value.clone()),
                        format!("environment variable {key}"),
                    ),
                );
            }
        }
        for path in &self.vars.var_files.clone() {
            match std::fs::read_to_string(path) {
                Err(e) => self.error(Diagnostic::error(
                    "var_file",
                    format!("cannot read --var-file {}: {e}", path.display()),
                    None,
                )),
                Ok(text) => match hcl::from_str::<hcl::Value>(&text) {
                    Ok(hcl::Value::Object(map)) => {
                        for (k, v) in map {
                            given.insert(k, (v, format!("--var-file {}", path.display())));
                        }
                    }
                    Ok(_) | Err(_) => self.error(Diagnostic::error(
                        "var_file",
                        format!(
                            "--var-file {}: expected lines like name = \"value\"",
                            path.display()
                        ),
                        None,
                    )),
                },
            }
        }
        for (name, value) in &self.vars.cli_vars {
            given.insert(
                name.clone(),
                (hcl::Value::String(value.clone()), format!("--var {name}")),
            );
        }
        for name in given.keys() {
            if !declared.iter().any(|v| &v.name == name) {
                let origin = &given[name].1;
                self.error(
                    Diagnostic::error(
                        "undeclared_variable",
                        format!("{origin} sets variable {name:?}, which the spec does not declare"),
                        None,
                    )
                    .with_help(format!(
                        "declare it: variable \"{name}\" {{ type = string }}"
                    )),
                );
            }
        }
        let mut values = hcl::Map::new();
        let mut out = Vec::new();
        for variable in &declared {
            let value = match given.get(&variable.name) {
                Some((value, origin)) => match convert(value, variable.type_expr.as_deref()) {
                    Ok(v) => Some(v),
                    Err(message) => {
                        self.error(Diagnostic::error(
                            "wrong_type",
                            format!("{origin}: variable {:?}: {message}", variable.name),
                            Some(variable.span.clone()),
                        ));
                        None
                    }
                },
                None => match &variable.default {
                    Some(default) => Some(default.clone()),
                    None => {
                        self.error(
                            Diagnostic::error(
                                "missing_variable",
                                format!("variable {:?} has no value", variable.name),
                                Some(variable.span.clone()),
                            )
                            .with_help(format!(
                                "pass --var {}=VALUE, a --var-file, or set LIFEBOAT_VAR_{}",
                                variable.name, variable.name
                            )),
                        );
                        None
                    }
                },
            };
            if let Some(value) = value {
                if let Some(type_expr) = &variable.type_expr
                    && let Err(message) = convert(&value, Some(type_expr))
                {
                    self.error(Diagnostic::error(
                        "wrong_type",
                        format!("variable {:?}: {message}", variable.name),
                        Some(variable.span.clone()),
                    ));
                }
                if variable.sensitive {
                    collect_strings(&value, &mut self.sensitive);
                }
                values.insert(variable.name.clone(), value.clone());
                out.push(VariableValue {
                    name: variable.name.clone(),
                    value: if variable.sensitive {
                        serde_json::Value::String("(sensitive)".into())
                    } else {
                        serde_json::to_value(&value).unwrap_or_default()
                    },
                    sensitive: variable.sensitive,
                    span: variable.span.clone(),
                });
            }
        }
        self.context
            .declare_var("var", hcl::Value::Object(values.clone()));
        // Validations see var.*.
        for variable in &declared {
            if !values.contains_key(&variable.name) {
                continue;
            }
            for (condition, message, file, span) in &variable.validations {
                match self.evaluate(*file, condition) {
                    Some(hcl::Value::Bool(true)) | None => {}
                    Some(_) => self.error(Diagnostic::error(
                        "validation",
                        format!("variable {:?}: {message}", variable.name),
                        Some(span.clone()),
                    )),
                }
            }
        }
        out
    }

    fn locals(&mut self, bodies: &[(usize, Body)]) {
        let mut pending: Vec<(usize, String, Expression, Span)> = Vec::new();
        for (file, body) in bodies {
            for block in body.iter().filter_map(Structure::as_block) {
                if block.ident.value().as_str() != "locals" {
                    continue;
                }
                for attribute in block.body.iter().filter_map(Structure::as_attribute) {
                    let span = self.span(*file, attribute.key.span());
                    let name = attribute.key.value().as_str().to_string();
                    if let Some((_, _, _, first)) = pending.iter().find(|(_, n, _, _)| *n == name) {
                        let first = first.clone();
                        self.error(
                            Diagnostic::error(
                                "duplicate",
                                format!("local.{name} is defined twice"),
                                Some(span),
                            )
                            .with_related(first, "first defined here"),
                        );
                        continue;
                    }
                    pending.push((*file, name, attribute.value.clone(), span));
                }
            }
        }
        // Locals may use each other: evaluate in rounds until nothing moves.
        let mut values = hcl::Map::new();
        loop {
            let before = pending.len();
            self.context
                .declare_var("local", hcl::Value::Object(values.clone()));
            pending.retain(|(_, name, expression, _)| {
                use hcl::eval::Evaluate;
                let converted: hcl::Expression = expression.clone().into();
                match converted.evaluate(&self.context) {
                    Ok(value) => {
                        values.insert(name.clone(), value);
                        false
                    }
                    Err(_) => true,
                }
            });
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        self.context
            .declare_var("local", hcl::Value::Object(values));
        for (file, _, expression, _) in pending {
            // Report with the evaluator's own message.
            self.evaluate(file, &expression);
        }
    }

    fn build(
        &mut self,
        dir: &Path,
        checked: Vec<(String, Checked)>,
        variables: Vec<VariableValue>,
    ) -> Spec {
        let mut spec = Spec {
            dir: dir.to_path_buf(),
            variables,
            sensitive_values: std::mem::take(&mut self.sensitive),
            ..Spec::default()
        };
        for (kind, block) in checked {
            let name = block.label.clone();
            let span = block.span.clone();
            match kind.as_str() {
                "repository" => {
                    let encryption = match block.blocks.get("encryption") {
                        Some(e) if e.bool("none") == Some(true) => Encryption::None,
                        Some(e) => Encryption::Passphrase {
                            passphrase_env: e
                                .string("passphrase_env")
                                .unwrap_or_else(|| "LIFEBOAT_PASSPHRASE".into()),
                        },
                        None => Encryption::Passphrase {
                            passphrase_env: "LIFEBOAT_PASSPHRASE".into(),
                        },
                    };
                    let location = match (block.string("path"), block.blocks.get("s3")) {
                        (Some(path), None) => RepositoryLocation::Local {
                            path: PathBuf::from(path),
                        },
                        (None, Some(s3)) => RepositoryLocation::S3 {
                            endpoint: s3.string("endpoint").unwrap_or_default(),
                            bucket: s3.string("bucket").unwrap_or_default(),
                            region: s3.string("region").unwrap_or_else(|| "us-east-1".into()),
                            prefix: s3.string("prefix").unwrap_or_default(),
                            access_key_env: s3
                                .string("access_key_env")
                                .unwrap_or_else(|| "AWS_ACCESS_KEY_ID".into()),
                            secret_key_env: s3
                                .string("secret_key_env")
                                .unwrap_or_else(|| "AWS_SECRET_ACCESS_KEY".into()),
                        },
                        _ => {
                            self.error(
                                Diagnostic::error("repository_location", format!("repository {name:?} needs exactly one of `path = \"…\"` or an `s3 {{ … }}` block"), Some(span.clone())),
                            );
                            continue;
                        }
                    };
                    spec.repositories.push(RepositorySpec {
                        name,
                        location,
                        encryption,
                        span,
                    });
                }
                "policy" => {
                    let retention = block.blocks.get("retention").map(|r| Retention {
                        keep_last: r.count("keep_last"),
                        keep_hourly: r.count("keep_hourly"),
                        keep_daily: r.count("keep_daily"),
                        keep_weekly: r.count("keep_weekly"),
                        keep_monthly: r.count("keep_monthly"),
                        keep_yearly: r.count("keep_yearly"),
                        keep_within: r.duration("keep_within"),
                    });
                    if let Some(r) = &retention {
                        let counts = [
                            r.keep_last,
                            r.keep_hourly,
                            r.keep_daily,
                            r.keep_weekly,
                            r.keep_monthly,
                            r.keep_yearly,
                        ];
                        let any_set = counts.iter().any(Option::is_some) || r.keep_within.is_some();
                        let keeps_something = counts.iter().any(|c| c.is_some_and(|n| n > 0))
                            || r.keep_within.is_some();
                        if any_set && !keeps_something {
                            let at = block.blocks["retention"].span.clone();
                            self.error(
                                Diagnostic::error("retention_keeps_nothing", format!("policy {name:?}: this retention keeps no snapshot at all"), Some(at))
                                    .with_help("keep at least one, e.g. keep_last = 1; leave retention out to keep everything"),
                            );
                        }
                    }
                    spec.policies.push(PolicySpec {
                        name,
                        rpo: block.duration("rpo"),
                        rto: block.duration("rto"),
                        retention: retention.unwrap_or_default(),
                        copies: block.references("copies"),
                        span,
                    });
                }
                "volume" => spec.volumes.push(VolumeSpec {
                    name,
                    volume_name: block.string("name").unwrap_or_default(),
                    engine: block.reference("engine"),
                    policy: block.reference("policy"),
                    consistency: block.consistency(),
                    service: block.reference("service"),
                    span,
                }),
                "bind" => spec.binds.push(BindSpec {
                    name,
                    path: PathBuf::from(block.string("path").unwrap_or_default()),
                    policy: block.reference("policy"),
                    consistency: block.consistency(),
                    service: block.reference("service"),
                    span,
                }),
                "image" => spec.images.push(ImageSpec {
                    name,
                    reference: block.string("ref").unwrap_or_default(),
                    engine: block.reference("engine"),
                    policy: block.reference("policy"),
                    base: block.reference("base"),
                    span,
                }),
                "dump" => spec.dumps.push(DumpSpec {
                    name,
                    service: block.reference("service").unwrap_or_default(),
                    command: block.strings("command"),
                    restore_command: block.strings("restore_command"),
                    policy: block.reference("policy"),
                    span,
                }),
                "service" => spec.services.push(ServiceSpec {
                    name,
                    container: block.string("container").unwrap_or_default(),
                    engine: block.reference("engine"),
                    image: block.reference("image"),
                    volumes: block.references("volumes"),
                    binds: block.references("binds"),
                    depends_on: block.references("depends_on"),
                    verify: block.strings("verify"),
                    span,
                }),
                "engine" => spec.engines.push(EngineSpec {
                    name,
                    host: block.string("host"),
                    span,
                }),
                _ => {}
            }
        }
        // Two volume blocks for one Docker volume would back it up twice under two names.
        let mut by_docker_name: HashMap<&str, &VolumeSpec> = HashMap::new();
        let mut duplicates = Vec::new();
        for volume in &spec.volumes {
            if let Some(first) = by_docker_name.insert(volume.volume_name.as_str(), volume) {
                duplicates.push(
                    Diagnostic::error(
                        "duplicate_volume",
                        format!(
                            "volume.{} and volume.{} both protect Docker volume {:?}",
                            first.name, volume.name, volume.volume_name
                        ),
                        Some(volume.span.clone()),
                    )
                    .with_related(first.span.clone(), "also protected here"),
                );
            }
        }
        for d in duplicates {
            self.error(d);
        }
        spec
    }
}

/// Converts a value given from outside (strings from --var and the
/// environment) to the variable's declared type.
fn convert(value: &hcl::Value, type_expr: Option<&str>) -> Result<hcl::Value, String> {
    let Some(type_expr) = type_expr else {
        return Ok(value.clone());
    };
    let type_expr = type_expr.replace(' ', "");
    match (type_expr.as_str(), value) {
        ("string", hcl::Value::String(_)) | ("any", _) => Ok(value.clone()),
        ("string", hcl::Value::Number(n)) => Ok(hcl::Value::String(n.to_string())),
        ("string", hcl::Value::Bool(b)) => Ok(hcl::Value::String(b.to_string())),
        ("number", hcl::Value::Number(_)) | ("bool", hcl::Value::Bool(_)) => Ok(value.clone()),
        ("number", hcl::Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Some(hcl::Value::Number((f as i64).into()))
                } else {
                    hcl::Number::from_f64(f).map(hcl::Value::Number)
                }
            })
            .ok_or_else(|| format!("{s:?} is not a number")),
        ("bool", hcl::Value::String(s)) => match s.trim() {
            "true" => Ok(hcl::Value::Bool(true)),
            "false" => Ok(hcl::Value::Bool(false)),
            other => Err(format!("{other:?} is not true or false")),
        },
        (t, hcl::Value::String(s))
            if t.starts_with("list(") || t.starts_with("map(") || t.starts_with("set(") =>
        {
            let parsed: hcl::Expression = hcl_edit::parser::parse_expr(s)
                .map_err(|e| format!("{s:?} is not an HCL value: {}", e.message()))?
                .into();
            use hcl::eval::Evaluate;
            let value = parsed
                .evaluate(&hcl::eval::Context::new())
                .map_err(|e| e.to_string())?;
            convert(&value, Some(t))
        }
        (t, hcl::Value::Array(items)) if t.starts_with("list(") || t.starts_with("set(") => {
            let inner = &t[t.find('(').unwrap_or(0) + 1..t.len().saturating_sub(1)];
            items
                .iter()
                .map(|i| convert(i, Some(inner)))
                .collect::<Result<Vec<_>, _>>()
                .map(hcl::Value::Array)
        }
        (t, hcl::Value::Object(map)) if t.starts_with("map(") => {
            let inner = &t[4..t.len().saturating_sub(1)];
            map.iter()
                .map(|(k, v)| convert(v, Some(inner)).map(|v| (k.clone(), v)))
                .collect::<Result<hcl::Map<_, _>, _>>()
                .map(hcl::Value::Object)
        }
        (t, other) => Err(format!("expected {t}, found {other}")),
    }
}

/// Every string (and number, as written) inside a value.
fn collect_strings(value: &hcl::Value, out: &mut Vec<String>) {
    match value {
        hcl::Value::String(s) => out.push(s.clone()),
        hcl::Value::Number(n) => out.push(n.to_string()),
        hcl::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        hcl::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}
