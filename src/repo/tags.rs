//! Snapshot tags: the words a snapshot's `source.tags` holds, either a bare
//! key (`pre-restore`, which lifeboat gives the safety copy a restore takes)
//! or `KEY=VALUE` (`release=v1.4.2`, from `apply --tag`). Owns their syntax:
//! parsing what users type, checking what is read back from a repository
//! (untrusted: a tag that breaks the rules makes the snapshot file damaged,
//! as any other malformed field does), and matching filters. Knows nothing
//! of plans or retention.

use std::fmt;

/// Longest key and value: a tag names a release or a ticket, not a text.
pub const MAX_KEY: usize = 64;
pub const MAX_VALUE: usize = 128;
/// Tags one snapshot holds at most.
pub const MAX_TAGS: usize = 32;

/// A `KEY=VALUE` tag, as `apply --tag` gives one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    /// Parses `KEY=VALUE` as typed by a user; the error says what to write.
    pub fn parse(text: &str) -> Result<Tag, String> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(format!(
                "tag {text:?} has no value: write KEY=VALUE, e.g. release=v1.4.2"
            ));
        };
        check_key(key).map_err(|e| format!("tag {text:?}: {e}"))?;
        check_value(value).map_err(|e| format!("tag {text:?}: {e}"))?;
        Ok(Tag {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Which snapshots `snapshots --tag` and retention's `keep_tagged` mean: a
/// key alone matches every tag of that key (and a bare tag of it), a
/// `KEY=VALUE` that one tag only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: Option<String>,
}

impl TagFilter {
    /// Parses `KEY` or `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<TagFilter, String> {
        match text.split_once('=') {
            Some(_) => Tag::parse(text).map(|tag| TagFilter {
                key: tag.key,
                value: Some(tag.value),
            }),
            None => {
                check_key(text).map_err(|e| format!("tag {text:?}: {e}"))?;
                Ok(TagFilter {
                    key: text.to_string(),
                    value: None,
                })
            }
        }
    }

    /// Whether one stored tag matches.
    pub fn matches(&self, stored: &str) -> bool {
        let (key, value) = match stored.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (stored, None),
        };
        key == self.key && (self.value.is_none() || self.value.as_deref() == value)
    }

    /// Whether any of a snapshot's tags matches.
    pub fn matches_any(&self, tags: &[String]) -> bool {
        tags.iter().any(|t| self.matches(t))
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// Checks the tags of a snapshot read from a repository: at most
/// [`MAX_TAGS`], each a key or `KEY=VALUE` within the rules.
pub(crate) fn check_stored(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags, lifeboat writes at most {MAX_TAGS}",
            tags.len()
        ));
    }
    for tag in tags {
        let checked = match tag.split_once('=') {
            Some((key, value)) => check_key(key).and_then(|()| check_value(value)),
            None => check_key(tag),
        };
        checked.map_err(|e| format!("tag {:?}: {e}", shown(tag)))?;
    }
    Ok(())
}

/// A stored tag in a message: bounded, whatever a repository holds.
fn shown(tag: &str) -> String {
    tag.chars().take(MAX_KEY + MAX_VALUE + 1).collect()
}

/// Keys: a letter or digit, then letters, digits, `.`, `_` and `-`.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(format!("a key has 1 to {MAX_KEY} characters"));
    }
    let first_ok = key.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !first_ok
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(
            "a key starts with a letter or digit and holds only letters, digits, `.`, `_` and `-`"
                .to_string(),
        );
    }
    Ok(())
}

/// Values: letters, digits and `.`, `_`, `-`, `+`, `:`, `/`, `@` (version
/// numbers, git refs, image digests).
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_VALUE {
        return Err(format!("a value has 1 to {MAX_VALUE} characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-+:/@".contains(c))
    {
        return Err(
            "a value holds only letters, digits and `.`, `_`, `-`, `+`, `:`, `/`, `@`".to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_key_equals_value_within_the_rules() {
        let tag = Tag::parse("release=v1.4.2").unwrap();
        assert_eq!(
            (tag.key.as_str(), tag.value.as_str()),
            ("release", "v1.4.2")
        );
        assert_eq!(tag.to_string(), "release=v1.4.2");
        assert!(Tag::parse("git=refs/tags/v1+build:7@sha").is_ok());
        for bad in [
            "release",
            "=v1",
            "release=",
            "re lease=v1",
            "-x=1",
            "k=a b",
            "k=é",
        ] {
            assert!(Tag::parse(bad).is_err(), "{bad} was accepted");
        }
        let long = format!("k={}", "v".repeat(MAX_VALUE + 1));
        assert!(Tag::parse(&long).unwrap_err().contains("1 to 128"));
        assert!(Tag::parse("release").unwrap_err().contains("KEY=VALUE"));
    }

    #[test]
    fn filters_match_a_key_or_one_value() {
        let key = TagFilter::parse("release").unwrap();
        let one = TagFilter::parse("release=v1").unwrap();
        assert!(key.matches("release=v1") && key.matches("release=v2") && key.matches("release"));
        assert!(
            one.matches("release=v1") && !one.matches("release=v10") && !one.matches("release")
        );
        assert!(!key.matches("releases=v1"));
        assert!(one.matches_any(&["pre-restore".into(), "release=v1".into()]));
        assert!(TagFilter::parse("bad key").is_err());
    }

    #[test]
    fn stored_tags_are_checked_as_untrusted() {
        assert!(check_stored(&["pre-restore".into(), "release=v1.4.2".into()]).is_ok());
        assert!(check_stored(&["x\u{1b}[31m=1".into()]).is_err());
        assert!(check_stored(&["k=\n".into()]).is_err());
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("k{i}=v")).collect();
        assert!(check_stored(&many).unwrap_err().contains("at most"));
    }
}
