//! Picking a server of an upstream for one try, and a side of a split for one request.
//!
//! - `round_robin`: each worker walks the servers in turn from its own position (no counter shared between
//!   cores), skipping those out of rotation.
//! - `least_requests`: of two servers picked at random, the one with fewer tries in flight (power of two
//!   choices: nearly as good as the least loaded of all, without scanning or herding onto one idle server).
//! - `hash(...)`: rendezvous (highest random weight) hashing of the request's value with each server's name, so
//!   that a server leaving the rotation moves only the callers it had, and replicas of the gateway agree.
//!
//! A retry avoids the servers already tried when another one is available.

use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::spec::Balance;

/// The hash of `key` (with `salt`), the same in every process running the same binary (replicas agree).
pub(super) fn hash(key: &str, salt: &str) -> u64 {
    let mut hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
    key.hash(&mut hasher);
    salt.hash(&mut hasher);
    hasher.finish()
}

/// What picking needs to know of each server.
pub(super) trait Candidate {
    /// In rotation now.
    fn available(&self, now: u64) -> bool;
    /// Tries in flight.
    fn in_flight(&self) -> u32;
    /// The server's stable name, for hashing.
    fn label(&self) -> &str;
}

/// Picks a server for a try: `tried` holds the servers earlier tries of the request went to (a bit per index; a
/// server past 64 is never avoided), `key` the request's hash value.
pub(super) fn pick<C: Candidate>(
    balance: &Balance,
    servers: &[C],
    next: &AtomicUsize,
    key: Option<&str>,
    tried: u64,
    now: u64,
) -> Option<usize> {
    let fresh = |i: usize| i >= 64 || tried & (1 << i) == 0;
    let avoid_tried = servers.iter().enumerate().any(|(i, s)| fresh(i) && s.available(now));
    let ok = |i: usize| servers[i].available(now) && (!avoid_tried || fresh(i));
    let n = servers.len();
    match (balance, key) {
        (Balance::Hash(_), Some(key)) => (0..n).filter(|&i| ok(i)).max_by_key(|&i| hash(key, servers[i].label())),
        (Balance::LeastRequests, _) => {
            let count = (0..n).filter(|&i| ok(i)).count();
            match count {
                0 => None,
                1 => (0..n).find(|&i| ok(i)),
                _ => {
                    let a = fastrand::usize(0..count);
                    let mut b = fastrand::usize(0..count - 1);
                    if b >= a {
                        b += 1;
                    }
                    let nth = |k: usize| (0..n).filter(|&i| ok(i)).nth(k);
                    let (a, b) = (nth(a)?, nth(b)?);
                    Some(if servers[b].in_flight() < servers[a].in_flight() {
                        b
                    } else {
                        a
                    })
                }
            }
        }
        _ => {
            let start = next.fetch_add(1, Relaxed);
            (0..n).map(|k| (start + k) % n).find(|&i| ok(i))
        }
    }
}

/// Picks a side of a split by its cumulative weights (`cumulative[i]` is the sum of the weights of sides `0..=i`):
/// by the hash of `sticky` when the request has the value, else at random.
pub(super) fn pick_side(cumulative: &[u32], sticky: Option<&str>) -> usize {
    let total = cumulative.last().copied().unwrap_or(0);
    if total == 0 {
        return 0;
    }
    let point = match sticky {
        Some(value) => u32::try_from(hash(value, "split") % u64::from(total)).unwrap_or(0),
        None => fastrand::u32(0..total),
    };
    cumulative.iter().position(|&c| point < c).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S {
        up: bool,
        busy: u32,
        label: &'static str,
    }

    impl Candidate for S {
        fn available(&self, _: u64) -> bool {
            self.up
        }
        fn in_flight(&self) -> u32 {
            self.busy
        }
        fn label(&self) -> &str {
            self.label
        }
    }

    fn servers(up: &[bool]) -> Vec<S> {
        const LABELS: [&str; 4] = ["a", "b", "c", "d"];
        up.iter()
            .zip(LABELS)
            .map(|(&up, label)| S { up, busy: 0, label })
            .collect()
    }

    #[test]
    fn round_robin_takes_turns_and_skips_servers_out_of_rotation() {
        let next = AtomicUsize::new(0);
        let all = servers(&[true, true, true]);
        let picks: Vec<_> = (0..6)
            .map(|_| pick(&Balance::RoundRobin, &all, &next, None, 0, 1))
            .collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]);
        let some = servers(&[true, false, true]);
        let picks: Vec<_> = (0..4)
            .map(|_| pick(&Balance::RoundRobin, &some, &next, None, 0, 1))
            .collect();
        assert!(picks.iter().all(|p| matches!(p, Some(0 | 2))), "{picks:?}");
        assert_eq!(
            pick(&Balance::RoundRobin, &servers(&[false, false]), &next, None, 0, 1),
            None
        );
    }

    #[test]
    fn a_retry_avoids_the_server_tried_unless_it_is_the_only_one() {
        let next = AtomicUsize::new(0);
        let two = servers(&[true, true]);
        for _ in 0..10 {
            assert_eq!(pick(&Balance::RoundRobin, &two, &next, None, 0b01, 1), Some(1));
        }
        let one = servers(&[true, false]);
        assert_eq!(pick(&Balance::RoundRobin, &one, &next, None, 0b01, 1), Some(0));
    }

    #[test]
    fn least_requests_prefers_the_idle_server() {
        let next = AtomicUsize::new(0);
        let mut two = servers(&[true, true]);
        two[0].busy = 10;
        for _ in 0..20 {
            assert_eq!(pick(&Balance::LeastRequests, &two, &next, None, 0, 1), Some(1));
        }
    }

    #[test]
    fn hashing_keeps_a_key_on_its_server_and_moves_only_the_keys_of_a_server_that_leaves() {
        let next = AtomicUsize::new(0);
        let balance = Balance::Hash(crate::template::Placeholder::ClientIp);
        let all = servers(&[true, true, true, true]);
        let keys: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
        let before: Vec<_> = keys
            .iter()
            .map(|k| pick(&balance, &all, &next, Some(k), 0, 1))
            .collect();
        let again: Vec<_> = keys
            .iter()
            .map(|k| pick(&balance, &all, &next, Some(k), 0, 1))
            .collect();
        assert_eq!(before, again);
        let without_c = servers(&[true, true, false, true]);
        for (key, was) in keys.iter().zip(&before) {
            let now = pick(&balance, &without_c, &next, Some(key), 0, 1);
            if *was != Some(2) {
                assert_eq!(now, *was, "{key} moved though its server stayed");
            }
        }
        let spread: std::collections::HashSet<_> = before.iter().collect();
        assert_eq!(spread.len(), 4, "every server gets keys");
    }

    #[test]
    fn sides_are_picked_by_weight_and_stick_by_value() {
        let cumulative = [90, 100];
        let canary = (0..10_000).filter(|_| pick_side(&cumulative, None) == 1).count();
        assert!((700..=1300).contains(&canary), "{canary}");
        let side = pick_side(&cumulative, Some("user-7"));
        for _ in 0..10 {
            assert_eq!(pick_side(&cumulative, Some("user-7")), side);
        }
    }
}
