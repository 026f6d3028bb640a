//! What an expression refers to: the `var.NAME` and `local.NAME` it reads.
//! Evaluation uses it to order locals (each after the locals it reads, so a
//! spec evaluates in one pass), to give each expression only the values it
//! reads, and to carry sensitivity from a variable to everything computed
//! from it. Pure: walks syntax, evaluates nothing.

use hcl::{Expression, ObjectKey, TraversalOperator};
use std::collections::BTreeSet;

/// The names an expression reads from `var` and `local`. `all_vars` /
/// `all_locals`: the whole object is read (`var` alone, `var[x]`), so every
/// name counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct References {
    pub vars: BTreeSet<String>,
    pub locals: BTreeSet<String>,
    pub all_vars: bool,
    pub all_locals: bool,
}

impl References {
    pub fn of(expression: &Expression) -> References {
        let mut references = References::default();
        references.walk(expression);
        references
    }

    /// Whether the expression reads `var.name`.
    pub fn reads_var(&self, name: &str) -> bool {
        self.all_vars || self.vars.contains(name)
    }

    /// Whether the expression reads `local.name`.
    pub fn reads_local(&self, name: &str) -> bool {
        self.all_locals || self.locals.contains(name)
    }

    fn root(&mut self, root: &str, attribute: Option<&str>) {
        let (names, all) = match root {
            "var" => (&mut self.vars, &mut self.all_vars),
            "local" => (&mut self.locals, &mut self.all_locals),
            _ => return,
        };
        match attribute {
            Some(name) => {
                names.insert(name.to_string());
            }
            None => *all = true,
        }
    }

    fn walk(&mut self, expression: &Expression) {
        match expression {
            Expression::Variable(variable) => self.root(variable.as_str(), None),
            Expression::Traversal(traversal) => {
                let first = traversal.operators.first();
                match (&traversal.expr, first) {
                    (Expression::Variable(root), Some(TraversalOperator::GetAttr(name))) => {
                        self.root(root.as_str(), Some(name.as_str()))
                    }
                    (
                        Expression::Variable(root),
                        Some(TraversalOperator::Index(Expression::String(name))),
                    ) => self.root(root.as_str(), Some(name)),
                    _ => self.walk(&traversal.expr),
                }
                for operator in &traversal.operators {
                    if let TraversalOperator::Index(index) = operator {
                        self.walk(index);
                    }
                }
            }
            Expression::Array(items) => items.iter().for_each(|item| self.walk(item)),
            Expression::Object(object) => {
                for (key, value) in object.iter() {
                    if let ObjectKey::Expression(key) = key {
                        self.walk(key);
                    }
                    self.walk(value);
                }
            }
            Expression::Parenthesis(inner) => self.walk(inner),
            Expression::FuncCall(call) => call.args.iter().for_each(|arg| self.walk(arg)),
            Expression::Conditional(conditional) => {
                self.walk(&conditional.cond_expr);
                self.walk(&conditional.true_expr);
                self.walk(&conditional.false_expr);
            }
            Expression::Operation(operation) => match operation.as_ref() {
                hcl::Operation::Unary(unary) => self.walk(&unary.expr),
                hcl::Operation::Binary(binary) => {
                    self.walk(&binary.lhs_expr);
                    self.walk(&binary.rhs_expr);
                }
            },
            Expression::ForExpr(for_expr) => {
                self.walk(&for_expr.collection_expr);
                if let Some(key) = &for_expr.key_expr {
                    self.walk(key);
                }
                self.walk(&for_expr.value_expr);
                if let Some(condition) = &for_expr.cond_expr {
                    self.walk(condition);
                }
            }
            Expression::TemplateExpr(template) => match hcl::Template::from_expr(template) {
                Ok(template) => self.walk_template(&template),
                // Unparsable: the evaluator reports it; assume the worst.
                Err(_) => {
                    self.all_vars = true;
                    self.all_locals = true;
                }
            },
            _ => {}
        }
    }

    fn walk_template(&mut self, template: &hcl::Template) {
        use hcl::template::{Directive, Element};
        for element in template.elements() {
            match element {
                Element::Interpolation(interpolation) => self.walk(&interpolation.expr),
                Element::Directive(directive) => match directive.as_ref() {
                    Directive::If(d) => {
                        self.walk(&d.cond_expr);
                        self.walk_template(&d.true_template);
                        if let Some(other) = &d.false_template {
                            self.walk_template(other);
                        }
                    }
                    Directive::For(d) => {
                        self.walk(&d.collection_expr);
                        self.walk_template(&d.template);
                    }
                },
                Element::Literal(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> References {
        let expression: Expression = hcl_edit::parser::parse_expr(text).unwrap().into();
        References::of(&expression)
    }

    #[test]
    fn finds_what_functions_templates_and_fors_read() {
        let r = refs(r#"upper(replace(var.tok, "a", local.x))"#);
        assert!(r.reads_var("tok") && r.reads_local("x") && !r.reads_var("x"));
        let r = refs(r#""${var.a}-%{ if local.b }${local.c}%{ endif }""#);
        assert!(r.reads_var("a") && r.reads_local("b") && r.reads_local("c"));
        let r = refs(r#"[for k, v in local.m : "${k}${var.p}" if v != ""]"#);
        assert!(r.reads_local("m") && r.reads_var("p"));
        let r = refs(r#"var["tok"]"#);
        assert!(r.reads_var("tok") && !r.all_vars);
        let r = refs(r#"local"#);
        assert!(r.all_locals && r.reads_local("anything"));
        let r = refs(r#"1 + 2"#);
        assert_eq!(r, References::default());
    }
}
