//! One exported function doing what a device does each boot: persist the boot
//! counter, draw a salt, derive the keys (X25519 + HKDF-SHA256), seal the session
//! start and one data frame (AES-128-CCM), and open one server frame. With the
//! `crypto` feature off it does none of that: the difference in `.text` between
//! the two builds is the crypto path.

#![no_std]

#[cfg(feature = "crypto")]
mod path {
    use fleetkey_device::{Device, Error, Rng, Storage};

    struct Counter(u8);
    impl Rng for Counter {
        fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
            for b in buf {
                self.0 = self.0.wrapping_mul(31).wrapping_add(7);
                *b = self.0;
            }
            Ok(())
        }
    }
    struct Flash;
    impl Storage for Flash {
        fn store_boot_counter(&mut self, _: u32) -> Result<(), Error> {
            Ok(())
        }
    }

    pub fn run(seed: u32) -> u32 {
        let b = seed.to_le_bytes();
        let mut d = Device::x25519([b[0]; 8], [b[1]; 32], [b[2] | 9; 32], [b[3]; 32], seed);
        let Ok(mut s) = d.boot(&mut Counter(b[0]), &mut Flash) else {
            return 0;
        };
        let mut buf = [0u8; 96];
        let mut sum = 0u32;
        if let Ok(n) = s.start_frame(&b, &mut buf) {
            sum = sum.wrapping_add(u32::from(buf[n - 1]));
        }
        if let Ok(n) = s.data_frame(&b, &mut buf) {
            sum = sum.wrapping_add(u32::from(buf[n - 1]));
            if let Ok(p) = s.open_down(&mut buf[..n]) {
                sum = sum.wrapping_add(p.len() as u32);
            }
        }
        sum
    }
}

/// The device's per-boot crypto path (or nothing, for the baseline).
#[unsafe(no_mangle)]
pub extern "C" fn fleetkey_device_boot_and_seal(seed: u32) -> u32 {
    #[cfg(feature = "crypto")]
    {
        path::run(seed)
    }
    #[cfg(not(feature = "crypto"))]
    {
        seed.wrapping_mul(3)
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
