//! The functions spec expressions may call (a small, pure subset of
//! Terraform's: no file or environment access, so a spec evaluates the same
//! everywhere).

use hcl::Value;
use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};

fn string_arg(args: &FuncArgs, i: usize) -> String {
    args[i].as_str().unwrap_or_default().to_string()
}

fn lower(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(string_arg(&args, 0).to_lowercase()))
}

fn upper(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(string_arg(&args, 0).to_uppercase()))
}

fn trimspace(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(string_arg(&args, 0).trim().to_string()))
}

fn replace(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(
        string_arg(&args, 0).replace(&string_arg(&args, 1), &string_arg(&args, 2)),
    ))
}

fn join(args: FuncArgs) -> Result<Value, String> {
    let separator = string_arg(&args, 0);
    let items = args[1].as_array().ok_or("join takes a list of strings")?;
    let parts: Vec<String> = items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or("join takes a list of strings")
        })
        .collect::<Result<_, _>>()?;
    Ok(Value::String(parts.join(&separator)))
}

fn length(args: FuncArgs) -> Result<Value, String> {
    let n = match &args[0] {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        Value::String(s) => s.chars().count(),
        other => return Err(format!("length of {other} is not defined")),
    };
    Ok(Value::Number((n as u64).into()))
}

fn concat(args: FuncArgs) -> Result<Value, String> {
    let mut out = Vec::new();
    for list in args.variadic_args() {
        out.extend(list.as_array().ok_or("concat takes lists")?.iter().cloned());
    }
    Ok(Value::Array(out))
}

fn coalesce(args: FuncArgs) -> Result<Value, String> {
    args.variadic_args()
        .find(|v| !v.is_null() && v.as_str() != Some(""))
        .cloned()
        .ok_or_else(|| "coalesce: every argument is null or empty".to_string())
}

/// A context with the functions declared and no variables yet.
pub fn context() -> Context<'static> {
    let mut context = Context::new();
    let string = || ParamType::String;
    context.declare_func("lower", FuncDef::builder().param(string()).build(lower));
    context.declare_func("upper", FuncDef::builder().param(string()).build(upper));
    context.declare_func(
        "trimspace",
        FuncDef::builder().param(string()).build(trimspace),
    );
    context.declare_func(
        "replace",
        FuncDef::builder()
            .params([string(), string(), string()])
            .build(replace),
    );
    context.declare_func(
        "join",
        FuncDef::builder()
            .param(string())
            .param(ParamType::Array(Box::new(ParamType::String)))
            .build(join),
    );
    context.declare_func(
        "length",
        FuncDef::builder().param(ParamType::Any).build(length),
    );
    context.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::Array(Box::new(ParamType::Any)))
            .build(concat),
    );
    context.declare_func(
        "coalesce",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(coalesce),
    );
    context
}
