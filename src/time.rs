//! Calendar formatting of file times for MDTM (RFC 3659 §2.3) and LIST, in UTC,
//! without a date-time dependency: days-to-civil conversion is a few lines of arithmetic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
    /// Second, 0-59.
    pub second: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Utc {
    /// Converts a system time (before 1970 allowed) to UTC calendar fields.
    pub fn from_system_time(t: SystemTime) -> Utc {
        let secs: i64 = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
            // Before 1970 the whole second is the one the instant falls in, so a time
            // with a fraction of a second counts one more back (floor, not truncation).
            Err(e) => {
                let back = e.duration();
                let whole = i64::try_from(back.as_secs()).unwrap_or(i64::MAX / 2);
                -whole - i64::from(back.subsec_nanos() > 0)
            }
        };
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// `YYYYMMDDHHMMSS`, the MDTM form.
    pub fn mdtm(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, for logs.
    pub fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The date column of an `ls -l` line: `Mon DD HH:MM` within six months of `now`,
/// `Mon DD  YYYY` otherwise.
pub fn ls_date(t: SystemTime, now: SystemTime) -> String {
    const HALF_YEAR: Duration = Duration::from_secs(182 * 86_400);
    let u = Utc::from_system_time(t);
    let month = MONTHS[(u.month as usize).saturating_sub(1) % 12];
    let recent = match now.duration_since(t) {
        Ok(age) => age < HALF_YEAR,
        Err(ahead) => ahead.duration() < Duration::from_secs(3600),
    };
    if recent {
        format!("{month} {:>2} {:02}:{:02}", u.day, u.hour, u.minute)
    } else {
        format!("{month} {:>2}  {:>4}", u.day, u.year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_instants_convert() {
        assert_eq!(Utc::from_system_time(at(0)).mdtm(), "19700101000000");
        assert_eq!(
            Utc::from_system_time(at(951_782_400)).mdtm(),
            "20000229000000"
        );
        assert_eq!(
            Utc::from_system_time(at(1_795_600_000)).iso(),
            "2026-11-25T09:46:40Z"
        );
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(Utc::from_system_time(before).mdtm(), "19691231000000");
        // Half a second before 1970 is in 1969's last second, not 1970's first.
        let just_before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(Utc::from_system_time(just_before).mdtm(), "19691231235959");
        let before_a_day = UNIX_EPOCH - Duration::from_millis(86_400_250);
        assert_eq!(Utc::from_system_time(before_a_day).mdtm(), "19691230235959");
    }

    #[test]
    fn ls_dates_show_time_when_recent_and_year_when_old() {
        let now = at(1_795_600_000);
        assert_eq!(ls_date(at(1_795_600_000 - 3600), now), "Nov 25 08:46");
        assert_eq!(ls_date(at(951_782_400), now), "Feb 29  2000");
    }
}
