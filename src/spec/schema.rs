//! The block schema: which blocks exist, which attributes and nested blocks
//! each takes, what kind of value each attribute holds and which are
//! required. One table ([`SCHEMA`]) that checking and conversion both read;
//! adding an attribute is one row here plus its use in `build`. Owns the
//! checking of one evaluated value against its kind; knows nothing of files,
//! spans or the typed model.

use std::time::Duration;

/// What an attribute holds, for checking and conversion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    String,
    Duration,
    Count,
    Bool,
    Strings,
    /// A reference to one block of this type (`policy.daily`).
    Ref(&'static str),
    /// A list of references to blocks of this type.
    Refs(&'static str),
    OneOf(&'static [&'static str]),
}

pub(super) struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn optional(name: &'static str, kind: Kind) -> Attribute {
    Attribute {
        name,
        kind,
        required: false,
    }
}

const fn required(name: &'static str, kind: Kind) -> Attribute {
    Attribute {
        name,
        kind,
        required: true,
    }
}

pub(super) struct BlockSchema {
    pub name: &'static str,
    pub attributes: &'static [Attribute],
    /// Nested blocks, each itself a row of [`SCHEMA`].
    pub blocks: &'static [&'static str],
}

impl BlockSchema {
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn attribute_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.attributes.iter().map(|a| a.name)
    }
}

const CONSISTENCY: &[&str] = &["none", "stop", "pause"];

/// Every block lifeboat reads, top-level and nested (`variable` and
/// `locals` have their own rules in `eval`).
const SCHEMA: &[BlockSchema] = {
    use Kind::*;
    &[
        BlockSchema {
            name: "repository",
            attributes: &[optional("path", String)],
            blocks: &["s3", "sftp", "encryption"],
        },
        BlockSchema {
            name: "s3",
            attributes: &[
                required("endpoint", String),
                required("bucket", String),
                optional("region", String),
                optional("prefix", String),
                optional("access_key_env", String),
                optional("access_key_file", String),
                optional("secret_key_env", String),
                optional("secret_key_file", String),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "sftp",
            attributes: &[
                required("host", String),
                optional("port", Count),
                required("user", String),
                required("path", String),
                optional("identity", String),
                optional("known_hosts", String),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "encryption",
            attributes: &[optional("passphrase_env", String), optional("none", Bool)],
            blocks: &[],
        },
        BlockSchema {
            name: "policy",
            attributes: &[
                optional("rpo", Duration),
                optional("rto", Duration),
                optional("drill_every", Duration),
                optional("copies", Refs("repository")),
            ],
            blocks: &["retention"],
        },
        BlockSchema {
            name: "retention",
            attributes: &[
                optional("keep_last", Count),
                optional("keep_hourly", Count),
                optional("keep_daily", Count),
                optional("keep_weekly", Count),
                optional("keep_monthly", Count),
                optional("keep_yearly", Count),
                optional("keep_within", Duration),
                optional("keep_tagged", Strings),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "volume",
            attributes: &[
                required("name", String),
                optional("policy", Ref("policy")),
                optional("consistency", OneOf(CONSISTENCY)),
                optional("service", Ref("service")),
                optional("engine", Ref("engine")),
                optional("pre", Strings),
                optional("post", Strings),
                optional("hook_timeout", Duration),
                optional("exclude", Strings),
                optional("exclude_if_present", Strings),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "bind",
            attributes: &[
                required("path", String),
                optional("policy", Ref("policy")),
                optional("consistency", OneOf(CONSISTENCY)),
                optional("service", Ref("service")),
                optional("engine", Ref("engine")),
                optional("pre", Strings),
                optional("post", Strings),
                optional("hook_timeout", Duration),
                optional("exclude", Strings),
                optional("exclude_if_present", Strings),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "image",
            attributes: &[
                required("ref", String),
                optional("policy", Ref("policy")),
                optional("engine", Ref("engine")),
                optional("base", Ref("image")),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "dump",
            attributes: &[
                required("service", Ref("service")),
                required("command", Strings),
                optional("restore_command", Strings),
                optional("fail_on_stderr", Strings),
                optional("policy", Ref("policy")),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "service",
            attributes: &[
                required("container", String),
                optional("image", Ref("image")),
                optional("volumes", Refs("volume")),
                optional("binds", Refs("bind")),
                optional("depends_on", Refs("service")),
                optional("verify", Strings),
                optional("start_timeout", Duration),
                optional("stop_timeout", Duration),
                optional("engine", Ref("engine")),
                optional("pre", Strings),
                optional("post", Strings),
                optional("hook_timeout", Duration),
            ],
            blocks: &[],
        },
        BlockSchema {
            name: "schedule",
            attributes: &[required("every", Duration)],
            blocks: &[],
        },
        BlockSchema {
            name: "notify",
            attributes: &[
                optional("url", String),
                optional("url_env", String),
                optional("on", Strings),
                optional("timeout", Duration),
            ],
            blocks: &["healthchecks"],
        },
        BlockSchema {
            name: "healthchecks",
            attributes: &[optional("url", String), optional("url_env", String)],
            blocks: &[],
        },
        BlockSchema {
            name: "engine",
            attributes: &[
                optional("host", String),
                optional("cert_path", String),
                optional("ssh_identity", String),
            ],
            blocks: &[],
        },
    ]
};

/// The schema of a block type, top-level or nested.
pub(super) fn schema(block: &str) -> Option<&'static BlockSchema> {
    SCHEMA.iter().find(|s| s.name == block)
}

/// The block types allowed at the top of a file, in the order help lists them.
pub(super) const TOP_LEVEL: &[&str] = &[
    "repository",
    "policy",
    "volume",
    "bind",
    "image",
    "dump",
    "service",
    "engine",
    "schedule",
    "notify",
    "variable",
    "locals",
    "moved",
];

/// Top-level blocks without a name, at most one each per spec.
pub(super) const UNLABELED: &[&str] = &["schedule"];

pub(super) fn help_for(kind: Kind) -> String {
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

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    // `mo` is how people abbreviate months (`1mo`, as in Prometheus and
    // retention tools); humantime knows `M`, `month` and `months` only.
    let spelled = months_spelled_out(text);
    humantime::parse_duration(&spelled).map_err(|e| format!("{text:?} is not a duration ({e})"))
}

/// `1mo2d` → `1months2d`: every number directly followed by `mo` (and not
/// by `mon…`, which humantime reads itself).
fn months_spelled_out(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous: Option<char> = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let after_number = previous.is_some_and(|p| p.is_ascii_digit() || p == ' ');
        let abbreviated =
            rest.starts_with("mo") && !rest[2..].chars().next().is_some_and(char::is_alphabetic);
        if after_number && abbreviated {
            out.push_str("months");
            rest = &rest[2..];
            previous = Some('o');
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            previous = Some(c);
        }
    }
    out
}

pub(super) fn check_value(kind: Kind, value: &hcl::Value) -> Result<(), String> {
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

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;

    #[test]
    fn months_may_be_written_mo() {
        let month = parse_duration("1months").unwrap();
        assert_eq!(parse_duration("1mo").unwrap(), month);
        assert_eq!(
            parse_duration("2mo 3d").unwrap(),
            month * 2 + std::time::Duration::from_secs(3 * 86400)
        );
        assert_eq!(parse_duration("1month").unwrap(), month);
        assert!(parse_duration("1moo").is_err());
        assert!(parse_duration("é1mo").is_err());
    }
}
