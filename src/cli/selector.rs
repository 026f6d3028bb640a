//! How commands name snapshots, one grammar for all: a snapshot id (or a
//! unique prefix), `latest:ADDR` or `ADDR` alone (its latest snapshot),
//! and `tag:KEY=VALUE` (as `apply --tag` set it): alone, restore's
//! `--snapshot` for every resource restored; followed by `:ADDR`, the
//! single-file commands' (`ls`, `dump`, `diff`) newest snapshot of ADDR
//! with that tag. Parsing only: which snapshot is meant is the commands'.

use crate::cli::CliError;
use crate::repo::Tag;
use crate::spec::Address;

/// A snapshot of one resource as `ls`, `dump` and `diff` take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named<'a> {
    /// `latest:ADDR` or `ADDR`: its newest snapshot (a safety snapshot of
    /// a `restore --replace` is never the newest).
    Latest(&'a str),
    /// `tag:KEY=VALUE:ADDR`: its newest snapshot with that tag.
    Tagged(Tag, &'a str),
    /// An id or a unique prefix of one.
    Id(&'a str),
}

/// `tag:KEY=VALUE` as `text`, when it starts with `tag:` (`shown` in
/// the error: the argument as typed).
pub fn tag(text: &str, shown: &str) -> Option<Result<Tag, CliError>> {
    let tag = text.strip_prefix("tag:")?;
    Some(Tag::parse(tag).map_err(|e| CliError::Message(format!("{shown}: {e}"))))
}

/// A SNAPSHOT argument of the single-file commands.
pub fn named(text: &str) -> Result<Named<'_>, CliError> {
    let address = text.strip_prefix("latest:").unwrap_or(text);
    if Address::parse(address).is_some() {
        return Ok(Named::Latest(address));
    }
    if !text.starts_with("tag:") {
        return Ok(Named::Id(text));
    }
    // Tag values may hold `:`, addresses never do.
    let (tagged, address) = text
        .rsplit_once(':')
        .filter(|(_, address)| Address::parse(address).is_some())
        .ok_or_else(|| {
            CliError::Message(format!(
                "{text} names no resource: write tag:KEY=VALUE:ADDR (`tag:release=v1.4.2:\
                 volume.data`), the newest snapshot of ADDR with that tag"
            ))
        })?;
    let tag = tag(tagged, text).expect("starts with tag:")?;
    Ok(Named::Tagged(tag, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_named_by_id_latest_address_or_tag_and_address() {
        let release = Tag::parse("release=v1.4.2").unwrap();
        assert_eq!(named("volume.data").unwrap(), Named::Latest("volume.data"));
        assert_eq!(
            named("latest:bind.conf").unwrap(),
            Named::Latest("bind.conf")
        );
        assert_eq!(named("3f9a1c22").unwrap(), Named::Id("3f9a1c22"));
        assert_eq!(
            named("tag:release=v1.4.2:volume.data").unwrap(),
            Named::Tagged(release, "volume.data")
        );
        let colon = Tag::parse("at=12:30").unwrap();
        assert_eq!(
            named("tag:at=12:30:volume.data").unwrap(),
            Named::Tagged(colon, "volume.data")
        );
        for bad in [
            "tag:release=v1.4.2",
            "tag:release:volume.data",
            "tag:=x:volume.data",
        ] {
            let Err(CliError::Message(error)) = named(bad) else {
                panic!("{bad} is refused with a message");
            };
            assert!(error.contains(bad), "{bad}: {error}");
        }
        assert!(tag("latest", "latest").is_none());
        let parsed = tag("tag:k=v", "tag:k=v").unwrap().unwrap();
        assert_eq!(parsed, Tag::parse("k=v").unwrap());
    }
}
