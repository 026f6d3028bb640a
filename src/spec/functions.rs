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

/// A function's result, refused when larger than a spec value may be:
/// nested `replace` or doubling `concat` would otherwise fill the memory.
fn bounded(value: Value) -> Result<Value, String> {
    let limit = super::eval::MAX_VALUE_BYTES;
    if super::eval::value_size(&value, limit) > limit {
        return Err(too_large());
    }
    Ok(value)
}

fn too_large() -> String {
    format!(
        "the result would be larger than {} KiB: a spec holds names and settings, not data",
        super::eval::MAX_VALUE_BYTES >> 10
    )
}

fn replace(args: FuncArgs) -> Result<Value, String> {
    let (text, from, to) = (
        string_arg(&args, 0),
        string_arg(&args, 1),
        string_arg(&args, 2),
    );
    // Bound before building: the result's length is known from the count.
    let count = if from.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(from.as_str()).count()
    };
    let length = text.len() - count * from.len() + count * to.len();
    if length > super::eval::MAX_VALUE_BYTES {
        return Err(too_large());
    }
    Ok(Value::String(text.replace(&from, &to)))
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
    bounded(Value::String(parts.join(&separator)))
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
    let mut size = 0;
    for list in args.variadic_args() {
        let items = list.as_array().ok_or("concat takes lists")?;
        size += items
            .iter()
            .map(|v| super::eval::value_size(v, super::eval::MAX_VALUE_BYTES))
            .sum::<usize>();
        if size > super::eval::MAX_VALUE_BYTES {
            return Err(too_large());
        }
        out.extend(items.iter().cloned());
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
