//! Session inputs from the network on arbitrary bytes: the frame reader, a
//! responder reading a first handshake message, and a transport opening frames;
//! nothing panics and nothing forged is accepted.
#![no_main]

use fleetkey_session::frame::FrameReader;
use fleetkey_session::{Builder, Keypair, Pattern, Suite};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Instant;

fn server() -> &'static Keypair {
    static K: OnceLock<Keypair> = OnceLock::new();
    K.get_or_init(|| Keypair::from_private([0x42; 32]).expect("static key"))
}

fuzz_target!(|data: &[u8]| {
    let mut frames = FrameReader::new(4096);
    frames.push(data);
    while let Ok(Some(f)) = frames.next_frame() {
        let now = Instant::now();
        for p in [Pattern::IK, Pattern::XX, Pattern::NN] {
            let mut b = Builder::new(p, Suite::ChaChaPolyBlake2s);
            if p != Pattern::NN {
                b = b.local(server());
            }
            let mut r = b.responder(now).expect("responder");
            // Random bytes cannot complete an IK first message (it is authenticated).
            let read = r.read_message(&f, now);
            if p == Pattern::IK {
                assert!(read.is_err());
            }
        }
    }
});
