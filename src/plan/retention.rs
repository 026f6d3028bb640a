//! Retention: which snapshots a policy's keep rules keep, the rest being
//! forgotten. The rules and their meaning are restic's, so people who know
//! `restic forget` read lifeboat plans without surprises:
//!
//! * `keep_last N` keeps the N newest snapshots;
//! * `keep_hourly/daily/weekly/monthly/yearly N` keep the newest snapshot of
//!   each of the N most recent hours, days, ISO weeks, months, years that have
//!   snapshots (in local time, as restic does);
//! * `keep_within D` keeps every snapshot younger than D, measured back from
//!   the newest snapshot (not from now, so a host that stopped backing up
//!   never loses its last copies to the clock).
//!
//! A snapshot is kept when any rule keeps it; no rule at all keeps everything.
//! Tags add two rules ([`decide_tagged`]): `keep_tagged = ["release"]` keeps
//! every snapshot carrying a tag of that key, and the newest snapshot
//! carrying a tag (`release=v1.4.2`) is always kept, so a tag keeps naming
//! a snapshot until the user forgets that one by id.
//! Pure: times in, decisions out.

use crate::repo::TagFilter;
use crate::spec::Retention;
use chrono::{DateTime, Datelike, Local, Timelike, Utc};

/// What the rules decided for each snapshot of one resource in one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Indices into the input, newest first, of the snapshots kept.
    pub keep: Vec<usize>,
    /// Indices into the input of the snapshots to forget, newest first.
    pub forget: Vec<usize>,
}

/// Applies `rules` to `times` (any order). Returns indices into `times`.
pub fn decide(rules: &Retention, times: &[DateTime<Utc>]) -> Decision {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]));
    if !has_rules(rules) {
        return Decision {
            keep: order,
            forget: Vec::new(),
        };
    }
    let mut kept = vec![false; times.len()];
    if let Some(n) = rules.keep_last {
        for &i in order.iter().take(n as usize) {
            kept[i] = true;
        }
    }
    if let (Some(within), Some(&newest)) = (rules.keep_within, order.first()) {
        let within = chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
        for &i in &order {
            if times[newest] - times[i] < within {
                kept[i] = true;
            }
        }
    }
    type Bucket = fn(DateTime<Local>) -> (i32, u32, u32, u32);
    let buckets: [(Option<u32>, Bucket); 5] = [
        (rules.keep_hourly, |t| {
            (t.year(), t.month(), t.day(), t.hour())
        }),
        (rules.keep_daily, |t| (t.year(), t.month(), t.day(), 0)),
        (rules.keep_weekly, |t| {
            let week = t.iso_week();
            (week.year(), week.week(), 0, 0)
        }),
        (rules.keep_monthly, |t| (t.year(), t.month(), 0, 0)),
        (rules.keep_yearly, |t| (t.year(), 0, 0, 0)),
    ];
    for (count, bucket) in buckets {
        let Some(count) = count else { continue };
        let mut last = None;
        let mut taken = 0;
        for &i in &order {
            if taken >= count {
                break;
            }
            let this = bucket(times[i].with_timezone(&Local));
            if last != Some(this) {
                last = Some(this);
                kept[i] = true;
                taken += 1;
            }
        }
    }
    let (keep, forget) = order.into_iter().partition(|&i| kept[i]);
    Decision { keep, forget }
}

/// [`decide`], then the tag rules: every snapshot a `keep_tagged` entry
/// matches is kept, and so is the newest snapshot carrying each tag.
/// `tags[i]` are the tags of the snapshot taken at `times[i]`.
pub fn decide_tagged(rules: &Retention, times: &[DateTime<Utc>], tags: &[&[String]]) -> Decision {
    let decision = decide(rules, times);
    if decision.forget.is_empty() {
        return decision;
    }
    let filters: Vec<TagFilter> = rules
        .keep_tagged
        .iter()
        .filter_map(|t| TagFilter::parse(t).ok())
        .collect();
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]));
    let mut named = std::collections::BTreeSet::new();
    let mut protected = vec![false; times.len()];
    for &i in &order {
        let of = tags.get(i).copied().unwrap_or_default();
        // Newest first: the first snapshot seen with a tag is its last one
        // (every tag is noted, so no short-circuit).
        let mut newest_of_a_tag = false;
        for tag in of {
            newest_of_a_tag |= named.insert(tag.as_str());
        }
        protected[i] = newest_of_a_tag || filters.iter().any(|f| f.matches_any(of));
    }
    let (keep, forget) = order
        .into_iter()
        .partition(|i| protected[*i] || decision.keep.contains(i));
    Decision { keep, forget }
}

pub fn has_rules(rules: &Retention) -> bool {
    rules != &Retention::default()
}

/// The rules in the spec's words, for plan reasons: `keep_last 7, keep_daily 14`.
pub fn describe(rules: &Retention) -> String {
    let counts = [
        ("keep_last", rules.keep_last),
        ("keep_hourly", rules.keep_hourly),
        ("keep_daily", rules.keep_daily),
        ("keep_weekly", rules.keep_weekly),
        ("keep_monthly", rules.keep_monthly),
        ("keep_yearly", rules.keep_yearly),
    ];
    let mut parts: Vec<String> = counts
        .iter()
        .filter_map(|(name, n)| n.map(|n| format!("{name} {n}")))
        .collect();
    if let Some(within) = rules.keep_within {
        parts.push(format!("keep_within {}", super::format_age(within)));
    }
    if !rules.keep_tagged.is_empty() {
        parts.push(format!("keep_tagged {}", rules.keep_tagged.join(" ")));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn hours_ago(now: DateTime<Utc>, hours: &[i64]) -> Vec<DateTime<Utc>> {
        hours
            .iter()
            .map(|h| now - chrono::Duration::hours(*h))
            .collect()
    }

    #[test]
    fn no_rules_keep_everything() {
        let now = Utc::now();
        let decision = decide(&Retention::default(), &hours_ago(now, &[3, 1, 2]));
        assert_eq!(decision.keep, [1, 2, 0]);
        assert!(decision.forget.is_empty());
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let now = Utc::now();
        let rules = Retention {
            keep_last: Some(2),
            ..Retention::default()
        };
        let decision = decide(&rules, &hours_ago(now, &[5, 1, 3, 2]));
        assert_eq!(decision.keep, [1, 3]);
        assert_eq!(decision.forget, [2, 0]);
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day() {
        // Noon-anchored local days so the test holds in any time zone.
        let day = |d: u32, h: u32| {
            Local
                .with_ymd_and_hms(2026, 3, d, h, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        let times = [
            day(1, 9),
            day(1, 18),
            day(2, 9),
            day(3, 9),
            day(3, 10),
            day(4, 8),
        ];
        let rules = Retention {
            keep_daily: Some(3),
            ..Retention::default()
        };
        let decision = decide(&rules, &times);
        assert_eq!(decision.keep, [5, 4, 2]);
        assert_eq!(decision.forget, [3, 1, 0]);
    }

    #[test]
    fn rules_add_up_and_within_counts_from_the_newest() {
        let now = Utc::now();
        let times = hours_ago(now, &[100, 0, 30, 2, 200]);
        let rules = Retention {
            keep_last: Some(1),
            keep_within: Some(std::time::Duration::from_secs(48 * 3600)),
            ..Retention::default()
        };
        let decision = decide(&rules, &times);
        assert_eq!(decision.keep, [1, 3, 2]);
        assert_eq!(decision.forget, [0, 4]);
        assert_eq!(describe(&rules), "keep_last 1, keep_within 2d");
    }

    #[test]
    fn keep_tagged_keeps_every_snapshot_of_a_tag_key() {
        let now = Utc::now();
        let times = hours_ago(now, &[0, 1, 2, 3, 4]);
        let release = vec!["release=v1".to_string()];
        let other = vec!["release=v2".to_string(), "ticket=7".to_string()];
        let none: Vec<String> = Vec::new();
        let tags: Vec<&[String]> = vec![&none, &release, &none, &other, &release];
        let rules = Retention {
            keep_last: Some(1),
            keep_tagged: vec!["release".into()],
            ..Retention::default()
        };
        let decision = decide_tagged(&rules, &times, &tags);
        assert_eq!(decision.keep, [0, 1, 3, 4]);
        assert_eq!(decision.forget, [2]);
        assert_eq!(describe(&rules), "keep_last 1, keep_tagged release");
    }

    #[test]
    fn the_newest_snapshot_of_each_tag_is_kept_without_keep_tagged() {
        let now = Utc::now();
        let times = hours_ago(now, &[0, 1, 2, 3, 4, 5]);
        let v1 = vec!["release=v1".to_string()];
        let v2 = vec!["release=v2".to_string()];
        let none: Vec<String> = Vec::new();
        // release=v1 names 1 and 4 (1 is its last); release=v2 names 5 alone.
        let tags: Vec<&[String]> = vec![&none, &v1, &none, &none, &v1, &v2];
        let rules = Retention {
            keep_last: Some(1),
            ..Retention::default()
        };
        let decision = decide_tagged(&rules, &times, &tags);
        assert_eq!(decision.keep, [0, 1, 5]);
        assert_eq!(decision.forget, [2, 3, 4]);
        // Untagged snapshots decide exactly as without tags.
        let untagged: Vec<&[String]> = vec![&none; 6];
        assert_eq!(
            decide_tagged(&rules, &times, &untagged),
            decide(&rules, &times)
        );
    }

    #[test]
    fn keep_weekly_uses_iso_weeks_and_monthly_months() {
        let at = |m: u32, d: u32| {
            Local
                .with_ymd_and_hms(2026, m, d, 12, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        // 2026-01-05 is a Monday: 5,6 share a week; 12 is the next one.
        let times = [at(1, 5), at(1, 6), at(1, 12), at(2, 2), at(2, 20)];
        let weekly = Retention {
            keep_weekly: Some(10),
            ..Retention::default()
        };
        assert_eq!(decide(&weekly, &times).forget, [0]);
        let monthly = Retention {
            keep_monthly: Some(1),
            ..Retention::default()
        };
        assert_eq!(decide(&monthly, &times).keep, [4]);
    }
}
