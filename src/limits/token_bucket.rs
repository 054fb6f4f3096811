//! Token-bucket arithmetic for one API key: three buckets (burst, minute,
//! hour) updated together, in integer micro-tokens and nanoseconds, with no
//! floating point and no per-request timestamps.
//!
//! Each bucket has a capacity and a refill rate:
//!
//! | bucket | capacity | refill |
//! |---|---|---|
//! | burst | `burst` | `per_minute` tokens per 60 s |
//! | minute | `per_minute` | `per_minute` tokens per 60 s |
//! | hour | `per_hour` | `per_hour` tokens per 3600 s |
//!
//! The state stores how many micro-tokens of each bucket are *used* (not yet
//! refilled) at one instant. Storing "used" rather than a time (as GCRA does)
//! keeps the state meaningful when limits change on a configuration reload:
//! what a key has spent stays spent, and the new capacity and rate apply from
//! then on.
//!
//! Rounding always goes the strict way: refills round down, waits round up.

/// Micro-tokens per token.
pub const MICRO: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The limits of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_minute: u32,
    pub per_hour: u32,
    pub burst: u32,
}

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Burst,
    Minute,
    Hour,
}

impl LimitKind {
    pub const ALL: [LimitKind; 3] = [LimitKind::Burst, LimitKind::Minute, LimitKind::Hour];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Burst => "burst",
            LimitKind::Minute => "minute",
            LimitKind::Hour => "hour",
        }
    }

    fn index(self) -> usize {
        match self {
            LimitKind::Burst => 0,
            LimitKind::Minute => 1,
            LimitKind::Hour => 2,
        }
    }
}

/// One bucket's shape: `capacity` tokens, refilled at `refill` tokens per
/// `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub capacity: u64,
    pub refill: u64,
    pub window_secs: u64,
}

impl Bucket {
    pub fn capacity_micro(&self) -> u64 {
        self.capacity.saturating_mul(MICRO)
    }

    /// `used` micro-tokens at `at_ns`, brought forward to `now_ns`: capped
    /// at the capacity first (a limit lowered by a reload), then refilled.
    /// If the clock went backwards nothing is refilled (stricter, never
    /// laxer).
    pub fn used_at(&self, used: u64, at_ns: u64, now_ns: u64) -> u64 {
        used.min(self.capacity_micro())
            .saturating_sub(self.refilled(now_ns.saturating_sub(at_ns)))
    }

    /// Micro-tokens refilled in `elapsed_ns`, rounded down.
    fn refilled(&self, elapsed_ns: u64) -> u64 {
        let micro = u128::from(elapsed_ns) * u128::from(self.refill) * u128::from(MICRO)
            / (u128::from(self.window_secs) * u128::from(NANOS_PER_SEC));
        u64::try_from(micro).unwrap_or(u64::MAX)
    }

    /// Nanoseconds until `micro` micro-tokens have been refilled, rounded up.
    pub fn nanos_to_refill(&self, micro: u64) -> u64 {
        if self.refill == 0 {
            return u64::MAX;
        }
        let num = u128::from(micro) * u128::from(self.window_secs) * u128::from(NANOS_PER_SEC);
        let den = u128::from(self.refill) * u128::from(MICRO);
        u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
    }
}

impl Limits {
    pub fn bucket(&self, kind: LimitKind) -> Bucket {
        let per_minute = u64::from(self.per_minute);
        match kind {
            LimitKind::Burst => Bucket {
                capacity: u64::from(self.burst),
                refill: per_minute,
                window_secs: 60,
            },
            LimitKind::Minute => Bucket {
                capacity: per_minute,
                refill: per_minute,
                window_secs: 60,
            },
            LimitKind::Hour => Bucket {
                capacity: u64::from(self.per_hour),
                refill: u64::from(self.per_hour),
                window_secs: 3600,
            },
        }
    }

    /// The largest cost a request can ever be admitted with.
    pub fn max_cost(&self) -> u32 {
        self.burst.min(self.per_minute).min(self.per_hour)
    }
}

/// The stored state of one key's three buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketState {
    /// The instant `used` refers to (Unix nanoseconds).
    pub at_ns: u64,
    /// Used micro-tokens per bucket, indexed like `LimitKind::ALL`.
    pub used: [u64; 3],
}

const STATE_VERSION: u8 = 1;
/// Encoded size of a [`BucketState`].
pub const STATE_LEN: usize = 1 + 8 + 3 * 8;

impl BucketState {
    pub fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        out[0] = STATE_VERSION;
        out[1..9].copy_from_slice(&self.at_ns.to_le_bytes());
        for (i, used) in self.used.iter().enumerate() {
            out[9 + i * 8..17 + i * 8].copy_from_slice(&used.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != STATE_LEN || bytes[0] != STATE_VERSION {
            return None;
        }
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?))
        };
        Some(BucketState {
            at_ns: word(1)?,
            used: [word(9)?, word(17)?, word(25)?],
        })
    }

    /// The state brought forward to `now_ns`, refilled, each bucket capped
    /// at its capacity. If the clock went backwards, nothing is refilled and
    /// the state keeps its later instant (stricter, never laxer).
    pub fn at(&self, limits: &Limits, now_ns: u64) -> BucketState {
        BucketState {
            at_ns: self.at_ns.max(now_ns),
            used: LimitKind::ALL.map(|kind| {
                limits
                    .bucket(kind)
                    .used_at(self.used[kind.index()], self.at_ns, now_ns)
            }),
        }
    }
}

impl BucketState {
    /// The instant (Unix ns) from which every bucket is full again under
    /// `limits`: from then on this state is the same as a fresh one.
    pub fn full_at_ns(&self, limits: &Limits) -> u64 {
        let longest = LimitKind::ALL
            .iter()
            .map(|&kind| {
                let bucket = limits.bucket(kind);
                let used = self.used[kind.index()].min(bucket.capacity_micro());
                if used == 0 {
                    0
                } else {
                    bucket.nanos_to_refill(used)
                }
            })
            .max()
            .unwrap_or(0);
        self.at_ns.saturating_add(longest)
    }
}

/// What one bucket looks like to a client after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketView {
    pub kind: LimitKind,
    pub limit: u64,
    /// Whole tokens left.
    pub remaining: u64,
    /// Whole tokens in use (requests counted in the window, rounded up).
    pub used: u64,
    /// Seconds until the bucket is full again (rounded up).
    pub reset_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The state to store (equal to the refilled input when denied).
    pub state: BucketState,
    /// For a denial: the limit that keeps the request out longest.
    pub tripped: Option<LimitKind>,
    /// For a denial: whole seconds until this request would be admitted;
    /// None if it never can be (cost above a capacity).
    pub retry_after_secs: Option<u64>,
    pub views: [BucketView; 3],
}

impl Verdict {
    pub fn view(&self, kind: LimitKind) -> &BucketView {
        &self.views[kind.index()]
    }
}

/// Decides whether a request costing `cost` tokens is admitted at `now_ns`.
/// All three buckets must have room; a denied request consumes nothing.
pub fn check(state: &BucketState, limits: &Limits, cost: u32, now_ns: u64) -> Verdict {
    let current = state.at(limits, now_ns);
    let cost_micro = u64::from(cost).saturating_mul(MICRO);
    let mut worst: Option<(LimitKind, Option<u64>)> = None;
    for kind in LimitKind::ALL {
        let bucket = limits.bucket(kind);
        let used = current.used[kind.index()];
        let needed = used.saturating_add(cost_micro);
        if needed > bucket.capacity_micro() {
            let wait = (cost_micro <= bucket.capacity_micro())
                .then(|| bucket.nanos_to_refill(needed - bucket.capacity_micro()));
            let longer = match worst {
                None => true,
                Some((_, None)) => false,
                Some((_, Some(w))) => wait.is_none_or(|x| x > w),
            };
            if longer {
                worst = Some((kind, wait));
            }
        }
    }
    let allowed = worst.is_none();
    let mut next = current;
    if allowed {
        for used in next.used.iter_mut() {
            *used = used.saturating_add(cost_micro);
        }
    }
    let views = LimitKind::ALL.map(|kind| view(limits, kind, next.used[kind.index()]));
    Verdict {
        allowed,
        state: next,
        tripped: worst.map(|(k, _)| k),
        retry_after_secs: worst.and_then(|(_, wait)| wait.map(secs_ceil_min1)),
        views,
    }
}

/// Cluster mode's local step: the burst bucket decides alone; the minute
/// and hour buckets are spent as far as they have room, and the first of
/// them without room is returned as what this replica would have answered
/// on its own (the `failure_mode: local` fallback: limit, seconds to wait).
/// The service decides the minute and hour.
pub fn check_burst(
    state: &BucketState,
    limits: &Limits,
    cost: u32,
    now_ns: u64,
) -> (Verdict, Option<(LimitKind, u64)>) {
    let current = state.at(limits, now_ns);
    let cost_micro = u64::from(cost).saturating_mul(MICRO);
    let burst = limits.bucket(LimitKind::Burst);
    let used = current.used[LimitKind::Burst.index()];
    let needed = used.saturating_add(cost_micro);
    if needed > burst.capacity_micro() {
        let wait = (cost_micro <= burst.capacity_micro())
            .then(|| secs_ceil_min1(burst.nanos_to_refill(needed - burst.capacity_micro())));
        let views = LimitKind::ALL.map(|kind| view(limits, kind, current.used[kind.index()]));
        let verdict = Verdict {
            allowed: false,
            state: current,
            tripped: Some(LimitKind::Burst),
            retry_after_secs: wait,
            views,
        };
        return (verdict, None);
    }
    let mut next = current;
    let mut fallback: Option<(LimitKind, u64)> = None;
    for kind in [LimitKind::Burst, LimitKind::Minute, LimitKind::Hour] {
        let bucket = limits.bucket(kind);
        let used = next.used[kind.index()];
        let needed = used.saturating_add(cost_micro);
        if needed <= bucket.capacity_micro() {
            next.used[kind.index()] = needed;
        } else {
            let wait = if cost_micro <= bucket.capacity_micro() {
                secs_ceil_min1(bucket.nanos_to_refill(needed - bucket.capacity_micro()))
            } else {
                bucket.window_secs
            };
            if fallback.is_none_or(|(_, w)| wait > w) {
                fallback = Some((kind, wait));
            }
        }
    }
    let views = LimitKind::ALL.map(|kind| view(limits, kind, next.used[kind.index()]));
    let verdict = Verdict {
        allowed: true,
        state: next,
        tripped: None,
        retry_after_secs: None,
        views,
    };
    (verdict, fallback)
}

/// The buckets as they are at `now_ns`, without spending anything.
pub fn peek(state: &BucketState, limits: &Limits, now_ns: u64) -> [BucketView; 3] {
    let current = state.at(limits, now_ns);
    LimitKind::ALL.map(|kind| view(limits, kind, current.used[kind.index()]))
}

fn view(limits: &Limits, kind: LimitKind, used_micro: u64) -> BucketView {
    let bucket = limits.bucket(kind);
    let used = used_micro.div_ceil(MICRO).min(bucket.capacity);
    BucketView {
        kind,
        limit: bucket.capacity,
        remaining: bucket.capacity - used,
        used,
        reset_secs: bucket.nanos_to_refill(used_micro).div_ceil(NANOS_PER_SEC),
    }
}

/// Whole seconds, rounded up, at least 1 (a `Retry-After` value).
pub fn secs_ceil_min1(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC).max(1)
}

#[cfg(test)]
mod burst_only_tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn the_burst_decides_and_the_other_buckets_keep_counting() {
        // burst 4 over a minute of 3, all at one instant: the first three
        // fit everywhere; the fourth is over this replica's minute (the
        // fallback) but within the burst, which is spent; the fifth is over
        // the burst and refused here.
        let limits = Limits {
            per_minute: 3,
            per_hour: 100,
            burst: 4,
        };
        let mut state = BucketState::default();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (v, fallback) = check_burst(&state, &limits, 1, SEC);
            seen.push((v.allowed, fallback.map(|(k, _)| k)));
            state = v.state;
        }
        assert_eq!(
            seen,
            vec![
                (true, None),
                (true, None),
                (true, None),
                (true, Some(LimitKind::Minute)),
                (false, None)
            ]
        );
        let (refused, _) = check_burst(&state, &limits, 1, SEC);
        assert_eq!(refused.tripped, Some(LimitKind::Burst));
        assert_eq!(
            refused.retry_after_secs,
            Some(20),
            "one token of a 3/min refill"
        );
        assert_eq!(refused.view(LimitKind::Minute).remaining, 0);
        // The minute's wait comes with the fallback; a cost the minute can
        // never hold waits a whole window.
        let three = (0..3).fold(BucketState::default(), |s, _| {
            check_burst(&s, &limits, 1, SEC).0.state
        });
        assert_eq!(
            check_burst(&three, &limits, 1, SEC).1,
            Some((LimitKind::Minute, 20))
        );
        let (_, never) = check_burst(&BucketState::default(), &limits, 4, SEC);
        assert_eq!(never, Some((LimitKind::Minute, 60)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = NANOS_PER_SEC;
    const T0: u64 = 1_800_000_000 * SEC;

    fn limits(per_minute: u32, per_hour: u32, burst: u32) -> Limits {
        Limits {
            per_minute,
            per_hour,
            burst,
        }
    }

    /// Admits `n` requests at `now`, returning the final state; panics if one
    /// is refused.
    fn spend(mut s: BucketState, l: &Limits, n: u32, now: u64) -> BucketState {
        for i in 0..n {
            let v = check(&s, l, 1, now);
            assert!(v.allowed, "request {i} refused");
            s = v.state;
        }
        s
    }

    #[test]
    fn burst_admits_exactly_its_capacity() {
        let l = limits(60, 1000, 10);
        let s = spend(BucketState::default(), &l, 10, T0);
        let v = check(&s, &l, 1, T0);
        assert!(!v.allowed);
        assert_eq!(v.tripped, Some(LimitKind::Burst));
        // One token refills in 60/60 = 1 s.
        assert_eq!(v.retry_after_secs, Some(1));
        assert_eq!(v.view(LimitKind::Burst).remaining, 0);
        assert_eq!(v.view(LimitKind::Minute).remaining, 50);
        assert_eq!(v.view(LimitKind::Hour).remaining, 990);
        assert_eq!(v.state, s.at(&l, T0), "a denial consumes nothing");
    }

    #[test]
    fn minute_limit_trips_at_its_count_with_exact_retry_after() {
        let l = limits(5, 1000, 100);
        let s = spend(BucketState::default(), &l, 5, T0);
        let v = check(&s, &l, 1, T0);
        assert_eq!(v.tripped, Some(LimitKind::Minute));
        // 5 per minute: one token every 12 s.
        assert_eq!(v.retry_after_secs, Some(12));
        assert_eq!(v.view(LimitKind::Minute).used, 5);
        // 11.9 s later: still out, 1 s to go (rounded up).
        let v = check(&s, &l, 1, T0 + 11_900_000_000);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_secs, Some(1));
        // 12 s later: exactly one token back.
        let v = check(&s, &l, 1, T0 + 12 * SEC);
        assert!(v.allowed);
        assert!(!check(&v.state, &l, 1, T0 + 12 * SEC).allowed);
    }

    #[test]
    fn hour_limit_trips_at_its_count() {
        let l = limits(100, 3, 100);
        let s = spend(BucketState::default(), &l, 3, T0);
        let v = check(&s, &l, 1, T0);
        assert_eq!(v.tripped, Some(LimitKind::Hour));
        assert_eq!(v.retry_after_secs, Some(1200));
        assert_eq!(v.view(LimitKind::Hour).reset_secs, 3600);
    }

    #[test]
    fn retry_after_is_the_longest_wait_of_all_tripped_limits() {
        let l = limits(2, 2, 2);
        let s = spend(BucketState::default(), &l, 2, T0);
        let v = check(&s, &l, 1, T0);
        // burst and minute: 30 s for one token; hour: 1800 s.
        assert_eq!(v.tripped, Some(LimitKind::Hour));
        assert_eq!(v.retry_after_secs, Some(1800));
    }

    #[test]
    fn refill_is_proportional_and_capped() {
        let l = limits(60, 1000, 10);
        let s = spend(BucketState::default(), &l, 10, T0);
        // 4.5 s: 4.5 tokens back, so 4 whole requests.
        let later = T0 + 4_500_000_000;
        let views = peek(&s, &l, later);
        assert_eq!(views[0].remaining, 4);
        let s2 = spend(s, &l, 4, later);
        assert!(!check(&s2, &l, 1, later).allowed);
        // A huge idle gap refills to capacity, never beyond.
        let far = T0 + 365 * 24 * 3600 * SEC;
        let views = peek(&s, &l, far);
        assert_eq!(views.map(|v| v.remaining), [10, 60, 1000]);
        let s3 = spend(s, &l, 10, far);
        assert!(!check(&s3, &l, 1, far).allowed);
        // u64::MAX as a time does not overflow anything.
        assert!(check(&s, &l, 1, u64::MAX).allowed);
    }

    #[test]
    fn clock_going_backwards_refills_nothing() {
        let l = limits(60, 1000, 10);
        let s = spend(BucketState::default(), &l, 10, T0);
        let earlier = T0 - 3600 * SEC;
        let v = check(&s, &l, 1, earlier);
        assert!(!v.allowed);
        assert_eq!(v.state.at_ns, T0);
        // Time is measured from the later instant once the clock recovers.
        assert!(!check(&s, &l, 1, T0 + SEC / 2).allowed);
        assert!(check(&s, &l, 1, T0 + SEC).allowed);
    }

    #[test]
    fn costs_consume_several_tokens() {
        let l = limits(60, 1000, 10);
        let v = check(&BucketState::default(), &l, 5, T0);
        assert!(v.allowed);
        assert_eq!(v.view(LimitKind::Burst).remaining, 5);
        assert_eq!(v.view(LimitKind::Minute).remaining, 55);
        let v = check(&v.state, &l, 5, T0);
        assert!(v.allowed);
        let v = check(&v.state, &l, 5, T0);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_secs, Some(5));
    }

    #[test]
    fn cost_above_capacity_is_never_admitted() {
        let l = limits(60, 1000, 10);
        let v = check(&BucketState::default(), &l, 11, T0);
        assert!(!v.allowed);
        assert_eq!(v.tripped, Some(LimitKind::Burst));
        assert_eq!(v.retry_after_secs, None);
        assert_eq!(l.max_cost(), 10);
    }

    #[test]
    fn limit_changes_keep_what_was_spent() {
        let before = limits(60, 1000, 10);
        let s = spend(BucketState::default(), &before, 8, T0);
        // Burst raised to 20: 12 left, not 20.
        let after = limits(60, 1000, 20);
        assert_eq!(peek(&s, &after, T0)[0].remaining, 12);
        // Burst lowered to 5: nothing left, and capped at the new capacity.
        let lower = limits(60, 1000, 5);
        assert_eq!(peek(&s, &lower, T0)[0].remaining, 0);
        assert_eq!(s.at(&lower, T0).used[0], 5 * MICRO);
    }

    #[test]
    fn lowered_limits_give_true_waits() {
        // 50 of 100 per hour spent, then the hour limit drops to 10.
        let before = limits(1000, 100, 1000);
        let s = spend(BucketState::default(), &before, 50, T0);
        let after = limits(1000, 10, 1000);
        let v = check(&s, &after, 1, T0);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_secs, Some(360));
        // Nothing was written (a denial), and the promise holds: 360 s later
        // the request is admitted.
        assert!(check(&s, &after, 1, T0 + 360 * SEC).allowed);
        assert!(!check(&s, &after, 1, T0 + 359 * SEC).allowed);
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let s = BucketState {
            at_ns: T0,
            used: [1, MICRO, u64::MAX],
        };
        assert_eq!(BucketState::decode(&s.encode()), Some(s));
        assert_eq!(BucketState::decode(b""), None);
        assert_eq!(BucketState::decode(&[2; STATE_LEN]), None);
        assert_eq!(BucketState::decode(&s.encode()[..STATE_LEN - 1]), None);
    }

    #[test]
    fn status_view_counts_requests() {
        let l = limits(60, 1000, 10);
        let s = spend(BucketState::default(), &l, 3, T0);
        let [burst, minute, hour] = peek(&s, &l, T0 + 100_000_000);
        assert_eq!((minute.used, minute.remaining, minute.limit), (3, 57, 60));
        assert_eq!((hour.used, hour.remaining), (3, 997));
        assert_eq!(burst.remaining, 7);
    }
}
