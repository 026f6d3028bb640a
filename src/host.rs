//! This host and its processes: the facts lifeboat records beside what it
//! leaves behind (locks, helper containers, the quiesce journal) so that a
//! later run can tell whether the process that left it is gone.
//!
//! A pid alone is not enough: pids are reused. A process is identified by
//! its pid, its start time (in clock ticks since boot) and the boot it ran in.

use std::path::Path;

pub fn hostname() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 of `/proc/PID/stat`: when the process started, in ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// A process on a host, as recorded in labels and files: `host`, and
/// `pid:start:boot` (see [`ProcessId::token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    pub host: String,
    pub pid: u32,
    start: u64,
    boot: String,
}

impl ProcessId {
    /// This process.
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            host: hostname(),
            pid,
            start: start_ticks(pid).unwrap_or_default(),
            boot: boot_id(),
        }
    }

    /// `pid:start:boot`, the form stored in labels.
    pub fn token(&self) -> String {
        format!("{}:{}:{}", self.pid, self.start, self.boot)
    }

    /// Reads a recorded `host` and `token`; `None` when malformed (a
    /// recorded value is untrusted input).
    pub fn parse(host: &str, token: &str) -> Option<ProcessId> {
        let mut parts = token.splitn(3, ':');
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        let boot = parts.next()?.to_string();
        Some(ProcessId {
            host: host.to_string(),
            pid,
            start,
            boot,
        })
    }

    /// Whether this recorded process is known to be gone: it ran on this
    /// host, and either the host rebooted since or no process with its pid
    /// and start time exists. A process on another host is never "gone"
    /// (lifeboat cannot tell).
    pub fn is_gone(&self) -> bool {
        if self.host != hostname() {
            return false;
        }
        if self.boot != boot_id() {
            return true;
        }
        start_ticks(self.pid) != Some(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_it() {
        let me = ProcessId::current();
        assert!(!me.is_gone());
        let parsed = ProcessId::parse(&me.host, &me.token()).unwrap();
        assert_eq!(parsed, me);
        let reused = ProcessId {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(reused.is_gone());
        let elsewhere = ProcessId {
            host: "another-host".into(),
            ..reused
        };
        assert!(!elsewhere.is_gone());
        assert_eq!(ProcessId::parse("h", "12:x:boot"), None);
        assert_eq!(ProcessId::parse("h", ""), None);
    }
}
