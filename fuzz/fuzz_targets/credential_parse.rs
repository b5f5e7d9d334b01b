//! Credential parsing (`lk_<mode>_<type>_<random><checksum>`): any text is
//! either refused or parsed into something that round-trips.
#![no_main]

use latchkey_core::credential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(info) = credential::parse(text) {
        // What parses names a mode and a kind, and its checksum holds: the
        // same text parses the same way again.
        let again = credential::parse(text).expect("parsing is deterministic");
        assert_eq!(again.mode, info.mode);
        assert_eq!(again.kind, info.kind);
        assert!(text.starts_with("lk_"));
    }
});
