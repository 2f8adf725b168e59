//! Any HTTP answer to the commerceml transport: classification and every operation's parser never
//! panic.
#![no_main]

mod answer;

use libfuzzer_sys::fuzz_target;
use shared::onec::Transport;

fuzz_target!(|data: &[u8]| answer::run(Transport::CommerceMl, data));
