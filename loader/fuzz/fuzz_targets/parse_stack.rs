//! `parse_stack` on arbitrary bytes (the first 16 pick sp and top): never panics; what it
//! accepts has its strings inside the image.
#![no_main]

use ktls_loader::parse_stack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let sp = u64::from_le_bytes(data[..8].try_into().unwrap()) & 0x7fff_ffff_fff0;
    let image = &data[8..];
    let Some(top) = sp.checked_add(image.len() as u64) else {
        return;
    };
    if let Ok(p) = parse_stack(image, sp, top) {
        for (s, &a) in p
            .argv
            .iter()
            .zip(&p.argv_addrs)
            .chain(p.envp.iter().zip(&p.envp_addrs))
        {
            assert!(a >= sp && a + s.len() as u64 + 1 <= top);
        }
    }
});
