//! A budget of per-request event lines, per worker and per class of event
//! ([`Class`]): a token bucket of `per_second` lines a second with a burst
//! of one second's worth, for each class, so that a flood of one kind
//! (keyless requests, or ordinary successes) cannot hide another (an
//! injection attempt's `validation_failed`).
//!
//! Every refused request writes one JSON line into Envoy's log, which is
//! the most expensive part of a 401 or a 429. A client that sends thousands
//! of bad requests a second would otherwise make its own traffic the
//! costliest there is, and flood the log. Past the budget, lines are
//! counted instead of written (`rag_guard_events_suppressed`), and the next
//! line that fits is preceded by one `events_suppressed` line with the
//! count. Events about keys (revocations, leak detection), the admin API and
//! cluster mode are not budgeted: they are rare and each one matters.
//!
//! Fixed size: four buckets of three integers per worker, whatever the
//! traffic.

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The kinds of per-request events, each with its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `auth_success` (info level).
    Success,
    /// `auth_failure`, `rate_limited`, `host_rejected`,
    /// `method_override_rejected`.
    Refusal,
    /// `validation_failed`, `input_flagged`, `input_vetoed`.
    Inspection,
    /// `cluster_unavailable`, `cluster_fallback`.
    Cluster,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::Success,
        Class::Refusal,
        Class::Inspection,
        Class::Cluster,
    ];

    /// The `reason` of an `events_suppressed` line about this class.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Refusal => "refusal",
            Class::Inspection => "inspection",
            Class::Cluster => "cluster",
        }
    }
}

/// One worker's buckets, one per [`Class`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBudgets {
    buckets: [EventBudget; 4],
}

impl EventBudgets {
    pub fn new(per_second: u32) -> Self {
        EventBudgets {
            buckets: Class::ALL.map(|_| EventBudget::new(per_second)),
        }
    }

    /// [`EventBudget::admit`] in the bucket of `class`.
    pub fn admit(&mut self, class: Class, now_ns: u64) -> Admit {
        let i = Class::ALL.iter().position(|c| *c == class).unwrap_or(0);
        match self.buckets.get_mut(i) {
            Some(bucket) => bucket.admit(now_ns),
            None => Admit::Write,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBudget {
    per_second: u64,
    /// Lines available, in billionths of a line.
    available_nano: u64,
    at_ns: u64,
    /// Lines left out since the last `events_suppressed` line.
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write it.
    Write,
    /// Write an `events_suppressed` line with this count, then it.
    WriteAfterSuppressed(u64),
    /// Leave it out (it is counted).
    Suppress,
}

impl EventBudget {
    /// A full budget of `per_second` lines a second (at least 1).
    pub fn new(per_second: u32) -> Self {
        let per_second = u64::from(per_second.max(1));
        EventBudget {
            per_second,
            available_nano: per_second * NANOS_PER_SEC,
            at_ns: 0,
            suppressed: 0,
        }
    }

    /// Spends one line at `now_ns` (Unix nanoseconds) if the budget has one.
    pub fn admit(&mut self, now_ns: u64) -> Admit {
        let capacity = self.per_second * NANOS_PER_SEC;
        if now_ns > self.at_ns {
            let refill = u128::from(now_ns - self.at_ns) * u128::from(self.per_second);
            let refill = u64::try_from(refill).unwrap_or(u64::MAX);
            self.available_nano = self.available_nano.saturating_add(refill).min(capacity);
            self.at_ns = now_ns;
        }
        if self.available_nano < NANOS_PER_SEC {
            self.suppressed = self.suppressed.saturating_add(1);
            return Admit::Suppress;
        }
        self.available_nano -= NANOS_PER_SEC;
        match std::mem::take(&mut self.suppressed) {
            0 => Admit::Write,
            n => Admit::WriteAfterSuppressed(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_rate_then_the_count() {
        let mut b = EventBudget::new(100);
        let t0 = 1_800_000_000 * NANOS_PER_SEC;
        let first: Vec<Admit> = (0..150).map(|_| b.admit(t0)).collect();
        assert_eq!(first.iter().filter(|a| **a == Admit::Write).count(), 100);
        assert_eq!(first.iter().filter(|a| **a == Admit::Suppress).count(), 50);
        // 10 ms later: one line a 10 ms, preceded by the count of the 50.
        assert_eq!(b.admit(t0 + 10 * MS), Admit::WriteAfterSuppressed(50));
        assert_eq!(b.admit(t0 + 10 * MS), Admit::Suppress);
        assert_eq!(b.admit(t0 + 20 * MS), Admit::WriteAfterSuppressed(1));
        assert_eq!(b.admit(t0 + 30 * MS), Admit::Write);
        // A quiet minute refills to one second's worth, not more.
        let later = t0 + 60 * NANOS_PER_SEC;
        let burst = (0..200)
            .filter(|_| b.admit(later) != Admit::Suppress)
            .count();
        assert_eq!(burst, 100);
        // A clock that goes back refills nothing and never panics.
        assert_eq!(b.admit(t0), Admit::Suppress);
    }

    #[test]
    fn each_class_has_its_own_bucket() {
        let mut b = EventBudgets::new(2);
        let t = 10 * NANOS_PER_SEC;
        for _ in 0..5 {
            b.admit(Class::Refusal, t);
        }
        assert_eq!(b.admit(Class::Refusal, t), Admit::Suppress);
        assert_eq!(
            b.admit(Class::Inspection, t),
            Admit::Write,
            "not used up by refusals"
        );
        assert_eq!(b.admit(Class::Success, t), Admit::Write);
    }

    #[test]
    fn at_least_one_line_a_second() {
        let mut b = EventBudget::new(0);
        assert_eq!(b.admit(5 * NANOS_PER_SEC), Admit::Write);
        assert_eq!(b.admit(5 * NANOS_PER_SEC), Admit::Suppress);
        assert_eq!(b.admit(6 * NANOS_PER_SEC), Admit::WriteAfterSuppressed(1));
    }
}
