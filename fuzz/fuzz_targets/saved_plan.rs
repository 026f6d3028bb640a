//! A saved plan (`plan --out FILE`) is untrusted: read it as `apply FILE`
//! and `show FILE` do, then render it every way the commands can.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::plan::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(plan) = Plan::from_saved(text) {
        let _ = lifeboat::cli::render_plan_every_way(&plan);
    }
});
