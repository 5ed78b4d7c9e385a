//! Newcomer latencies: the times that new clients took to be served, in milliseconds,
//! and what the records show of them (the worst, the median, how many passed a target);
//! and [`is_refusal`], which tells a newcomer turned away from one that failed.

use simple_ftp::ClientError;

/// Whether an error is the server refusing a newcomer (`421`, too many connections).
pub(crate) fn is_refusal(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<ClientError>())
        .any(|c| c.reply_code() == Some(421))
}

/// Milliseconds that newcomers took, in the order they came.
#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies {
    ms: Vec<f64>,
}

impl Latencies {
    pub(crate) fn push(&mut self, ms: f64) {
        self.ms.push(ms);
    }

    pub(crate) fn len(&self) -> usize {
        self.ms.len()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The slowest, or `None` when there were none.
    pub(crate) fn worst(&self) -> Option<f64> {
        self.sorted().last().copied()
    }

    /// The median (the mean of the middle two for an even count).
    pub(crate) fn median(&self) -> Option<f64> {
        let v = self.sorted();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// How many took longer than `ms`.
    pub(crate) fn past(&self, ms: f64) -> usize {
        self.ms.iter().filter(|&&t| t > ms).count()
    }

    /// Seconds in all.
    pub(crate) fn total_secs(&self) -> f64 {
        // A fold from 0.0: an empty float sum is -0.0, which the records would show.
        self.ms.iter().fold(0.0, |a, b| a + b) / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(ms: &[f64]) -> Latencies {
        let mut l = Latencies::default();
        for &t in ms {
            l.push(t);
        }
        l
    }

    #[test]
    fn worst_median_and_past_a_target() {
        let l = of(&[3.0, 120.0, 1.0, 2.0, 101.0]);
        assert_eq!(l.len(), 5);
        assert_eq!(l.worst(), Some(120.0));
        assert_eq!(l.median(), Some(3.0));
        assert_eq!(l.past(100.0), 2);
        assert_eq!(l.past(120.0), 0);
        assert!((l.total_secs() - 0.227).abs() < 1e-9);
    }

    #[test]
    fn an_even_count_takes_the_middle_two_and_none_gives_none() {
        assert_eq!(of(&[4.0, 1.0, 3.0, 2.0]).median(), Some(2.5));
        let none = Latencies::default();
        assert_eq!(none.worst(), None);
        assert_eq!(none.median(), None);
        assert_eq!(none.past(0.0), 0);
        assert_eq!(format!("{:.3}", none.total_secs()), "0.000");
    }
}
