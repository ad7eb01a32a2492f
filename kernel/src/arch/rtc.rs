//! The CMOS real-time clock, read once at boot for the wall-clock time.

use super::port::{inb, outb};

fn reg(r: u8) -> u8 {
    outb(0x70, r);
    inb(0x71)
}

/// Seconds since the Unix epoch, or None when no RTC answers (reads 0xff).
pub fn unix_time() -> Option<u64> {
    // Wait for an update to finish, then read until two reads agree.
    let read = || {
        for _ in 0..1_000_000 {
            if reg(0x0a) & 0x80 == 0 {
                break;
            }
        }
        [
            reg(0x00),
            reg(0x02),
            reg(0x04),
            reg(0x07),
            reg(0x08),
            reg(0x09),
            reg(0x32),
        ]
    };
    let mut t = read();
    loop {
        let t2 = read();
        if t2 == t {
            break;
        }
        t = t2;
    }
    if t.iter().all(|&b| b == 0xff) {
        return None;
    }
    let status_b = reg(0x0b);
    let bcd = |v: u8| {
        if status_b & 0x04 == 0 {
            (v & 0x0f) + (v >> 4) * 10
        } else {
            v
        }
    };
    let (sec, min) = (bcd(t[0]) as u64, bcd(t[1]) as u64);
    let hour = if status_b & 0x02 == 0 && t[2] & 0x80 != 0 {
        (bcd(t[2] & 0x7f) as u64 % 12) + 12
    } else {
        bcd(t[2]) as u64
    };
    let (day, month) = (bcd(t[3]) as u64, bcd(t[4]) as u64);
    let century = if t[6] != 0 && t[6] != 0xff {
        bcd(t[6]) as u64
    } else {
        20
    };
    let year = century * 100 + bcd(t[5]) as u64;
    Some(days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}
