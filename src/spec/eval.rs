//! Evaluation of what other blocks may use: `variable` blocks (their
//! declaration, the values given from outside by Terraform's precedence,
//! type conversion and validations) and `locals`, into the evaluation
//! context; and evaluating one expression in that context. Knows no
//! resource block.

use super::diagnostics::Diagnostic;
use super::load::Loader;
use super::model::{Span, VariableValue};
use super::references::References;
use super::suggest::did_you_mean;
use hcl_edit::Span as _;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};
use std::collections::HashMap;

/// A `variable` block as declared.
struct Variable {
    name: String,
    type_expr: Option<String>,
    default: Option<hcl::Value>,
    sensitive: bool,
    validations: Vec<(Expression, String, usize, Span)>,
    span: Span,
}

impl Loader<'_> {
    pub(super) fn evaluate(&mut self, file: usize, expression: &Expression) -> Option<hcl::Value> {
        let converted: hcl::Expression = expression.clone().into();
        let references = References::of(&converted);
        let sensitive = self.reads_sensitive(&references);
        match evaluate_bounded(&converted, &self.context) {
            Ok(value) => {
                if sensitive {
                    collect_strings(&value, &mut self.sensitive);
                }
                Some(value)
            }
            Err(message) => {
                let span = self.span(file, expression.span());
                self.error(
                    Diagnostic::error(
                        "expression",
                        format!("cannot evaluate: {}", withheld(message, sensitive)),
                        Some(span),
                    )
                    .with_help("variables are var.NAME, locals are local.NAME"),
                );
                None
            }
        }
    }

    /// Whether an expression reads a sensitive variable, or a local
    /// computed from one: its value is then sensitive too (as in Terraform).
    fn reads_sensitive(&self, references: &References) -> bool {
        self.sensitive_vars.iter().any(|v| references.reads_var(v))
            || self
                .sensitive_locals
                .iter()
                .any(|l| references.reads_local(l))
    }

    pub(super) fn variables(&mut self, bodies: &[(usize, Body)]) -> Vec<VariableValue> {
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
                let label_span = self.span(*file, label.span());
                if !self.label_is_a_name(&name, &label_span) {
                    continue;
                }
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
        // As Terraform does, the environment only sets declared variables:
        // one shell exports values for many specs, and a value meant for
        // another must not break this one.
        for (key, value) in &self.vars.env {
            if let Some(name) = key.strip_prefix("LIFEBOAT_VAR_")
                && declared.iter().any(|v| v.name == name)
            {
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
            let text = super::source::read_limited(path).and_then(|bytes| {
                String::from_utf8(bytes).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")
                })
            });
            match text {
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
                        let message = if variable.sensitive {
                            sensitive_type_error(variable.type_expr.as_deref())
                        } else {
                            message
                        };
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
                    let message = if variable.sensitive {
                        sensitive_type_error(Some(type_expr))
                    } else {
                        message
                    };
                    self.error(Diagnostic::error(
                        "wrong_type",
                        format!("variable {:?}: {message}", variable.name),
                        Some(variable.span.clone()),
                    ));
                }
                if variable.sensitive {
                    collect_strings(&value, &mut self.sensitive);
                    self.sensitive_vars.insert(variable.name.clone());
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
        self.var_values = values.clone();
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

    pub(super) fn locals(&mut self, bodies: &[(usize, Body)]) {
        let mut pending: Vec<(usize, String, Expression, Span)> = Vec::new();
        let mut first_defined: HashMap<String, Span> = HashMap::new();
        for (file, body) in bodies {
            for block in body.iter().filter_map(Structure::as_block) {
                if block.ident.value().as_str() != "locals" {
                    continue;
                }
                for attribute in block.body.iter().filter_map(Structure::as_attribute) {
                    let span = self.span(*file, attribute.key.span());
                    let name = attribute.key.value().as_str().to_string();
                    if let Some(first) = first_defined.get(&name) {
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
                    first_defined.insert(name.clone(), span.clone());
                    pending.push((*file, name, attribute.value.clone(), span));
                }
            }
        }
        self.evaluate_locals(pending);
    }

    /// Evaluates locals in dependency order, each once, with only the
    /// values it reads in scope: linear in the spec, where evaluating in
    /// rounds with every local in scope was cubic (1,000 chained locals
    /// took 8.5 s). A cycle, or a local read but never defined, is an error
    /// naming them; what depends on a failed local is not reported again.
    fn evaluate_locals(&mut self, pending: Vec<(usize, String, Expression, Span)>) {
        let locals: Vec<Local> = pending
            .into_iter()
            .map(|(file, name, expression, span)| {
                let converted: hcl::Expression = expression.clone().into();
                Local {
                    file,
                    references: References::of(&converted),
                    name,
                    expression,
                    converted,
                    span,
                }
            })
            .collect();
        let index: HashMap<&str, usize> = locals
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.as_str(), i))
            .collect();
        let mut failed = vec![false; locals.len()];
        let mut dependencies: Vec<Vec<usize>> = Vec::with_capacity(locals.len());
        for (i, local) in locals.iter().enumerate() {
            let mut edges = Vec::new();
            if local.references.all_locals {
                edges.extend((0..locals.len()).filter(|j| *j != i));
            }
            for name in &local.references.locals {
                match index.get(name.as_str()) {
                    Some(j) => edges.push(*j),
                    None => {
                        failed[i] = true;
                        let mut d = Diagnostic::error(
                            "undefined_local",
                            format!(
                                "local.{} reads local.{name}, which no locals block defines",
                                local.name
                            ),
                            Some(local.span.clone()),
                        );
                        if let Some(s) = did_you_mean(name, locals.iter().map(|l| l.name.as_str()))
                        {
                            d = d.with_help(format!("did you mean local.{s}?"));
                        }
                        self.error(d);
                    }
                }
            }
            edges.sort_unstable();
            edges.dedup();
            dependencies.push(edges);
        }
        let order = match dependency_order(&dependencies) {
            Ok(order) => order,
            Err(cycle) => {
                let names: Vec<String> = cycle
                    .iter()
                    .chain(cycle.first())
                    .map(|i| format!("local.{}", locals[*i].name))
                    .collect();
                let first = &locals[cycle[0]];
                let mut d = Diagnostic::error(
                    "local_cycle",
                    format!(
                        "locals refer to each other in a cycle: {}",
                        names.join(" → ")
                    ),
                    Some(first.span.clone()),
                )
                .with_help("a local cannot depend on itself, directly or through others");
                for i in cycle.iter().skip(1) {
                    d = d.with_related(locals[*i].span.clone(), "part of the cycle");
                }
                self.error(d);
                return;
            }
        };
        let mut values = hcl::Map::new();
        let mut total = 0usize;
        for i in order {
            let local = &locals[i];
            if failed[i] || dependencies[i].iter().any(|j| failed[*j]) {
                failed[i] = true;
                continue;
            }
            let context = self.scoped_context(&local.references, &values);
            let sensitive = self.reads_sensitive(&local.references);
            let result = evaluate_bounded(&local.converted, &context).and_then(|value| {
                total += value_size(&value, MAX_VALUE_BYTES);
                if total > MAX_LOCALS_BYTES {
                    Err(format!(
                        "the locals' values add up to more than {} MiB: a spec holds names and \
                         settings, not data",
                        MAX_LOCALS_BYTES >> 20
                    ))
                } else {
                    Ok(value)
                }
            });
            match result {
                Ok(value) => {
                    if sensitive {
                        collect_strings(&value, &mut self.sensitive);
                        self.sensitive_locals.insert(local.name.clone());
                    }
                    values.insert(local.name.clone(), value);
                }
                Err(message) => {
                    failed[i] = true;
                    let span = self.span(local.file, local.expression.span());
                    self.error(
                        Diagnostic::error(
                            "expression",
                            format!(
                                "cannot evaluate local.{}: {}",
                                local.name,
                                withheld(message, sensitive)
                            ),
                            Some(span),
                        )
                        .with_help("variables are var.NAME, locals are local.NAME"),
                    );
                }
            }
        }
        self.context
            .declare_var("local", hcl::Value::Object(values));
    }

    /// A context with the functions and only the variables and locals
    /// `references` reads (cloning every local for each would make the
    /// evaluation quadratic).
    fn scoped_context(
        &self,
        references: &References,
        locals: &hcl::Map<String, hcl::Value>,
    ) -> hcl::eval::Context<'static> {
        let mut context = super::functions::context();
        let pick = |all: bool,
                    names: &std::collections::BTreeSet<String>,
                    from: &hcl::Map<String, hcl::Value>|
         -> hcl::Map<String, hcl::Value> {
            if all {
                return from.clone();
            }
            names
                .iter()
                .filter_map(|n| from.get(n).map(|v| (n.clone(), v.clone())))
                .collect()
        };
        context.declare_var(
            "var",
            hcl::Value::Object(pick(
                references.all_vars,
                &references.vars,
                &self.var_values,
            )),
        );
        context.declare_var(
            "local",
            hcl::Value::Object(pick(references.all_locals, &references.locals, locals)),
        );
        context
    }
}

/// A local as written, with what it reads.
struct Local {
    file: usize,
    name: String,
    expression: Expression,
    converted: hcl::Expression,
    references: References,
    span: Span,
}

/// The largest value one expression may produce (a spec holds names,
/// paths and settings; nothing near this).
pub(super) const MAX_VALUE_BYTES: usize = 1 << 20;

/// The most all locals together may hold.
const MAX_LOCALS_BYTES: usize = 64 << 20;

/// Evaluates `expression`, refusing arithmetic without a finite result
/// (hcl would panic) and values larger than [`MAX_VALUE_BYTES`].
fn evaluate_bounded(
    expression: &hcl::Expression,
    context: &hcl::eval::Context,
) -> Result<hcl::Value, String> {
    use hcl::eval::Evaluate;
    if let Some(problem) = arithmetic_problem(expression, context) {
        return Err(problem);
    }
    let value = expression.evaluate(context).map_err(|e| e.to_string())?;
    if value_size(&value, MAX_VALUE_BYTES) > MAX_VALUE_BYTES {
        return Err(format!(
            "the value is larger than {} KiB: a spec holds names and settings, not data",
            MAX_VALUE_BYTES >> 10
        ));
    }
    Ok(value)
}

/// About how many bytes `value` holds, counting up to just past `limit`.
pub(super) fn value_size(value: &hcl::Value, limit: usize) -> usize {
    let mut size = 0usize;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        size += match value {
            hcl::Value::String(s) => s.len() + 8,
            hcl::Value::Array(items) => {
                stack.extend(items.iter());
                8
            }
            hcl::Value::Object(map) => {
                for (key, item) in map {
                    size += key.len();
                    stack.push(item);
                }
                8
            }
            _ => 8,
        };
        if size > limit {
            return size;
        }
    }
    size
}

/// An evaluator's message, or, when the expression reads a sensitive
/// value (which the message may quote, transformed beyond recognition), a
/// message that quotes nothing.
fn withheld(message: String, sensitive: bool) -> String {
    if sensitive {
        "the expression reads a sensitive value, so the evaluator's message (which may quote it) \
         is withheld; check the types and functions used with it"
            .to_string()
    } else {
        message
    }
}

/// A type error for a sensitive variable: what was expected, not the value.
fn sensitive_type_error(type_expr: Option<&str>) -> String {
    format!(
        "the (sensitive) value given is not a {}",
        type_expr.unwrap_or("value of the declared type")
    )
}

/// Indices in an order where each comes after its dependencies (Kahn's
/// algorithm, first-declared first among equals), or one cycle.
fn dependency_order(dependencies: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = dependencies.len();
    let mut waiting_on: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in dependencies.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|i| waiting_on[*i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every node left waits on another node left: walk until one repeats.
    let mut seen: Vec<Option<usize>> = vec![None; n];
    let Some(mut at) = (0..n).find(|i| waiting_on[*i] > 0) else {
        return Ok(order);
    };
    let mut path = Vec::new();
    loop {
        if let Some(position) = seen[at] {
            return Err(path[position..].to_vec());
        }
        seen[at] = Some(path.len());
        path.push(at);
        at = dependencies[at]
            .iter()
            .copied()
            .find(|d| waiting_on[*d] > 0)
            .unwrap_or(at);
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
            let context = hcl::eval::Context::new();
            if let Some(problem) = arithmetic_problem(&parsed, &context) {
                return Err(problem);
            }
            let value = parsed.evaluate(&context).map_err(|e| e.to_string())?;
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

/// Arithmetic whose result is not a finite number (`1/0`, `5 % 0`,
/// `1e308 * 10`), found before the evaluator meets it: hcl's numbers
/// assert finiteness and would panic. Walks everything the evaluator would
/// (operands, lists, objects, calls, conditionals, templates, and `for`
/// bodies with each element of their collection bound); parts that cannot
/// be evaluated here are left for the evaluator to report.
pub(super) fn arithmetic_problem(
    expression: &hcl::Expression,
    context: &hcl::eval::Context,
) -> Option<String> {
    use hcl::Expression as E;
    use hcl::eval::Evaluate;
    let walk = |e: &hcl::Expression| arithmetic_problem(e, context);
    match expression {
        E::Array(items) => items.iter().find_map(walk),
        E::Object(object) => object.iter().find_map(|(key, value)| {
            let key = match key {
                hcl::ObjectKey::Expression(e) => walk(e),
                _ => None,
            };
            key.or_else(|| walk(value))
        }),
        E::Parenthesis(inner) => walk(inner),
        E::FuncCall(call) => call.args.iter().find_map(walk),
        E::Conditional(c) => walk(&c.cond_expr)
            .or_else(|| walk(&c.true_expr))
            .or_else(|| walk(&c.false_expr)),
        E::TemplateExpr(template) => hcl::Template::from_expr(template)
            .ok()
            .and_then(|t| template_problem(&t, context)),
        E::Operation(operation) => match operation.as_ref() {
            hcl::Operation::Unary(unary) => walk(&unary.expr),
            hcl::Operation::Binary(binary) => walk(&binary.lhs_expr)
                .or_else(|| walk(&binary.rhs_expr))
                .or_else(|| {
                    use hcl::BinaryOperator as Op;
                    let number = |e: &hcl::Expression| match e.evaluate(context) {
                        Ok(hcl::Value::Number(n)) => n.as_f64(),
                        _ => None,
                    };
                    let (Some(a), Some(b)) = (number(&binary.lhs_expr), number(&binary.rhs_expr))
                    else {
                        return None;
                    };
                    let result = match binary.operator {
                        Op::Plus => a + b,
                        Op::Minus => a - b,
                        Op::Mul => a * b,
                        Op::Div => a / b,
                        Op::Mod => a % b,
                        _ => return None,
                    };
                    (!result.is_finite()).then(|| {
                        if b == 0.0 && matches!(binary.operator, Op::Div | Op::Mod) {
                            format!("{a} {} {b} divides by zero", binary.operator)
                        } else {
                            format!(
                                "{a} {} {b} has no finite result (too large a number)",
                                binary.operator
                            )
                        }
                    })
                }),
        },
        E::ForExpr(for_expr) => walk(&for_expr.collection_expr).or_else(|| {
            let collection = for_expr.collection_expr.evaluate(context).ok()?;
            let pairs: Vec<(hcl::Value, hcl::Value)> = match collection {
                hcl::Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (hcl::Value::from(i as u64), v))
                    .collect(),
                hcl::Value::Object(map) => map
                    .into_iter()
                    .map(|(k, v)| (hcl::Value::String(k), v))
                    .collect(),
                _ => return None,
            };
            // Bounded: a spec's collections are small; a huge one is not
            // checked element by element.
            pairs.into_iter().take(1000).find_map(|(key, value)| {
                let mut inner = context.clone();
                if let Some(key_var) = &for_expr.key_var {
                    inner.declare_var(key_var.clone(), key);
                }
                inner.declare_var(for_expr.value_var.clone(), value);
                [
                    for_expr.key_expr.as_ref(),
                    Some(&for_expr.value_expr),
                    for_expr.cond_expr.as_ref(),
                ]
                .into_iter()
                .flatten()
                .find_map(|e| arithmetic_problem(e, &inner))
            })
        }),
        _ => None,
    }
}

fn template_problem(template: &hcl::Template, context: &hcl::eval::Context) -> Option<String> {
    use hcl::template::{Directive, Element};
    template
        .elements()
        .iter()
        .find_map(|element| match element {
            Element::Interpolation(interpolation) => {
                arithmetic_problem(&interpolation.expr, context)
            }
            Element::Directive(directive) => match directive.as_ref() {
                Directive::If(d) => arithmetic_problem(&d.cond_expr, context)
                    .or_else(|| template_problem(&d.true_template, context))
                    .or_else(|| {
                        d.false_template
                            .as_ref()
                            .and_then(|t| template_problem(t, context))
                    }),
                Directive::For(d) => arithmetic_problem(&d.collection_expr, context)
                    .or_else(|| template_problem(&d.template, context)),
            },
            Element::Literal(_) => None,
        })
}
