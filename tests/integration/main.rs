//! Integration tests: the `lifeboat` binary against real spec files, a real
//! Docker engine and real repositories on disk. One test binary, many small
//! modules (as ripgrep does).

#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

mod backends;
mod binds;
mod breaking_format4;
mod browse;
mod ci;
mod copies;
mod crash;
mod damage;
mod disaster;
mod drill;
mod dumps;
mod engines;
mod errors;
mod examples;
mod excludes;
mod failures;
mod fmt;
mod guards;
mod harness;
mod hostile;
mod images;
mod init;
mod integrity;
mod into;
mod keys;
mod metadata;
mod mount;
mod output;
mod partial;
mod quiesce;
mod records;
mod restores;
mod retention;
mod runs;
mod s3;
mod schedule;
mod secrets;
mod services;
mod sftp;
mod stack;
mod status;
mod surface;
mod tags;
mod upgrade;
mod volumes;
mod workflow;
