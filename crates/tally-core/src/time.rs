//! UTC buckets, reported windows and the clock.
//!
//! Every time in Tally is UTC. Usage buckets and reported buckets are whole hours or whole days,
//! held as Unix seconds of their start.

use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::error::{Reason, Rejection};

pub const HOUR_SECONDS: i64 = 3_600;
pub const DAY_SECONDS: i64 = 86_400;

/// Nanoseconds since the Unix epoch: how record times are hashed and stored. Validation keeps
/// record times inside `i64` nanoseconds (years 1678 to 2262, [`is_kept`]); a time outside
/// saturates rather than panicking.
pub fn unix_nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt()
        .unwrap_or(if time.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
}

/// The times Tally keeps, as the contract's errors spell them: what fits `i64` nanoseconds.
pub const KEPT_TIMES: &str = "1677-09-21 to 2262-04-11";

/// Whether Tally can keep `time`: it fits `i64` nanoseconds since the epoch ([`KEPT_TIMES`]).
/// Every time a request brings is checked against this before any arithmetic on it.
pub fn is_kept(time: DateTime<Utc>) -> bool {
    time.timestamp_nanos_opt().is_some()
}

/// A timestamp as it arrives on the wire, before it is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawTimestamp {
    pub seconds: i64,
    pub nanos: i32,
}

impl RawTimestamp {
    /// The time, if the wire's rules hold: nanos from 0 to 999,999,999 (protobuf's Timestamp).
    /// chrono would read nanos up to 1,999,999,999 as a leap second, a time that sorts inside
    /// its minute but whose `i64` nanoseconds fall in the next one (found by `tests/fuzz`).
    pub fn to_utc(self) -> Option<DateTime<Utc>> {
        u32::try_from(self.nanos)
            .ok()
            .filter(|nanos| *nanos < 1_000_000_000)
            .and_then(|nanos| Utc.timestamp_opt(self.seconds, nanos).single())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    Hourly,
    Daily,
}

impl Granularity {
    pub fn seconds(self) -> i64 {
        match self {
            Granularity::Hourly => HOUR_SECONDS,
            Granularity::Daily => DAY_SECONDS,
        }
    }

    /// Start of the bucket holding `unix_seconds`, in Unix seconds.
    pub fn bucket_of(self, unix_seconds: i64) -> i64 {
        unix_seconds.div_euclid(self.seconds()) * self.seconds()
    }

    /// Start of the bucket holding `time`. Whole-second arithmetic, so it holds for every time
    /// chrono can represent (chrono's `duration_trunc` fails outside `i64` nanoseconds).
    pub fn bucket_start(self, time: DateTime<Utc>) -> DateTime<Utc> {
        // chrono's earliest time is a midnight, so the bucket start is always representable.
        DateTime::from_timestamp(self.bucket_of(time.timestamp()), 0).unwrap_or(time)
    }

    /// Start of the bucket after the one holding `time`, if it is representable.
    pub fn next_bucket_start(self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.bucket_start(time)
            .checked_add_signed(Duration::seconds(self.seconds()))
    }

    pub fn is_aligned(self, time: DateTime<Utc>) -> bool {
        self.bucket_start(time) == time
    }

    /// The REST spelling, case-insensitive (`daily`, `Hourly`, ...).
    pub fn parse_name(name: &str) -> Option<Granularity> {
        if name.eq_ignore_ascii_case("daily") {
            Some(Granularity::Daily)
        } else if name.eq_ignore_ascii_case("hourly") {
            Some(Granularity::Hourly)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Granularity::Hourly => "Hourly",
            Granularity::Daily => "Daily",
        }
    }
}

/// A validated reported-time window: start inclusive, end exclusive, both aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportedWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub granularity: Granularity,
    pub allow_incomplete: bool,
}

/// The field names a window's errors point at, which differ between gRPC and REST.
#[derive(Clone, Copy, Debug)]
pub struct WindowFields {
    pub start: &'static str,
    pub end: &'static str,
}

impl WindowFields {
    pub const GRPC: WindowFields = WindowFields {
        start: "reported_start_time",
        end: "reported_end_time",
    };
    pub const REST: WindowFields = WindowFields {
        start: "reportedStartTime",
        end: "reportedEndTime",
    };
}

impl ReportedWindow {
    /// Checks a window against the contract's rules at time `now`.
    pub fn validate(
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        granularity: Granularity,
        allow_incomplete: bool,
        now: DateTime<Utc>,
        fields: WindowFields,
    ) -> Result<ReportedWindow, Rejection> {
        let start = start.ok_or_else(|| {
            Rejection::field(Reason::InvalidProperty, fields.start, "is required")
        })?;
        let end = end
            .ok_or_else(|| Rejection::field(Reason::InvalidProperty, fields.end, "is required"))?;
        for (field, time) in [(fields.start, start), (fields.end, end)] {
            if !is_kept(time) {
                return Err(Rejection::field(
                    Reason::InvalidProperty,
                    field,
                    format!(
                        "{} is outside the times Tally keeps ({KEPT_TIMES})",
                        time.to_rfc3339()
                    ),
                ));
            }
        }
        let boundary = match granularity {
            Granularity::Hourly => "an hour boundary (UTC)",
            Granularity::Daily => "midnight UTC for daily aggregation",
        };
        for (field, time) in [(fields.start, start), (fields.end, end)] {
            if !granularity.is_aligned(time) {
                return Err(Rejection::field(
                    Reason::InvalidTimeAlignment,
                    field,
                    format!("{} is not on {boundary}", time.to_rfc3339()),
                ));
            }
        }
        if start >= end {
            return Err(Rejection::field(
                Reason::InvalidTimeAlignment,
                fields.end,
                "must be later than the start time",
            ));
        }
        let latest = if allow_incomplete {
            granularity.next_bucket_start(now).unwrap_or(now)
        } else {
            now
        };
        if end > latest {
            return Err(Rejection::field(
                Reason::RequestEndTimeIsInFuture,
                fields.end,
                format!("{} is later than {}", end.to_rfc3339(), latest.to_rfc3339()),
            ));
        }
        Ok(ReportedWindow {
            start,
            end,
            granularity,
            allow_incomplete,
        })
    }
}

/// Where the service reads the time. Injected, so tests and demos control time instead of
/// sleeping: everything that depends on business time (reported times, `complete_through`,
/// closed days and periods) reads it here. Mechanics (retry backoff, timeouts, token expiry)
/// run on real time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// The manual clock behind this one, if time moves only when told to.
    fn manual(&self) -> Option<&ManualClock> {
        None
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Called after a manual clock moves, so background work can wake up at once.
pub type ClockWatcher = Box<dyn Fn(DateTime<Utc>) + Send + Sync>;

/// A clock that stands still and moves only when told to, never backwards.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    watchers: Mutex<Vec<ClockWatcher>>,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
            watchers: Mutex::new(Vec::new()),
        }
    }

    /// Calls `watcher` with the new time whenever the clock moves.
    pub fn watch(&self, watcher: ClockWatcher) {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(watcher);
    }

    /// Moves the clock to `to`, refusing to move it back (`ClockCannotMoveBackwards`).
    pub fn advance_to(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, Rejection> {
        {
            let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
            if to < *now {
                return Err(Rejection::new(
                    Reason::ClockCannotMoveBackwards,
                    format!(
                        "the clock is at {} and cannot move back to {}",
                        now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                        to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    ),
                ));
            }
            *now = to;
        }
        self.moved(to);
        Ok(to)
    }

    /// Moves the clock on by `by`, which must not be negative.
    pub fn advance_by(&self, by: Duration) -> Result<DateTime<Utc>, Rejection> {
        let to = self
            .now()
            .checked_add_signed(by)
            .ok_or_else(|| Rejection::new(Reason::InvalidProperty, "the clock would overflow"))?;
        self.advance_to(to)
    }

    /// Sets the clock to `now`, even backwards (tests only rewind on purpose).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
        self.moved(now);
    }

    pub fn advance(&self, by: Duration) {
        let now = {
            let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
            *now = now.checked_add_signed(by).unwrap_or(*now);
            *now
        };
        self.moved(now);
    }

    fn moved(&self, now: DateTime<Utc>) {
        for watcher in self
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            watcher(now);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (tests/fuzz, `window`): 2299-12-31T23:59:59 with 1,751,673,087 nanos was read
    /// as a leap second, so a usage time "inside" an hour was stored in the next one.
    #[test]
    fn wire_nanos_outside_a_second_are_refused() {
        let at = |seconds: i64, nanos: i32| RawTimestamp { seconds, nanos }.to_utc();
        assert_eq!(at(10_413_791_999, 1_751_673_087), None);
        assert_eq!(at(1_764_201_599, 1_000_000_000), None);
        assert_eq!(at(1_764_201_599, -1), None);
        assert_eq!(
            at(1_764_201_599, 999_999_999).map(|t| t.timestamp_subsec_nanos()),
            Some(999_999_999)
        );
        assert_eq!(at(0, 0), DateTime::from_timestamp(0, 0));
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn check(
        start: &str,
        end: &str,
        granularity: Granularity,
        allow_incomplete: bool,
        now: &str,
    ) -> Result<ReportedWindow, Reason> {
        ReportedWindow::validate(
            Some(t(start)),
            Some(t(end)),
            granularity,
            allow_incomplete,
            t(now),
            WindowFields::GRPC,
        )
        .map_err(|e| e.reason)
    }

    #[test]
    fn buckets() {
        assert_eq!(Granularity::Hourly.bucket_of(7_199), 3_600);
        assert_eq!(Granularity::Daily.bucket_of(86_399), 0);
        assert_eq!(Granularity::Hourly.bucket_of(-1), -3_600);
        assert_eq!(
            Granularity::Daily.bucket_start(t("2026-11-27T13:05:00Z")),
            t("2026-11-27T00:00:00Z")
        );
    }

    #[test]
    fn window_rules() {
        use Granularity::*;
        let now = "2026-11-27T13:30:00Z";
        assert!(
            check(
                "2026-11-27T10:00:00Z",
                "2026-11-27T13:00:00Z",
                Hourly,
                false,
                now
            )
            .is_ok()
        );
        assert_eq!(
            check(
                "2026-11-27T10:30:00Z",
                "2026-11-27T13:00:00Z",
                Hourly,
                false,
                now
            ),
            Err(Reason::InvalidTimeAlignment)
        );
        assert_eq!(
            check(
                "2026-11-26T00:00:00Z",
                "2026-11-26T13:00:00Z",
                Daily,
                false,
                now
            ),
            Err(Reason::InvalidTimeAlignment)
        );
        assert_eq!(
            check(
                "2026-11-27T12:00:00Z",
                "2026-11-27T12:00:00Z",
                Hourly,
                false,
                now
            ),
            Err(Reason::InvalidTimeAlignment)
        );
        assert_eq!(
            check(
                "2026-11-27T12:00:00Z",
                "2026-11-27T14:00:00Z",
                Hourly,
                false,
                now
            ),
            Err(Reason::RequestEndTimeIsInFuture)
        );
        // With allow_incomplete the window may end where the current bucket ends.
        assert!(
            check(
                "2026-11-27T12:00:00Z",
                "2026-11-27T14:00:00Z",
                Hourly,
                true,
                now
            )
            .is_ok()
        );
        assert_eq!(
            check(
                "2026-11-27T12:00:00Z",
                "2026-11-27T15:00:00Z",
                Hourly,
                true,
                now
            ),
            Err(Reason::RequestEndTimeIsInFuture)
        );
        assert!(
            check(
                "2026-11-27T00:00:00Z",
                "2026-11-28T00:00:00Z",
                Daily,
                true,
                now
            )
            .is_ok()
        );
        assert_eq!(
            check(
                "2026-11-27T00:00:00Z",
                "2026-11-28T00:00:00Z",
                Daily,
                false,
                now
            ),
            Err(Reason::RequestEndTimeIsInFuture)
        );
    }

    #[test]
    fn a_manual_clock_moves_forward_only_and_tells_its_watchers() {
        let clock = ManualClock::new(t("2026-11-01T00:00:00Z"));
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        clock.watch(Box::new(move |now| log.lock().unwrap().push(now)));
        assert_eq!(
            clock.advance_by(Duration::hours(25)),
            Ok(t("2026-11-02T01:00:00Z"))
        );
        assert_eq!(
            clock
                .advance_to(t("2026-11-01T12:00:00Z"))
                .map_err(|e| e.reason),
            Err(Reason::ClockCannotMoveBackwards)
        );
        assert_eq!(
            clock
                .advance_by(Duration::seconds(-1))
                .map_err(|e| e.reason),
            Err(Reason::ClockCannotMoveBackwards)
        );
        assert_eq!(clock.now(), t("2026-11-02T01:00:00Z"));
        assert_eq!(*seen.lock().unwrap(), vec![t("2026-11-02T01:00:00Z")]);
        assert!(clock.manual().is_some() && SystemClock.manual().is_none());
    }

    /// Issue 10's defect: these panicked in `bucket_start` (chrono's `duration_trunc` fails
    /// outside `i64` nanoseconds) instead of refusing the field.
    #[test]
    fn windows_far_in_the_past_or_future_are_refused_naming_the_field() {
        let now = "2026-11-27T13:30:00Z";
        for (start, end, field) in [
            (
                "0001-01-01T00:00:00Z",
                "2026-11-27T00:00:00Z",
                "reported_start_time",
            ),
            (
                "1677-01-01T00:00:00Z",
                "2026-11-27T00:00:00Z",
                "reported_start_time",
            ),
            (
                "2300-01-01T00:00:00Z",
                "2026-11-27T00:00:00Z",
                "reported_start_time",
            ),
            (
                "2026-11-26T00:00:00Z",
                "2300-01-01T00:00:00Z",
                "reported_end_time",
            ),
        ] {
            for granularity in [Granularity::Hourly, Granularity::Daily] {
                let err = ReportedWindow::validate(
                    Some(t(start)),
                    Some(t(end)),
                    granularity,
                    true,
                    t(now),
                    WindowFields::GRPC,
                )
                .unwrap_err();
                assert_eq!(err.reason, Reason::InvalidProperty, "{start}..{end}");
                assert!(err.message.contains(field), "{start}..{end}: {err:?}");
            }
        }
        // Bucketing itself is total over chrono's whole range.
        for time in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            t("0001-01-01T00:30:00Z"),
        ] {
            for granularity in [Granularity::Hourly, Granularity::Daily] {
                let start = granularity.bucket_start(time);
                assert!(start <= time && granularity.is_aligned(start));
            }
        }
        assert_eq!(
            Granularity::Daily.next_bucket_start(DateTime::<Utc>::MAX_UTC),
            None
        );
        assert_eq!(unix_nanos(t("2300-01-01T00:00:00Z")), i64::MAX);
        assert_eq!(unix_nanos(t("0001-01-01T00:00:00Z")), i64::MIN);
    }

    #[test]
    fn granularity_names_are_case_insensitive() {
        assert_eq!(Granularity::parse_name("DAILY"), Some(Granularity::Daily));
        assert_eq!(Granularity::parse_name("hourly"), Some(Granularity::Hourly));
        assert_eq!(Granularity::parse_name("weekly"), None);
    }
}
