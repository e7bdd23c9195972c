//! Fuzz target: timestamp and window validation, as the usage queries do it: wire timestamps to
//! UTC (`RawTimestamp::to_utc`), then `ReportedWindow::validate` at an arbitrary "now", and the
//! bucket arithmetic on every time chrono can represent (years 1, 1677, 2300 once panicked).
//! A window is valid and within the rules, or refused naming one of its two fields.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use tally_core::time::{
    Granularity, RawTimestamp, ReportedWindow, WindowFields, is_kept, unix_nanos,
};

/// The edges where times stop being representable, kept or aligned.
const EDGES: &[i64] = &[
    -62_135_596_800, // 0001-01-01
    -9_223_372_037,  // just before 1677-09-21T00:12:43Z, the first i64 nanosecond
    -9_223_372_036,
    -1,
    0,
    1_764_201_600, // 2026-11-27
    9_223_372_036, // 2262-04-11T23:47:16Z, the last i64 nanosecond
    9_223_372_037,
    10_413_792_000,    // 2300-01-01
    8_210_266_876_799, // chrono's last second (262142-12-31)
    -8_334_601_228_800,
    i64::MAX,
    i64::MIN,
];

#[derive(Arbitrary, Debug)]
enum Time {
    /// Whole hours from 2026-11-27, so windows are often aligned.
    Hours(i32),
    /// An edge, plus a few seconds.
    Edge(u8, i16, i32),
    Any(i64, i32),
    Missing,
}

impl Time {
    fn raw(self) -> Option<RawTimestamp> {
        match self {
            Time::Hours(hours) => Some(RawTimestamp {
                seconds: 1_764_201_600 + i64::from(hours) * 3_600,
                nanos: 0,
            }),
            Time::Edge(i, seconds, nanos) => Some(RawTimestamp {
                seconds: EDGES[usize::from(i) % EDGES.len()].saturating_add(i64::from(seconds)),
                nanos,
            }),
            Time::Any(seconds, nanos) => Some(RawTimestamp { seconds, nanos }),
            Time::Missing => None,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    start: Time,
    end: Time,
    now: Time,
    hourly: bool,
    allow_incomplete: bool,
    rest: bool,
}

fn check_buckets(time: DateTime<Utc>) {
    let _ = unix_nanos(time);
    assert_eq!(is_kept(time), time.timestamp_nanos_opt().is_some());
    for granularity in [Granularity::Hourly, Granularity::Daily] {
        let start = granularity.bucket_start(time);
        assert!(start <= time, "{time} starts its bucket at {start}");
        assert!(granularity.is_aligned(start));
        assert!(time - start < Duration::seconds(granularity.seconds()));
        assert_eq!(granularity.bucket_of(time.timestamp()), start.timestamp());
        if let Some(next) = granularity.next_bucket_start(time) {
            assert!(next > time);
            assert_eq!(next - start, Duration::seconds(granularity.seconds()));
        }
    }
}

fuzz_target!(|input: Input| {
    let to_utc = |time: Time| time.raw().and_then(RawTimestamp::to_utc);
    let (start, end) = (to_utc(input.start), to_utc(input.end));
    let Some(now) = to_utc(input.now) else {
        return;
    };
    for time in [start, end, Some(now)].into_iter().flatten() {
        check_buckets(time);
    }
    let granularity = if input.hourly {
        Granularity::Hourly
    } else {
        Granularity::Daily
    };
    let fields = if input.rest {
        WindowFields::REST
    } else {
        WindowFields::GRPC
    };
    match ReportedWindow::validate(start, end, granularity, input.allow_incomplete, now, fields) {
        Ok(window) => {
            assert_eq!((Some(window.start), Some(window.end)), (start, end));
            assert!(window.start < window.end);
            assert!(is_kept(window.start) && is_kept(window.end));
            assert!(granularity.is_aligned(window.start) && granularity.is_aligned(window.end));
            if !input.allow_incomplete {
                assert!(window.end <= now);
            }
        }
        Err(rejection) => {
            assert_eq!(rejection.violations.len(), 1, "{rejection:?}");
            let field = rejection.violations[0].field.as_str();
            assert!(
                field == fields.start || field == fields.end,
                "{rejection:?}"
            );
        }
    }
});
