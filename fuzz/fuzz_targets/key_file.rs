//! Key files and the config of an encrypted repository (KDF parameters,
//! salts, wrapped keys), the files read before anything is authenticated:
//! change one as the input says, then open with the passphrase and read as
//! the commands do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::repo::FileKind;
use lifeboat_fuzz::{PASSPHRASE, exercise, pristine, tampered};

fuzz_target!(|data: &[u8]| {
    let chosen = |kind| matches!(kind, FileKind::Key | FileKind::Config);
    exercise(tampered(pristine(true), chosen, data), Some(PASSPHRASE));
});
