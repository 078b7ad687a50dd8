//! Backup files and escrow shares on arbitrary bytes: opening never panics and
//! never yields an archive that was not sealed to the identity (the input is
//! the file), the archive reader never panics and writes only the files it
//! names into a fresh directory, and a share line parses or is refused.
#![no_main]

use fleetkey_crypto::hpke::XWingIdentity;
use fleetkey_server::backup::{archive, format};
use fleetkey_server::custody::escrow;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn identity() -> &'static XWingIdentity {
    static I: OnceLock<XWingIdentity> = OnceLock::new();
    I.get_or_init(|| XWingIdentity::generate().expect("identity"))
}

fuzz_target!(|data: &[u8]| {
    // A backup file: random bytes never open (no slot for the identity, or a
    // body that does not authenticate).
    let mut out = Vec::new();
    assert!(format::open(identity(), data, &mut out).is_err());
    // An archive read as if it had opened: only the allowed names, in a
    // directory of its own.
    if data.len() <= 64 * 1024 {
        let dir = std::env::temp_dir().join(format!(
            "fleetkey-fuzz-archive-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = archive::unpack(data, &dir);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    assert!(archive::FILES.contains(&name.as_ref()), "{name}");
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // An escrow share line.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(share) = escrow::parse(text)
    {
        assert!(share.threshold >= 2 && share.index >= 1 && share.index <= share.count);
    }
});
