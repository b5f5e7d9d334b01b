//! The time source of the caching verifiers, injectable so tests can move
//! time (expire a cache, pass a refetch interval) without sleeping.

/// Seconds since the Unix epoch, as the verifiers see them.
///
/// Any `Fn() -> i64 + Send + Sync` is a clock, so a test can pass a closure
/// over an `AtomicI64`.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in whole seconds since the Unix epoch.
    fn now_unix(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            // A clock set before 1970 is broken; report the epoch rather
            // than panic, and let `exp` checks refuse what they must.
            Err(_) => 0,
        }
    }
}

impl<F> Clock for F
where
    F: Fn() -> i64 + Send + Sync + 'static,
{
    fn now_unix(&self) -> i64 {
        self()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_after_2020_and_closures_are_clocks() {
        assert!(SystemClock.now_unix() > 1_577_836_800);
        let fixed = || 42;
        assert_eq!(fixed.now_unix(), 42);
    }
}
